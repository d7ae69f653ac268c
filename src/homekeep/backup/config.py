"""The [backup] config section: where backups go, the jobs, exit-code classes, the daemon."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from homekeep.core.config import Section
from homekeep.core.origin import normalize

log = logging.getLogger("homekeep.backup")

Method = Literal["mirror", "snapshot"]
Tool = Literal["auto", "rsync", "rclone"]
RunClass = Literal["ok", "warning", "error", "cancelled"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+@-]{0,63}$")

# Seed 002's units, plus the singular spellings its own examples use ("Hour").
UNIT_SECONDS = {
    "seconds": 1,
    "second": 1,
    "minutes": 60,
    "minute": 60,
    "hours": 3600,
    "hour": 3600,
    "days": 86400,
    "day": 86400,
}


CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,?#-]+$")
CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_shape_ok(expr: str) -> bool:
    """True when ``expr`` looks like a cron expression: an @alias, or 5-7 fields of
    croniter's characters (the sixth is the second, the seventh the year)."""
    if expr.startswith("@"):
        return expr in CRON_ALIASES
    fields = expr.split()
    return 5 <= len(fields) <= 7 and all(CRON_FIELD_RE.match(f) for f in fields)


def cron_problem(expr: str) -> str | None:
    """Why croniter cannot use ``expr`` (a message), or None when it can."""
    from croniter import croniter

    if croniter.is_valid(expr):
        return None
    return f"not a valid cron expression: {expr!r}"


def invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as written (no "Value error, " prefix)."""
    return PydanticCustomError("backup_invalid", "{message}", {"message": message})


def unit_seconds(units: str) -> int | None:
    """Return the length of one unit in seconds, or None when the name is not a unit."""
    return UNIT_SECONDS.get(units.strip().lower())


class JobSpec(BaseModel):
    """One backup job (seed 002 calls it a drive), as written in ``[[backup.jobs]]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The job's name (the service); letters, digits, ' ._+@-'.")
    source: str = Field(description="The directory to back up (absolute path).")
    target: str = Field(
        default="",
        description="Where to: a path, a mounted share, host:path (ssh), rsync://host/module, "
        "or an rclone remote like b2:bucket/path. Empty: <root>/<name>.",
    )
    method: Method = Field(default="mirror", description="mirror or snapshot.")
    tool: Tool = Field(
        default="auto", description="rsync or rclone; auto picks rclone for rclone remotes."
    )
    excludes: list[str] = Field(default_factory=list, description="Exclude patterns.")
    include_from: str = Field(
        default="", description="A file of include patterns: only matching files are backed up."
    )
    every: int | None = Field(default=None, ge=1, description="Run every N units.")
    units: str = Field(default="Days", description="Seconds, Minutes, Hours or Days.")
    cron: str = Field(
        default="",
        description="A cron expression, instead of every/units (an optional sixth field is the "
        "second).",
    )
    catch_up: bool = Field(
        default=False, description="Run once at daemon start if a run was missed."
    )
    enabled: bool = Field(default=True, description="false: the daemon does not schedule it.")
    mount_point: str = Field(
        default="", description="Refuse to run unless this path is a mount point (network share)."
    )
    max_delete: int = Field(
        default=0, ge=0, description="Mirror: refuse more deletions (0: no limit)."
    )
    backup_dir: str = Field(
        default="", description="Mirror: keep replaced and deleted files in this directory."
    )
    keep_last: int = Field(default=0, ge=0, description="Snapshot retention: newest N.")
    keep_daily: int = Field(default=0, ge=0, description="Snapshot retention: one per day, N days.")
    keep_weekly: int = Field(default=0, ge=0, description="Snapshot retention: one per week.")
    keep_monthly: int = Field(default=0, ge=0, description="Snapshot retention: one per month.")
    bwlimit: str = Field(
        default="", description="Bandwidth limit passed to rsync/rclone, e.g. 10M."
    )
    ssh_command: str = Field(default="", description="Remote shell for host:path targets (-e).")
    extra_args: list[str] = Field(
        default_factory=list, description="More arguments for rsync or rclone."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value) or value.strip() != value:
            raise invalid(
                "a job name is 1-64 letters, digits, spaces and ._+@- and starts with a "
                "letter or digit"
            )
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.startswith("/"):
            raise invalid("source must be an absolute path")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise invalid("source has a control character; type the path again")
        return value

    @field_validator("units")
    @classmethod
    def _units(cls, value: str) -> str:
        if unit_seconds(value) is None:
            raise invalid("units must be Seconds, Minutes, Hours or Days")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        # The shape only: loading croniter here would cost every command (``backup run``
        # too) ~35 ms. Field ranges are checked by cron_problem() where a schedule is
        # used: init, the daemon's start, AddDrive/EditDrive.
        if value and not cron_shape_ok(value):
            raise invalid("not a valid cron expression")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if self.every is not None and self.cron:
            raise invalid("give either every/units or cron, not both")
        return self

    @property
    def schedule_text(self) -> str:
        """The schedule in words: "every 6 Hours", "cron 0 3 * * *" or "manual"."""
        if self.cron:
            return f"cron {self.cron}"
        if self.every is not None:
            return f"every {self.every} {self.units}"
        return "manual"

    @property
    def interval(self) -> int | None:
        """Seconds between runs for every/units schedules."""
        if self.every is None:
            return None
        seconds = unit_seconds(self.units)
        assert seconds is not None
        return self.every * seconds


