"""Where a job writes: a local path, a mounted share, host:path, rsync://, or an rclone remote."""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from homekeep.backup.config import BackupConfig, JobSpec
from homekeep.core.errors import InvalidInput

Kind = Literal["local", "ssh", "rsyncd", "rclone"]

_SSH_RE = re.compile(
    r"^(?:[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:]+\]):"
)
_REMOTE_RE = re.compile(r"^(?P<remote>[A-Za-z0-9_][A-Za-z0-9_. -]*):")


@dataclass(frozen=True)
class Target:
    """A parsed target: its kind, the tool that writes it, and its location string."""

    kind: Kind
    tool: Literal["rsync", "rclone"]
    location: str

    @property
    def path(self) -> Path:
        """The local directory (local targets only)."""
        assert self.kind == "local"
        return Path(self.location)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


def rclone_config_path(config: BackupConfig) -> Path:
    """The rclone config file in use: [backup] rclone_config, $RCLONE_CONFIG, rclone's default."""
    if config.rclone_config is not None:
        return config.rclone_config.expanduser()
    if env := os.environ.get("RCLONE_CONFIG"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rclone" / "rclone.conf"


def rclone_remotes(config: BackupConfig) -> set[str]:
    """The remote names defined in the rclone config file (empty if it cannot be read)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(rclone_config_path(config), encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return set()
    return set(parser.sections())


def resolve(job: JobSpec, config: BackupConfig) -> Target:
    """Parse a job's target, or raise InvalidInput that says what a target may look like."""
    raw = job.target.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        # No file system, remote or command line takes a control character (NUL above all).
        raise InvalidInput(f"job {job.name}: the target has a control character; type it again")
    if not raw:
        return _checked(job, Target("local", "rsync", str(config.root / job.name)))
    remote = _REMOTE_RE.match(raw)
    if job.tool == "rclone" or (
        job.tool == "auto" and remote is not None and remote["remote"] in rclone_remotes(config)
    ):
        if remote is None and not raw.startswith("/"):
            raise InvalidInput(f"job {job.name}: {raw!r} is not an rclone remote:path")
        return _checked(job, Target("rclone", "rclone", raw))
    if raw.startswith("rsync://"):
        return _checked(job, Target("rsyncd", "rsync", raw))
    if raw.startswith("/"):
        return _checked(job, Target("local", "rsync", raw))
    match = _SSH_RE.match(raw)
    # A one-letter "host" is a Windows drive (C:\...), not a machine.
    if match is not None and len(match["host"]) > 1:
        return _checked(job, Target("ssh", "rsync", raw))
    raise InvalidInput(
        f"job {job.name}: target {raw!r} is not an absolute path, host:path, rsync://host/module "
        "or a remote defined in the rclone config"
    )


def _checked(job: JobSpec, target: Target) -> Target:
    if job.method == "snapshot" and not target.is_local:
        raise InvalidInput(
            f"job {job.name}: snapshots need a local or mounted target (they hard-link with "
            '--link-dest); use method = "mirror" for host:path, rsync:// and rclone targets'
        )
    if job.method == "snapshot" and target.tool == "rclone":
        raise InvalidInput(f"job {job.name}: rclone cannot make snapshots; use mirror")
    if target.is_local and (problem := overlap_problem(Path(job.source), target.path)):
        raise InvalidInput(f"job {job.name}: {problem}")
    return target


def overlap_problem(source: Path, target: Path) -> str | None:
    """Why a local target cannot hold a backup of ``source``, or None.

    A mirror deletes what the source lacks, so a target that is the source or contains
    it (``/``, ``/home`` for ``/home/me``) would be wiped; a target inside the source
    would be backed up into itself, growing every run.
    """
    src, dst = source.resolve(), target.resolve()
    if dst == src:
        return f"target {target} is the source itself"
    if dst in src.parents:
        return (
            f"target {target} contains the source {source}; a mirror would delete everything "
            "else in it"
        )
    if src in dst.parents:
        return f"target {target} is inside the source {source}; it would back itself up"
    return None


def valid_source(source: str) -> bool:
    """True when ``source`` is an absolute path to an existing directory."""
    path = Path(source)
    return path.is_absolute() and path.is_dir()


def nearest_existing(path: Path) -> Path | None:
    """``path`` or its nearest ancestor that exists (None when not even ``/`` does)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return None
        probe = probe.parent
    return probe


def valid_local_target(path: Path) -> bool:
    """True when ``path`` is absolute and its nearest existing ancestor is a writable directory."""
    if not path.is_absolute():
        return False
    probe = nearest_existing(path)
    return probe is not None and probe.is_dir() and os.access(probe, os.W_OK)
