"""homekeep backup: run jobs, list them, their history, plots, verify, restore, the daemon."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from homekeep.backup.jobnames import check_job_name
from homekeep.core.errors import HomekeepError, InvalidInput, NotFound, UsageError
from homekeep.core.output import console, human_size, json_option, new_table, print_json
from homekeep.core.progress import progress
from homekeep.core.runtime import Runtime, pass_runtime

# The service, the runner and the config models load pydantic: imported where used, so a
# command that fails early (an unknown job) starts in a fraction of the time.
if TYPE_CHECKING:
    from homekeep.backup.config import JobSpec
    from homekeep.backup.service import Service
    from homekeep.backup.store import Run


class BackupFailed(HomekeepError):
    """A run ended in error (exit 1) or was cancelled."""

    exit_code = 1


def _service(rt: Runtime) -> Service:
    from homekeep.backup.service import open_service

    return open_service(rt.area("backup"))


@click.group("backup")
def group() -> None:
    """Scheduled backups and drive mirrors through rsync and rclone."""


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@group.command("run")
@click.argument("job", required=False)
@click.option("--all", "run_all", is_flag=True, help="Run every enabled job, one after another.")
@json_option("Print the runs as JSON.")
@pass_runtime
def run_cmd(rt: Runtime, job: str | None, run_all: bool, as_json: bool) -> None:
    """Run JOB (or --all) now; exits 1 if a run ends in error."""
    if (job is None) == (not run_all):
        raise UsageError("name one job, or pass --all")
    if job is not None:
        check_job_name(rt.config_path, job)  # before the service loads
    from homekeep.backup.runner import summary

    svc = _service(rt)
    jobs = [j for j in svc.jobs.all() if j.enabled] if run_all else [svc.jobs.get(job or "")]
    if not jobs:
        raise UsageError("no backup jobs configured; add one with 'homekeep backup init'")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    runs = []
    for spec in jobs:
        try:
            record = _run_with_bar(svc, spec, verbose=rt.verbose > 0)
        except KeyboardInterrupt:
            raise BackupFailed(f"{spec.name}: cancelled") from None
        runs.append(record)
        if not as_json:
            click.echo(summary(record))
    if as_json:
        print_json([r.to_json() for r in runs])
    failed = [r for r in runs if r.result in ("error", "cancelled")]
    if failed:
        names = ", ".join(f"{r.job} ({r.errors[-1] if r.errors else r.result})" for r in failed)
        raise BackupFailed(f"backup failed: {names}; the log is in {failed[-1].log_file}")


def _run_with_bar(svc: Service, spec: JobSpec, *, verbose: bool) -> Run:
    """Run a job; on a terminal with a progress bar fed by rsync's progress."""
    if not sys.stderr.isatty():
        return svc.backups.run(spec, verbose=verbose)
    with progress() as display:
        bar = display.task(spec.name, total=100)
        shown = [0]

        def on_event(event: dict[str, Any]) -> None:
            percent = int(event.get("Percent", 0))
            if percent > shown[0]:
                bar.advance(percent - shown[0])
                shown[0] = percent

        return svc.backups.run(spec, verbose=verbose, on_event=on_event)


