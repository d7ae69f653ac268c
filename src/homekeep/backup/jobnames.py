"""Job names straight from the config file: the check a command makes before anything loads."""

from __future__ import annotations

from pathlib import Path

from homekeep.core.errors import ConfigError, NotFound
from homekeep.core.rawconfig import raw_section


def unknown_job(name: str, names: list[str]) -> NotFound:
    """The error for a job name that is not in the list, naming the ones that are."""
    listed = ", ".join(names) or "none yet"
    return NotFound(
        f"no backup job named {name!r} (jobs: {listed}); add one with 'homekeep backup init'"
    )


def check_job_name(config_path: Path | None, name: str) -> None:
    """NotFound unless the config file lists a job called ``name``.

    Only the raw TOML is read; a file the models would reject passes here and fails
    with its full message when the service loads it.
    """
    try:
        jobs = raw_section(config_path, "backup").get("jobs", [])
    except ConfigError:
        return  # the full load reports a broken file with its whole message
    if not isinstance(jobs, list):
        return
    names = [str(j.get("name")) for j in jobs if isinstance(j, dict) and "name" in j]
    if name not in names:
        raise unknown_job(name, names)
