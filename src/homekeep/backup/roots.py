"""Where jobs may read and write: inside ``[backup] allowed_roots``, never in a protected path.

A mirror runs ``rsync --delete`` into its target as the daemon's user, so a target in
``~/.ssh``, ``/etc/cron.d`` or the data directory is code execution or a takeover, and
a source there copies secrets out. Paths are compared after resolving links, when a
job is added (WebSocket API, ``backup init``) and again before every run, which catches
a link swapped in since (a link swapped in during the run is a known limit).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from homekeep.backup.config import BackupConfig, JobSpec
from homekeep.backup.targets import (
    Target,
    rclone_config_path,
    resolve,
    valid_local_target,
    valid_source,
)
from homekeep.core.errors import InvalidInput

Side = Literal["source", "target"]

# Refused unless an allowed root is listed at or inside one of them (the config file's
# owner may choose to back up /etc; the API never can).
SYSTEM_PATHS = (
    "/etc",
    "/root",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/run",
    "/var/lib",
    "/var/spool/cron",
)
HOME_PATHS = (".ssh", ".gnupg", ".config", ".local", "bin")


class PathRefused(InvalidInput):
    """A job's source or target lies where jobs may not read or write."""

    def __init__(self, side: Side, message: str) -> None:
        super().__init__(message)
        self.side = side


@dataclass(frozen=True)
class Protected:
    """A path jobs may not touch; ``fixed`` ones (homekeep's own files) cannot be opened."""

    path: Path
    label: str
    fixed: bool


def _real(path: Path) -> Path:
    """The absolute path with every existing link resolved."""
    return Path(os.path.realpath(path))


@dataclass(frozen=True)
class Roots:
    """The allowed roots and the protected paths, resolved once."""

    allowed: tuple[Path, ...]
    protected: tuple[Protected, ...]

    @classmethod
    def of(cls, config: BackupConfig, *, data_dir: Path, config_file: Path | None) -> Roots:
        """The roots of a config: ``allowed_roots`` plus ``root`` (where backups go)."""
        listed = {_real(p.expanduser()) for p in (*config.allowed_roots, config.root)}
        # A root inside another adds nothing (the default root /srv/backup is in /srv).
        allowed = tuple(sorted(r for r in listed if not any(o in r.parents for o in listed)))
        home = Path.home()
        fixed = [(data_dir, "the data directory"), (rclone_config_path(config), "rclone's config")]
        if config_file is not None:
            fixed.append((config_file, "the config file"))
        closed = [(Path(p), p) for p in SYSTEM_PATHS]
        closed += [(home / name, f"~/{name}") for name in HOME_PATHS]
        protected = [Protected(_real(path), label, True) for path, label in fixed]
        for path, label in closed:
            real = _real(path)
            # Listed at or inside it (even when another root holds that one): opened.
            if not any(root == real or real in root.parents for root in listed):
                protected.append(Protected(real, label, False))
        # The innermost first, so a message names ~/.ssh rather than the /root around it.
        protected.sort(key=lambda item: (not item.fixed, -len(item.path.parts)))
        return cls(allowed, tuple(protected))

    def check_source(self, source: str) -> None:
        """Raise PathRefused unless ``source`` may be read by a job."""
        self._check("source", Path(source))

    def check_target(self, target: Path) -> None:
        """Raise PathRefused unless a job may write into ``target``."""
        self._check("target", target)

    def check_restore(self, dest: Path) -> None:
        """Raise PathRefused unless a restore may write into the folder ``dest``.

        Unlike a mirror's target, an allowed root itself may take a restore: a restore
        deletes nothing.
        """
        self._check("target", dest, whole_root_ok=True)

    def check_job(self, job: JobSpec, target: Target) -> None:
        """Check a job's source and, when local, its target."""
        self.check_source(job.source)
        if target.is_local:
            self.check_target(target.path)

    def check_new(self, job: JobSpec, config: BackupConfig) -> Target:
        """Check a job being added (API or ``init``), source first, and return its target."""
        if not valid_source(job.source):
            raise PathRefused("source", f"source {job.source} is not an existing directory")
        self.check_source(job.source)
        try:
            target = resolve(job, config)
        except InvalidInput as exc:
            raise PathRefused("target", exc.message) from exc
        if target.is_local:
            if not valid_local_target(target.path):
                raise PathRefused(
                    "target", f"cannot create target {target.path}: its folder is not writable"
                )
            self.check_target(target.path)
        return target

    def _check(self, side: Side, path: Path, *, whole_root_ok: bool = False) -> None:
        real = _real(path)
        shown = str(path) if real == Path(os.path.normpath(path)) else f"{path} (-> {real})"
        for item in self.protected:
            where = item.label if item.label == str(item.path) else f"{item.label} ({item.path})"
            if real == item.path or item.path in real.parents:
                fix = (
                    "jobs never read or write homekeep's own files"
                    if item.fixed
                    else f"list {item.path} in [backup] allowed_roots to allow it"
                )
                raise PathRefused(side, f"{side} {shown} is in {where}; {fix}")
            # Writing above a protected path could overwrite it; reading above one (a
            # backup of the whole home folder) is what people want.
            if side == "target" and real in item.path.parents:
                raise PathRefused(
                    side, f"target {shown} holds {where}; choose a folder that does not"
                )
        if not any(root == real or root in real.parents for root in self.allowed):
            names = ", ".join(str(r) for r in self.allowed)
            raise PathRefused(
                side,
                f"{side} {shown} is outside [backup] allowed_roots ({names}); add a folder "
                "that holds it to allowed_roots in the config file",
            )
        if side == "target" and real in self.allowed and not whole_root_ok:
            raise PathRefused(
                side,
                f"target {shown} is an allowed root itself; a mirror would delete everything "
                "else in it; choose a folder inside it",
            )