@group.command("list")
@json_option()
@pass_runtime
def list_cmd(rt: Runtime, as_json: bool) -> None:
    """List the jobs with their schedule and last run."""
    svc = _service(rt)
    rows: list[dict[str, Any]] = []
    for spec in svc.jobs.all():
        last = svc.backups.store.last(spec.name)
        rows.append(
            {
                **spec.model_dump(mode="json"),
                "schedule": spec.schedule_text,
                "last_run": last.to_json() if last else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no backup jobs yet; add one with 'homekeep backup init'")
        return
    table = new_table("job", "method", "source", "target", "schedule", "last run", "result", "size")
    for row in rows:
        shown: dict[str, Any] = row["last_run"] or {}
        table.add_row(
            row["name"],
            row["method"],
            row["source"],
            row["target"] or "(default)",
            row["schedule"],
            shown.get("started_at", "-"),
            shown.get("result", "-"),
            human_size(shown.get("total_size")),
        )
    console().print(table)


@group.command("history")
@click.argument("job")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@json_option()
@pass_runtime
def history_cmd(rt: Runtime, job: str, limit: int, as_json: bool) -> None:
    """Show the runs of JOB, oldest first."""
    svc = _service(rt)
    runs = svc.backups.store.history(job, limit)
    if not runs and job not in {j.name for j in svc.jobs.all()}:
        svc.jobs.get(job)  # raises NotFound naming the jobs
    if as_json:
        print_json([r.to_json() for r in runs])
        return
    table = new_table(
        "run", "started (UTC)", "seconds", "result", "files", "sent", "total", "added"
    )
    for r in runs:
        table.add_row(
            str(r.id),
            r.started_at,
            f"{r.duration or 0:.1f}",
            r.result,
            f"{r.files_transferred if r.files_transferred is not None else '-'}"
            f"/{r.files_total if r.files_total is not None else '-'}",
            human_size(r.bytes_transferred),
            human_size(r.total_size),
            human_size(r.bytes_added),
        )
    console().print(table)


@group.command("plot")
@click.argument("job", required=False)
@click.option("--all", "plot_all", is_flag=True, help="One line per job.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("growth.png"),
    show_default=True,
)
@pass_runtime
def plot_cmd(rt: Runtime, job: str | None, plot_all: bool, output: Path) -> None:
    """Plot backup growth: size relative to the first backup, bytes added, file count."""
    from homekeep.backup import plot

    if (job is None) == (not plot_all):
        raise UsageError("name one job, or pass --all")
    if job is not None:
        check_job_name(rt.config_path, job)  # before the service loads

    svc = _service(rt)
    names = [j.name for j in svc.jobs.all()] if plot_all else [svc.jobs.get(job or "").name]
    series = {name: svc.backups.store.history(name) for name in names}
    if not any(series.values()):
        raise NotFound(f"no runs of {', '.join(names) or 'any job'} yet; run a backup first")
    if not output.parent.is_dir():
        raise UsageError(f"folder {output.parent} does not exist")
    count = plot.write(series, output)
    click.echo(f"wrote {output} ({count} runs)")


@group.command("verify")
@click.argument("job")
@pass_runtime
def verify_cmd(rt: Runtime, job: str) -> None:
    """Compare the backup with its source by checksum (rsync dry run, rclone check)."""
    from homekeep.backup.restore import verify

    svc = _service(rt)
    spec = svc.jobs.get(job)
    differences = verify(spec, svc.config)
    for line in differences[:200]:
        click.echo(line)
    if differences:
        raise BackupFailed(
            f"{job}: {len(differences)} differences between source and backup; run the job"
        )
    click.echo(f"{job}: backup matches the source")


@group.command("restore")
@click.argument("job")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--snapshot", help="Snapshot to restore (default: the newest).")
@click.option("--force", is_flag=True, help="Restore into a folder that is not empty.")
@pass_runtime
def restore_cmd(rt: Runtime, job: str, dest: Path, snapshot: str | None, force: bool) -> None:
    """Copy JOB's backup (or one snapshot) into DEST."""
    from homekeep.backup.restore import restore

    svc = _service(rt)
    restore(svc.jobs.get(job), svc.config, dest, snapshot=snapshot, force=force)
    click.echo(f"restored {job}{' snapshot ' + snapshot if snapshot else ''} to {dest}")


@group.command("stats")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--size",
    type=click.IntRange(1, 65536),
    default=64,
    show_default=True,
    help="MiB written and read by the speed test.",
)
@click.option("--no-speed", is_flag=True, help="Only free space.")
@json_option()
def stats_cmd(path: Path, size: int, no_speed: bool, as_json: bool) -> None:
    """Free space of PATH's drive, and its read/write speed (fsync, page cache dropped)."""
    from homekeep.backup.diskstats import stats

    try:
        result = stats(path, speed=not no_speed, size=size * 2**20)
    except OSError as exc:
        raise UsageError(f"cannot test {path}: {exc.strerror}") from exc
    if as_json:
        print_json(result)
        return
    click.echo(f"{path}: {human_size(result['free'])} free of {human_size(result['total'])}")
    if not no_speed:
        cached = (result["cached_before_read"] or 0) > 0.1
        click.echo(
            f"write {result['write_mb_s']} MiB/s, read {result['read_mb_s']} MiB/s "
            f"({human_size(result['bytes'])}, fsync{'' if cached else ', page cache dropped'})"
        )
        if cached:
            click.echo(
                "note: the page cache could not be dropped here (a RAM file system?); "
                "the read speed is memory speed"
            )


@group.command("daemon")
@click.option("--host", help="WebSocket address (default [backup] daemon_host: localhost).")
@click.option("--port", type=click.IntRange(0, 65535), help="WebSocket port (default 1800).")
@pass_runtime
def daemon_cmd(rt: Runtime, host: str | None, port: int | None) -> None:
    """Run the scheduler and the WebSocket control API until stopped."""
    from homekeep.backup.daemon import run_daemon

    svc = _service(rt)
    run_daemon(
        svc,
        host=host or svc.config.daemon_host,
        port=svc.config.daemon_port if port is None else port,
        verbose=rt.verbose > 0,
        tokens=rt.tokens(),
    )


@group.command("init")
@click.option("--name", help="Job name (the service).")
@click.option("--source", help="Directory to back up.")
@click.option("--target", help="Path, host:path, rsync://..., or rclone remote:path.")
@click.option("--method", type=click.Choice(["mirror", "snapshot"]))
@click.option("--every", type=click.IntRange(1), help="Run every N units.")
@click.option("--units", type=click.Choice(["Seconds", "Minutes", "Hours", "Days"]))
@click.option("--cron", help="Cron expression instead of --every.")
@click.option("--exclude", "excludes", multiple=True, help="Exclude pattern (repeat).")
@click.option("--include-from", help="File of patterns: back up only those.")
@click.option("--keep-last", type=click.IntRange(0), default=0)
@click.option("--keep-daily", type=click.IntRange(0), default=0)
@click.option("--keep-weekly", type=click.IntRange(0), default=0)
@click.option("--keep-monthly", type=click.IntRange(0), default=0)
@click.option("--mount-point", help="Refuse to run unless this is mounted.")
@click.option("--catch-up", is_flag=True, help="Run missed runs once at daemon start.")
@click.option("--interactive", is_flag=True, help="Ask for every value not given.")
@pass_runtime
def init_cmd(rt: Runtime, /, interactive: bool, **values: Any) -> None:
    """Add a job to the config file: asks for what is missing, or takes it all from flags."""
    ask = interactive or sys.stdin.isatty()
    svc = _service(rt)
    if ask:
        prompts = [
            ("name", "Job name", None),
            ("source", "Source directory", None),
            ("target", "Target (empty: default under the backup root)", ""),
            ("method", "Method (mirror/snapshot)", "mirror"),
            ("every", "Run every N units (0: manual only)", 1),
            ("units", "Units (Seconds/Minutes/Hours/Days)", "Days"),
        ]
        for key, text, default in prompts:
            if values.get(key) is None and not (key in ("every", "units") and values["cron"]):
                values[key] = click.prompt(text, default=default, show_default=default != "")
        if values.get("every") in (0, "0"):
            values["every"] = None
    missing = [k for k in ("name", "source") if not values.get(k)]
    if missing:
        raise UsageError(f"give --{' and --'.join(missing)} (or run with --interactive)")
    data = {k: v for k, v in values.items() if v not in (None, "", (), 0, False)}
    data["excludes"] = list(values["excludes"])
    data["source"] = str(Path(str(values["source"])).expanduser().absolute())
    from pydantic import ValidationError

    from homekeep.backup.config import JobSpec, cron_problem
    from homekeep.backup.jobbook import describe_error

    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"job: {describe_error(exc)}") from exc
    if spec.cron and (problem := cron_problem(spec.cron)):
        raise InvalidInput(f"job: cron: {problem}")
    target = svc.roots.check_new(spec, svc.config)
    svc.jobs.add(spec)
    click.echo(f"added job {spec.name} ({spec.method} to {target.location}) to {svc.jobs.path}")
