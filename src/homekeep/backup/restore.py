"""Verify a backup against its source, and restore one (or one snapshot) to a folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

from homekeep.backup import cmdlines, retention
from homekeep.backup.config import BackupConfig, JobSpec
from homekeep.backup.targets import Target, rclone_config_path, resolve
from homekeep.core.errors import ExternalToolError, InvalidInput, NotFound, UsageError
from homekeep.core.tools import require_tool


def one_line(stderr: str) -> str:
    """A tool's complaint in one line: its last few lines joined, at most 500 characters."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return "; ".join(lines[-3:])[-500:] or "no message"


def _rclone_conf(config: BackupConfig) -> list[str]:
    path = rclone_config_path(config)
    return ["--config", str(path)] if path.exists() else []


def backup_location(job: JobSpec, target: Target, snapshot: str | None = None) -> str:
    """Where the backed-up files are: the mirror, or a snapshot (the newest by default)."""
    if job.method != "snapshot":
        if snapshot:
            raise UsageError(f"job {job.name} is a mirror; it has no snapshots")
        if target.is_local and not target.path.is_dir():
            raise NotFound(f"job {job.name} has no backup yet at {target.path}; run it first")
        return target.location
    names = retention.snapshots(target.path) if target.path.is_dir() else []
    if not names:
        raise NotFound(f"job {job.name} has no complete snapshot yet; run it first")
    if snapshot is None:
        return str(target.path / names[-1])
    if snapshot not in names:
        raise NotFound(
            f"job {job.name} has no snapshot {snapshot!r}; snapshots: {', '.join(names)}"
        )
    return str(target.path / snapshot)


def verify(job: JobSpec, config: BackupConfig) -> list[str]:
    """Compare file contents (checksums) of source and backup; return the differences."""
    target = resolve(job, config)
    location = backup_location(job, target)
    if target.tool == "rclone":
        rclone = require_tool("rclone")
        filters = cmdlines.rclone_filter_lines(job)
        cmd = [rclone, "check", job.source, location, "--one-way", "--combined", "-"]
        cmd += _rclone_conf(config)
        for rule in filters:
            cmd += ["--filter", rule]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
        if "No common hash found" in done.stderr:
            # No hash both sides know (sftp, crypt...): compare by reading the data.
            cmd.append("--download")
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode not in (0, 1):
            raise ExternalToolError(f"rclone check failed: {one_line(done.stderr)}")
        # --combined marks each file: "=" same, "-" missing in the backup, "*" differs.
        differences = [line for line in done.stdout.splitlines() if line[:2] in ("- ", "* ", "! ")]
        if done.returncode == 1 and not differences:
            differences = [done.stderr.strip().splitlines()[-1]]
        return differences
    rsync = require_tool("rsync")
    cmd = [rsync, "-a", "--checksum", "--dry-run", "--itemize-changes", "--delete"]
    if job.ssh_command:
        cmd += ["-e", job.ssh_command]
    cmd += cmdlines.rsync_filters(job)
    cmd += [job.source.rstrip("/") + "/", location.rstrip("/") + "/"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise ExternalToolError(f"rsync verify failed: {one_line(done.stderr)}")
    # Directory timestamp updates (".d..t...") are not differences in content.
    return [
        line
        for line in done.stdout.splitlines()
        if line.strip() and not line.startswith(".d") and not line.startswith("cd")
    ]


def restore(
    job: JobSpec, config: BackupConfig, dest: Path, *, snapshot: str | None, force: bool
) -> list[str]:
    """Copy the backup (or a snapshot) into ``dest``; refuse a non-empty dest without force."""
    if dest.exists() and not dest.is_dir():
        raise InvalidInput(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise UsageError(f"{dest} is not empty; restore into an empty folder or pass --force")
    target = resolve(job, config)
    location = backup_location(job, target, snapshot)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    if target.tool == "rclone":
        cmd = [require_tool("rclone"), "copy", location, str(dest), *_rclone_conf(config)]
    else:
        cmd = [require_tool("rsync"), "-a", "--stats"]
        if job.ssh_command:
            cmd += ["-e", job.ssh_command]
        cmd += [location.rstrip("/") + "/", str(dest) + "/"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=24 * 3600, check=False)
    if done.returncode != 0:
        if created and not any(dest.iterdir()):
            dest.rmdir()
        raise ExternalToolError(f"restore failed: {one_line(done.stderr)}")
    return cmd
