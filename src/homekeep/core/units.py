"""systemd units for homekeep's long-running commands (seed 001's 0.0.6): render, install, remove.

Each area declares its long-running commands (``Area.long_running``); ``homekeep service
install NAME`` writes a unit that runs that command with this installation's Python,
data directory and config file, then enables and starts it through systemctl.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

from homekeep.core.area import LongRunning
from homekeep.core.errors import ExternalToolError, NotFound, UsageError
from homekeep.core.files import write_atomic

_INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SYSTEM_DIR = Path("/etc/systemd/system")


def systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument as systemd reads it (``%`` and ``$`` are its specifiers)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if escaped and re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", escaped):
        return escaped
    return f'"{escaped}"'


def unit_name(service: LongRunning, instance: str = "") -> str:
    """``homekeep-<name>.service``, or ``homekeep-<name>-<instance>.service``."""
    if instance and not _INSTANCE_RE.match(instance):
        raise UsageError("--instance is 1-64 letters, digits, '_', '.' or '-'")
    return f"homekeep-{service.name}{'-' + instance if instance else ''}.service"


def render(
    service: LongRunning,
    *,
    data_dir: Path,
    config: Path | None,
    extra: tuple[str, ...] = (),
    system: bool = False,
    run_as: str = "",
    python: str = sys.executable,
) -> str:
    """The unit file's text."""
    if service.needs and not extra:
        raise UsageError(f"{service.name} needs {service.needs}: add it after the name")
    argv = [python, "-m", "homekeep", "--data-dir", str(data_dir)]
    if config is not None:
        argv += ["--config", str(config)]
    argv += [*service.args, *extra]
    lines = [
        "[Unit]",
        f"Description=homekeep: {service.description}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={' '.join(systemd_quote(a) for a in argv)}",
        # SIGTERM is the graceful stop every long-running command handles.
        "KillSignal=SIGTERM",
        "TimeoutStopSec=90",
        "Restart=on-failure",
        "RestartSec=5",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if system:
        lines.append(f"User={run_as or default_user()}")
    lines += [
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if system else 'default.target'}",
        "",
    ]
    return "\n".join(lines)


def default_user() -> str:
    """The user a system unit runs as: the one behind sudo, else the caller."""
    return os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name


def unit_dir(*, system: bool) -> Path:
    """Where systemd looks for units: /etc/systemd/system, or the user's own folder."""
    if system:
        return SYSTEM_DIR
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def systemd_running() -> bool:
    """True when systemd manages this machine (sd_booted's test)."""
    return Path("/run/systemd/system").is_dir()


def systemctl(*args: str, system: bool) -> None:
    """Run systemctl (with --user for user units), or raise what it said."""
    found = shutil.which("systemctl")
    if found is None:
        raise ExternalToolError("systemctl not found: this machine does not run systemd")
    cmd = [found, *([] if system else ["--user"]), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ExternalToolError(
            f"'{' '.join(cmd[1:])}' failed: {done.stderr.strip() or done.returncode}"
        )


def install(text: str, name: str, *, folder: Path, start: bool, system: bool) -> Path:
    """Write the unit; with ``start``, reload systemd and enable and start it."""
    if start and not systemd_running():
        raise UsageError(
            "systemd is not running here (no /run/systemd/system); pass --no-start to only "
            "write the unit"
        )
    path = folder / name
    try:
        write_atomic(path, text.encode("utf-8"), mode=0o644)
    except PermissionError as exc:
        raise UsageError(
            f"cannot write {path}: permission denied (system units need root)"
        ) from exc
    if start:
        systemctl("daemon-reload", system=system)
        systemctl("enable", "--now", name, system=system)
    return path


def uninstall(name: str, *, folder: Path, stop: bool, system: bool) -> Path:
    """Stop and disable the unit (with ``stop``), then remove its file."""
    path = folder / name
    if not path.is_file():
        raise NotFound(f"{path} is not installed; see 'homekeep service list'")
    if stop and systemd_running():
        systemctl("disable", "--now", name, system=system)
    try:
        path.unlink()
    except PermissionError as exc:
        raise UsageError(f"cannot remove {path}: permission denied") from exc
    if stop and systemd_running():
        systemctl("daemon-reload", system=system)
    return path
