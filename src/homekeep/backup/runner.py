"""Run one job: safety checks, the lock, rsync or rclone, the record, retention, the hook."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from homekeep.backup import cmdlines, diskstats, retention, runlogs
from homekeep.backup.config import BackupConfig, JobSpec
from homekeep.backup.exitcodes import ToolName, classify
from homekeep.backup.locks import JobLock
from homekeep.backup.pump import pump
from homekeep.backup.roots import PathRefused, Roots
from homekeep.backup.store import Run, RunStore
from homekeep.backup.targets import Target, rclone_config_path, resolve
from homekeep.core.db import Database, utcnow
from homekeep.core.logs import attach_log_file
from homekeep.core.output import human_size
from homekeep.core.tools import require_tool

log = logging.getLogger("homekeep.backup")

MAX_ERROR_LINES = 200
Event = dict[str, Any]


class Refused(Exception):
    """A safety check stopped the run before any tool started."""


def summary(run: Run) -> str:
    """The one-line summary of a run."""
    text = (
        f"{run.job}: {run.result} in {run.duration or 0:.1f}s, "
        f"{run.files_total if run.files_total is not None else '-'} files "
        f"({run.files_transferred if run.files_transferred is not None else '-'} transferred, "
        f"{human_size(run.bytes_transferred)}), total {human_size(run.total_size)}, "
        f"added {human_size(run.bytes_added)}"
    )
    if run.snapshot:
        text += f", snapshot {run.snapshot}"
    if run.errors:
        text += f"; {run.errors[-1]}"
    return text


class Backups:
    """The backup service of one data directory: runs jobs and records them."""

    def __init__(self, area_dir: Path, config: BackupConfig, db: Database, roots: Roots) -> None:
        self.dir = area_dir
        self.config = config
        self.roots = roots
        self.store = RunStore(db)
        attach_log_file(log, area_dir / "backup.log", config.log_max_bytes, config.log_backup_count)

    def lock(self, job: JobSpec) -> JobLock:
        """The lock of one job."""
        return JobLock(self.dir / "locks" / f"{job.name}.lock", job.name)

    def run(
        self,
        job: JobSpec,
        *,
        trigger: str = "cli",
        verbose: bool = False,
        on_event: Callable[[Event], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Run:
        """Run a job now and record it; raises Conflict if it is already running."""
        target = resolve(job, self.config)
        lock = self.lock(job)
        lock.acquire()
        try:
            if lock.stale_cleared:
                self.store.interrupt_running(job.name)
            run = self.store.start(
                job.name,
                trigger=trigger,
                tool=target.tool,
                method=job.method,
                target=target.location,
            )
            log_path = runlogs.new_log(self.dir, job.name, run.id)
            run.log_file = str(log_path)
            started = time.monotonic()
            interrupted: BaseException | None = None
            with log_path.open("w", encoding="utf-8", errors="replace") as out:
                execution = _Execution(self, job, target, run, out, verbose, on_event, cancel)
                try:
                    execution.go()
                except Refused as exc:
                    run.result = "error"
                    run.errors.append(str(exc))
                    out.write(f"refused: {exc}\n")
                except KeyboardInterrupt as exc:
                    run.result = "cancelled"
                    run.errors.append("cancelled by a signal")
                    interrupted = exc
                except Exception as exc:
                    run.result = "error"
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                    log.exception("%s: run failed", job.name)
                run.duration = round(time.monotonic() - started, 3)
                run.finished_at = utcnow()
                out.write(summary(run) + "\n")
            self.store.finish(run)
            runlogs.prune(log_path.parent, self.config.keep_run_logs)
        finally:
            lock.release()
        # The CLI prints the summary itself; elsewhere a failure is worth the console.
        failed = run.result not in ("ok", "warning")
        level = logging.ERROR if failed and trigger != "cli" else logging.INFO
        log.log(level, "%s", summary(run))
        if run.result == "error":
            self.call_hooks(run)
        if interrupted is not None:
            raise interrupted
        return run

    def call_hooks(self, run: Run) -> None:
        """Tell the user's command and URL that a run failed; their failures are only logged."""
        payload = {"job": run.job, "result": run.result, "run": run.to_json()}
        if self.config.on_failure_command:
            env = {
                **os.environ,
                "HOMEKEEP_BACKUP_JOB": run.job,
                "HOMEKEEP_BACKUP_RESULT": run.result,
                "HOMEKEEP_BACKUP_LOG": run.log_file or "",
                "HOMEKEEP_BACKUP_ERROR": run.errors[-1] if run.errors else "",
            }
            try:
                subprocess.run(
                    self.config.on_failure_command,
                    env=env,
                    timeout=120,
                    check=False,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                log.error("%s: on_failure_command failed: %s", run.job, exc)
        if self.config.on_failure_url:
            import httpx

            try:
                httpx.post(self.config.on_failure_url, json=payload, timeout=15)
            except httpx.HTTPError as exc:
                log.error("%s: on_failure_url failed: %s", run.job, exc)


class _Execution:
    """The work of one run, split out so each step reads on its own."""

    def __init__(
        self,
        backups: Backups,
        job: JobSpec,
        target: Target,
        run: Run,
        out: IO[str],
        verbose: bool,
        on_event: Callable[[Event], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.backups = backups
        self.job = job
        self.target = target
        self.run = run
        self.out = out
        self.verbose = verbose
        self.on_event = on_event
        self.cancel = cancel
        self.stats = cmdlines.Stats()
        self.cancelled = False

    def go(self) -> None:
        self.check_safety()
        self.run.free_before = self.free_space()
        if self.job.method == "snapshot":
            self.snapshot()
        elif self.target.tool == "rclone":
            self.rclone_mirror()
        else:
            self.rsync_mirror()
        if self.run.free_before is not None or self.target.is_local:
            self.run.free_after = self.free_space()  # a remote that could not tell, still cannot

    def free_space(self) -> int | None:
        """Free bytes at the target: statvfs locally, ``rclone about`` for a remote that
        tells (many do: sftp, Drive, OneDrive; B2 and S3 do not); None otherwise."""
        if self.target.is_local:
            return diskstats.nearest_free(self.target.path)
        if self.target.tool != "rclone":
            return None
        about = diskstats.rclone_about(self.target, self.backups.config)
        return about["free"] if about else None

    def check_safety(self) -> None:
        try:
            self.backups.roots.check_job(self.job, self.target)
        except PathRefused as exc:
            raise Refused(f"{exc.message}; nothing was changed") from exc
        source = Path(self.job.source)
        if not source.is_absolute() or not source.is_dir():
            raise Refused(f"source {source} is missing or not a directory; nothing was changed")
        with os.scandir(source) as entries:
            if next(entries, None) is None:
                raise Refused(
                    f"source {source} is empty (an unmounted drive?); refusing to mirror "
                    "an empty folder over the backup"
                )
        if self.job.mount_point and not os.path.ismount(self.job.mount_point):
            raise Refused(
                f"{self.job.mount_point} is not mounted; mount the network share first "
                "(refusing to fill the local disk instead)"
            )
        if self.target.is_local and self.job.mount_point:
            mount = Path(self.job.mount_point)
            if mount not in (self.target.path, *self.target.path.parents):
                raise Refused(f"target {self.target.path} is not inside {mount}")

    # -- rsync -----------------------------------------------------------------------

    def rsync_mirror(self) -> None:
        rsync = require_tool("rsync")
        if self.target.is_local:
            self.target.path.mkdir(parents=True, exist_ok=True)
        cmd = cmdlines.rsync_command(
            rsync,
            self.job,
            self.job.source,
            self.target.location,
            verbose=self.verbose,
            progress=self.on_event is not None,
        )
        code = self.execute(cmd, cmdlines.parse_rsync_line)
        self.finish_classes("rsync", code)
        self.copy_stats()
        if self.run.result in ("ok", "warning") and self.stats.total_file_size is not None:
            previous = self.backups.store.last_size(self.job.name, self.target.location)
            self.run.total_size = self.stats.total_file_size
            self.run.bytes_added = self.run.total_size - (previous or 0)

    def snapshot(self) -> None:
        rsync = require_tool("rsync")
        root = self.target.path
        root.mkdir(parents=True, exist_ok=True)
        done = retention.snapshots(root)
        stamp = retention.new_stamp(root)
        partial = root / f"{stamp}{retention.PARTIAL}"
        leftovers = retention.partials(root)
        resumed = bool(leftovers)
        if leftovers:
            leftovers[-1].rename(partial)  # resume the interrupted snapshot
            for stale in leftovers[:-1]:
                shutil.rmtree(stale)
        link_dest = (root / done[-1]).resolve() if done else None
        cmd = cmdlines.rsync_command(
            rsync,
            self.job,
            self.job.source,
            str(partial),
            link_dest=link_dest,
            delete=False,
            verbose=self.verbose,
            progress=self.on_event is not None,
        )
        if resumed:
            cmd.insert(1, "--delete")
        code = self.execute(cmd, cmdlines.parse_rsync_line)
        self.finish_classes("rsync", code)
        self.copy_stats()
        if self.run.result not in ("ok", "warning"):
            return  # the .partial stays and the next run resumes it
        final = root / stamp
        partial.rename(final)
        latest = root / "latest"
        tmp_link = root / ".latest.tmp"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(stamp)
        tmp_link.replace(latest)
        self.run.snapshot = stamp
        previous = self.backups.store.last_size(self.job.name, self.target.location)
        added = self.stats.bytes_transferred or 0
        if previous is None:
            previous = retention.tree_size(root)[0] - added if done else 0
        removed, freed = retention.prune(root, self.job)
        for name in removed:
            self.out.write(f"retention: removed snapshot {name}\n")
            log.info("%s: retention removed snapshot %s", self.job.name, name)
        self.run.bytes_added = added
        self.run.total_size = previous + added - freed

    # -- rclone ----------------------------------------------------------------------

    def rclone_mirror(self) -> None:
        rclone = require_tool("rclone")
        config = self.backups.config
        conf: Path | None = rclone_config_path(config)
        if conf is not None and not conf.exists():
            conf = None
        filter_file: Path | None = None
        rules = cmdlines.rclone_filter_lines(self.job)
        if rules:
            filter_file = Path(self.run.log_file or "").with_suffix(".filter")
            filter_file.write_text("\n".join(rules) + "\n", encoding="utf-8")
        cmd = cmdlines.rclone_command(
            rclone,
            self.job,
            self.job.source,
            self.target.location,
            config=conf,
            filter_file=filter_file,
            verbose=self.verbose,
        )
        errors: list[str] = []

        def parse(line: str, stats: cmdlines.Stats) -> None:
            message = cmdlines.parse_rclone_line(line, stats)
            if message:
                errors.append(message)

        code = self.execute(cmd, parse, stderr_is_log=True)
        self.run.errors.extend(errors[:MAX_ERROR_LINES])
        self.finish_classes("rclone", code)
        self.copy_stats()
        if self.run.result in ("ok", "warning"):
            size_cmd = [rclone, "size", "--json", self.target.location]
            if conf is not None:
                size_cmd += ["--config", str(conf)]
            if filter_file is not None:
                size_cmd += ["--filter-from", str(filter_file)]
            done = subprocess.run(
                size_cmd, capture_output=True, text=True, timeout=600, check=False
            )
            if done.returncode == 0:
                sizes = json.loads(done.stdout)
                previous = self.backups.store.last_size(self.job.name, self.target.location)
                self.run.total_size = int(sizes.get("bytes", 0))
                self.stats.files_total = int(sizes.get("count", 0))
                self.run.files_total = self.stats.files_total
                self.run.bytes_added = self.run.total_size - (previous or 0)

    # -- process ---------------------------------------------------------------------

    def finish_classes(self, tool: ToolName, code: int) -> None:
        self.run.exit_code = code
        self.run.result = (
            "cancelled" if self.cancelled else classify(tool, code, self.backups.config.exit_codes)
        )

    def copy_stats(self) -> None:
        self.run.files_total = self.stats.files_total
        self.run.files_transferred = self.stats.files_transferred
        self.run.bytes_transferred = self.stats.bytes_transferred

    def execute(
        self,
        cmd: list[str],
        parse: Callable[[str, cmdlines.Stats], None],
        *,
        stderr_is_log: bool = False,
    ) -> int:
        """Run the tool; every line goes to the run log, stderr lines are the error lines
        (rclone's JSON log on stderr is parsed instead, ``stderr_is_log``)."""
        log.debug("%s: %s", self.job.name, cmdlines.describe(cmd))

        def on_stdout(line: str) -> None:
            parse(line, self.stats)
            if self.verbose:
                log.info("%s: %s", self.job.name, line)

        def on_stderr(line: str) -> None:
            if stderr_is_log:
                on_stdout(line)
                return
            if line.strip() and len(self.run.errors) < MAX_ERROR_LINES:
                self.run.errors.append(line)
            log.info("%s: %s", self.job.name, line)

        ended = pump(
            cmd,
            self.out,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_progress=self.emit_progress if self.on_event is not None else None,
            cancel=self.cancel,
        )
        self.cancelled = ended.cancelled
        return ended.code

    def emit_progress(self, line: str) -> None:
        """Send a RunProgress event for one --info=progress2 line."""
        progress = cmdlines.rsync_progress(line)
        if progress is not None and self.on_event is not None:
            self.on_event(
                {
                    "event": "RunProgress",
                    "Name": self.job.name,
                    "Run": self.run.id,
                    "Percent": progress["percent"],
                    "Bytes": progress["bytes"],
                    "Speed": progress["speed"],
                }
            )
