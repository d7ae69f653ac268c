"""When a job runs next: every N units, or a cron expression; missed runs on start."""

from __future__ import annotations

from datetime import datetime, timedelta

from homekeep.backup.config import JobSpec


def has_schedule(job: JobSpec) -> bool:
    """True when the job runs by itself (every/units or cron)."""
    return job.enabled and (job.interval is not None or bool(job.cron))


def next_after(job: JobSpec, moment: datetime) -> datetime | None:
    """The first run time after ``moment``, or None for a job without a schedule."""
    if job.interval is not None:
        return moment + timedelta(seconds=job.interval)
    if job.cron:
        from croniter import croniter

        nxt: datetime = croniter(job.cron, moment).get_next(datetime)
        return nxt
    return None


def first_due(job: JobSpec, last_start: datetime | None, now: datetime) -> datetime | None:
    """When the daemon, starting ``now``, first runs ``job``.

    A run missed while the daemon was down (or a job never run) runs at once with
    ``catch_up``; without it the schedule simply starts again from now.
    """
    if not has_schedule(job):
        return None
    if last_start is None:
        return now if job.catch_up else next_after(job, now)
    due = next_after(job, last_start)
    assert due is not None
    if due <= now:
        return now if job.catch_up else next_after(job, now)
    return due
