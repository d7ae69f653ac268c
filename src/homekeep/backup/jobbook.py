"""The list of jobs: read from the config file, changed at run time, written back to it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from homekeep.backup.config import BackupConfig, JobSpec
from homekeep.backup.jobnames import unknown_job
from homekeep.core.config import Settings, save_section
from homekeep.core.errors import ConfigError, Conflict, InvalidInput, NotFound
from homekeep.core.paths import default_config_path
from homekeep.core.rawconfig import raw_section


def describe_error(exc: ValidationError) -> str:
    """The first validation problem, in one line."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    text = f"{loc}: {err['msg']}" if loc else str(err["msg"])
    given = err.get("input")
    return f"{text}, got {given!r}" if isinstance(given, str) and loc else text


class JobBook:
    """Jobs of the [backup] section; changes are saved with every other key kept as written."""

    def __init__(self, settings: Settings, config: BackupConfig) -> None:
        self.path: Path = settings.path or default_config_path()
        self.config = config
        self._jobs: list[JobSpec] = list(config.jobs)
        self._mtime = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _reload(self) -> None:
        """Pick up jobs another process wrote to the config file."""
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        raw = self._raw_section()
        try:
            self._jobs = list(BackupConfig.model_validate({"jobs": raw.get("jobs", [])}).jobs)
        except ValidationError as exc:
            raise ConfigError(f"{self.path}: [backup] jobs: {describe_error(exc)}") from exc

    def _raw_section(self) -> dict[str, Any]:
        return raw_section(self.path, "backup")

    def all(self) -> list[JobSpec]:
        """Every job, in order."""
        with self._lock:
            self._reload()
            return list(self._jobs)

    def get(self, name: str) -> JobSpec:
        """One job by name, or NotFound listing the names."""
        for job in self.all():
            if job.name == name:
                return job
        raise unknown_job(name, [j.name for j in self.all()])

    def add(self, *jobs: JobSpec) -> None:
        """Add jobs (all or none) and save the config file once."""
        with self._lock:
            self._reload()
            names = {j.name for j in self._jobs}
            for job in jobs:
                if job.name in names:
                    raise Conflict(f"a backup job named {job.name!r} already exists")
                names.add(job.name)
            self._save([*self._jobs, *jobs])

    def replace(self, name: str, job: JobSpec) -> None:
        """Replace a job (possibly renaming it) and save."""
        with self._lock:
            self._reload()
            index = next((i for i, j in enumerate(self._jobs) if j.name == name), None)
            if index is None:
                raise NotFound(f"no backup job named {name!r}")
            if job.name != name and any(j.name == job.name for j in self._jobs):
                raise Conflict(f"a backup job named {job.name!r} already exists")
            jobs = list(self._jobs)
            jobs[index] = job
            self._save(jobs)

    def remove(self, name: str) -> JobSpec:
        """Remove a job and save; its history stays."""
        with self._lock:
            self._reload()
            for job in self._jobs:
                if job.name == name:
                    self._save([j for j in self._jobs if j.name != name])
                    return job
        raise NotFound(f"no backup job named {name!r}")

    def _save(self, jobs: list[JobSpec]) -> None:
        section = self._raw_section()
        section["jobs"] = [_compact(job) for job in jobs]
        try:
            BackupConfig.model_validate(section)
        except ValidationError as exc:
            raise InvalidInput(describe_error(exc)) from exc
        save_section(self.path, "backup", section)
        self._jobs = jobs
        self._mtime = self._stat()


def _compact(job: JobSpec) -> dict[str, Any]:
    """A job as a TOML table, leaving out keys at their defaults."""
    return job.model_dump(mode="json", exclude_defaults=True) | {
        "name": job.name,
        "source": job.source,
    }
