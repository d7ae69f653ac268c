"""The rsync and rclone command lines a job runs, and what their output says."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from homekeep.backup.config import JobSpec

_NUMBER = r"([\d,.]+)"
_RSYNC_STATS = {
    "files_total": re.compile(rf"^Number of files: {_NUMBER}(?: \(reg: {_NUMBER})?"),
    "files_transferred": re.compile(rf"^Number of regular files transferred: {_NUMBER}"),
    "total_file_size": re.compile(rf"^Total file size: {_NUMBER} bytes"),
    "bytes_transferred": re.compile(rf"^Total transferred file size: {_NUMBER} bytes"),
}
_PROGRESS2 = re.compile(r"^\s*([\d,]+)\s+(\d+)%\s+(\S+)\s+(\S+)")


@dataclass
class Stats:
    """What one transfer reported."""

    files_total: int | None = None
    files_transferred: int | None = None
    bytes_transferred: int | None = None
    total_file_size: int | None = None


def _int(text: str) -> int:
    return int(text.replace(",", "").replace(".", ""))


def rsync_filters(job: JobSpec) -> list[str]:
    """Excludes first (they win), then include-from restricted to the listed patterns."""
    args = [f"--exclude={pattern}" for pattern in job.excludes]
    if job.include_from:
        # include-from alone copies everything: include every directory, the patterns,
        # exclude the rest, and prune the directories left empty.
        args += ["--include=*/", f"--include-from={job.include_from}", "--exclude=*", "-m"]
    return args


def rsync_command(
    rsync: str,
    job: JobSpec,
    source: str,
    dest: str,
    *,
    link_dest: Path | None = None,
    delete: bool = True,
    verbose: bool = False,
    progress: bool = True,
) -> list[str]:
    """The rsync command for a mirror (``delete``) or a snapshot (``link_dest``)."""
    cmd = [rsync, "-a", "--stats", "--mkpath"]
    if progress:
        cmd.append("--info=progress2")
    if verbose:
        cmd.append("--itemize-changes")
    if delete:
        cmd.append("--delete")
        if job.max_delete:
            cmd.append(f"--max-delete={job.max_delete}")
        if job.backup_dir:
            cmd += ["--backup", f"--backup-dir={job.backup_dir}"]
    if link_dest is not None:
        cmd.append(f"--link-dest={link_dest}")
    if job.bwlimit:
        cmd.append(f"--bwlimit={job.bwlimit}")
    if job.ssh_command:
        cmd += ["-e", job.ssh_command]
    cmd += rsync_filters(job)
    cmd += job.extra_args
    cmd += [source.rstrip("/") + "/", dest.rstrip("/") + "/"]
    return cmd


def parse_rsync_line(line: str, stats: Stats) -> None:
    """Fold one line of ``rsync --stats`` output into ``stats``."""
    for name, pattern in _RSYNC_STATS.items():
        match = pattern.match(line)
        if match:
            if name == "files_total" and match[2]:
                stats.files_total = _int(match[2])
            else:
                setattr(stats, name, _int(match[1]))
            return


def rsync_progress(line: str) -> dict[str, object] | None:
    """Parse an ``--info=progress2`` line into bytes, percent and speed."""
    match = _PROGRESS2.match(line)
    if not match:
        return None
    return {"bytes": _int(match[1]), "percent": int(match[2]), "speed": match[3]}


def rclone_filter_lines(job: JobSpec) -> list[str]:
    """rclone filter rules: excludes, then the include-from patterns and exclude-the-rest."""
    lines = [f"- {pattern}" for pattern in job.excludes]
    if job.include_from:
        path = Path(job.include_from)
        for raw in path.read_text(encoding="utf-8").splitlines():
            pattern = raw.strip()
            if pattern and not pattern.startswith(("#", ";")):
                lines.append(f"+ {pattern}")
        lines.append("- **")
    return lines


def rclone_command(
    rclone: str,
    job: JobSpec,
    source: str,
    dest: str,
    *,
    config: Path | None,
    filter_file: Path | None,
    verbose: bool,
) -> list[str]:
    """The rclone sync command, with JSON logs so the final stats can be read."""
    cmd = [rclone, "sync", source, dest, "--use-json-log", "--stats", "1h"]
    cmd += ["--stats-log-level", "NOTICE", "--retries", "1", "--low-level-retries", "2"]
    cmd += ["--contimeout", "10s"]
    if verbose:
        cmd.append("-v")
    if config is not None:
        cmd += ["--config", str(config)]
    if job.max_delete:
        cmd += ["--max-delete", str(job.max_delete)]
    if job.backup_dir:
        cmd += ["--backup-dir", job.backup_dir]
    if job.bwlimit:
        cmd += ["--bwlimit", job.bwlimit]
    if filter_file is not None:
        cmd += ["--filter-from", str(filter_file)]
    cmd += job.extra_args
    return cmd


def parse_rclone_line(line: str, stats: Stats) -> str | None:
    """Fold one JSON log line of rclone into ``stats``; return its message if it is an error."""
    try:
        record = json.loads(line)
    except ValueError:
        return line if line.strip() else None
    if not isinstance(record, dict):
        return None
    final = record.get("stats")
    if isinstance(final, dict):
        stats.bytes_transferred = int(final.get("bytes", 0))
        stats.files_transferred = int(final.get("transfers", 0))
    if record.get("level") in ("error", "critical"):
        obj = record.get("object")
        msg = str(record.get("msg", "")).strip()
        return f"{obj}: {msg}" if obj else msg
    return None


def describe(cmd: list[str]) -> str:
    """The command as one shell-quoted line, for the log."""
    return shlex.join(cmd)