class BackupConfig(Section):
    """Backups and drive mirrors through rsync and rclone."""

    root: Path = Field(
        default=Path("/srv/backup"), description="Local backups go to <root>/<job name>."
    )
    jobs: list[JobSpec] = Field(
        default_factory=list, description="The jobs: one [[backup.jobs]] table each."
    )
    rclone_config: Path | None = Field(
        default=None, description="rclone config file (default: rclone's own)."
    )
    exit_codes: dict[Literal["rsync", "rclone"], dict[str, RunClass]] = Field(
        default_factory=dict,
        description='Override the class of a tool\'s exit code, e.g. {rsync = {"24" = "error"}}.',
    )
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path("~"), Path("/srv"), Path("/mnt"), Path("/media")],
        description="Jobs read and write only inside these folders and root (~ is the home "
        "of the user homekeep runs as). System folders, ~/.ssh, ~/.config, ~/.local and "
        "the data directory are refused even inside them; list a system folder here to "
        "allow it.",
    )
    daemon_host: str = Field(default="localhost", description="WebSocket control API address.")
    daemon_port: int = Field(default=1800, ge=0, le=65535, description="WebSocket port.")
    daemon_origins: list[str] = Field(
        default_factory=list,
        description="Web pages allowed to open the WebSocket besides the daemon's own "
        "address, as origins: http://nas.local:8080.",
    )
    daemon_max_connections: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Open WebSocket connections the daemon takes at once (503 past it).",
    )
    log_max_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Rotate the backup log at this size."
    )
    log_backup_count: int = Field(default=5, ge=0, le=1000, description="Rotated logs to keep.")
    keep_run_logs: int = Field(
        default=100, ge=1, description="Per job, keep the tool output of this many newest runs."
    )
    on_failure_command: list[str] = Field(
        default_factory=list,
        description="Command run when a run fails (argv; env HOMEKEEP_BACKUP_JOB and friends).",
    )
    on_failure_url: str = Field(
        default="", description="URL that gets a JSON POST when a run fails."
    )

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and "daemon_require_token" in data:
            data = {k: v for k, v in data.items() if k != "daemon_require_token"}
            log.warning(
                "[backup] daemon_require_token is no longer read: the daemon always requires "
                "a token; remove the key from the config file"
            )
        return data

    @field_validator("allowed_roots")
    @classmethod
    def _roots(cls, value: list[Path]) -> list[Path]:
        for root in value:
            if not root.expanduser().is_absolute():
                raise invalid(f"allowed root {str(root)!r} is not an absolute path (or ~/...)")
        return value

    @field_validator("daemon_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            found = normalize(origin)
            if found is None:
                raise invalid(
                    f"{origin!r} is not an origin; write scheme://host[:port], "
                    "e.g. http://nas.local:8080"
                )
            out.append(found)
        return out

    @field_validator("exit_codes")
    @classmethod
    def _codes(cls, value: dict[str, dict[str, RunClass]]) -> dict[str, dict[str, RunClass]]:
        for codes in value.values():
            for code in codes:
                if not code.isdigit():
                    raise invalid(f"exit code {code!r} is not a number")
        return value

    @model_validator(mode="after")
    def _unique(self) -> BackupConfig:
        seen: set[str] = set()
        for job in self.jobs:
            if job.name in seen:
                raise invalid(f"two jobs are named {job.name!r}")
            seen.add(job.name)
        return self
