"""Imported by the forkserver only (a preload, see servers.py): it ignores SIGTERM.

A signal to the whole process group (`systemctl stop`, `timeout`) would otherwise end the
forkserver, and its exit kills every server at once (their parent-death signal) under
their clients. The dispatcher drains the servers instead; the forkserver still exits
when the dispatcher does, by its liveness pipe, even after a kill -9.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
