"""The one check of a job being added or edited: ``backup init``, AddDrive and the web page."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from homekeep.backup.config import JobSpec, cron_problem
from homekeep.backup.jobbook import describe_error
from homekeep.backup.roots import PathRefused
from homekeep.backup.service import Service
from homekeep.backup.targets import Target
from homekeep.core.errors import InvalidInput

REMOTE_REFUSED = (
    "remote targets (host:path, rsync://, rclone remotes) are set in the config file only, "
    "never over the API; add the job to [[backup.jobs]] there"
)


class JobRefused(InvalidInput):
    """A job's fields do not make a job; ``field`` names the first one at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_job(
    data: dict[str, Any], svc: Service, *, base: JobSpec | None = None, remote_ok: bool = False
) -> tuple[JobSpec, Target]:
    """The job ``data`` describes and its target, or JobRefused / PathRefused saying why.

    Over an API (``remote_ok`` False) a remote target is refused, unless it is the one
    the config file already gives the job being edited (``base``).
    """
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        raise JobRefused(str(loc[0]) if loc else "", describe_error(exc)) from exc
    if job.cron and (problem := cron_problem(job.cron)):
        raise JobRefused("cron", f"cron: {problem}")
    target = svc.roots.check_new(job, svc.config)
    if not target.is_local and not remote_ok and (base is None or job.target != base.target):
        raise PathRefused("target", REMOTE_REFUSED)
    return job, target
