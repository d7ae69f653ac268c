"""The run history: one SQLite row per run of a job."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from homekeep.core.db import Database, utcnow

MIGRATIONS = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL,
        trigger TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        target TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration REAL,
        class TEXT NOT NULL DEFAULT 'running',
        exit_code INTEGER,
        snapshot TEXT,
        files_total INTEGER,
        files_transferred INTEGER,
        bytes_transferred INTEGER,
        total_size INTEGER,
        bytes_added INTEGER,
        free_before INTEGER,
        free_after INTEGER,
        errors TEXT NOT NULL DEFAULT '[]',
        log_file TEXT
    );
    CREATE INDEX runs_job_started ON runs (job, started_at);
    """,
)


@dataclass
class Run:
    """One run of a job, as recorded."""

    id: int
    job: str
    trigger: str
    tool: str
    method: str
    target: str
    started_at: str
    finished_at: str | None = None
    duration: float | None = None
    result: str = "running"
    exit_code: int | None = None
    snapshot: str | None = None
    files_total: int | None = None
    files_transferred: int | None = None
    bytes_transferred: int | None = None
    total_size: int | None = None
    bytes_added: int | None = None
    free_before: int | None = None
    free_after: int | None = None
    errors: list[str] = field(default_factory=list)
    log_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The run as a JSON object (the shape of --json, the API and GetHistory)."""
        return asdict(self)


_FIELDS = [
    "finished_at",
    "duration",
    "exit_code",
    "snapshot",
    "files_total",
    "files_transferred",
    "bytes_transferred",
    "total_size",
    "bytes_added",
    "free_before",
    "free_after",
    "log_file",
]


def _row(row: Any) -> Run:
    data = dict(row)
    data["result"] = data.pop("class")
    data["errors"] = json.loads(data["errors"])
    return Run(**data)


class RunStore:
    """Runs in the area's SQLite file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, job: str, *, trigger: str, tool: str, method: str, target: str) -> Run:
        """Record a run that starts now."""
        started = utcnow()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (job, trigger, tool, method, target, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job, trigger, tool, method, target, started),
            )
        assert cur.lastrowid is not None
        return Run(cur.lastrowid, job, trigger, tool, method, target, started)

    def finish(self, run: Run) -> None:
        """Write a finished run's results."""
        values = {name: getattr(run, name) for name in _FIELDS}
        sets = ", ".join(f"{name} = :{name}" for name in values)
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE runs SET {sets}, class = :result, errors = :errors WHERE id = :id",  # noqa: S608
                {**values, "result": run.result, "errors": json.dumps(run.errors), "id": run.id},
            )

    def interrupt_running(self, job: str) -> int:
        """Mark runs of a job left 'running' by a process that died as errors."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET class = 'error', finished_at = ?,"
                " errors = '[\"interrupted: the process running it stopped\"]'"
                " WHERE job = ? AND class = 'running'",
                (utcnow(), job),
            )
        return cur.rowcount

    def history(self, job: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs, oldest first; the newest ``limit`` when given."""
        where, params = ("WHERE job = ?", [job]) if job is not None else ("", [])
        sql = f"SELECT * FROM runs {where} ORDER BY id DESC"  # noqa: S608
        if limit is not None:
            sql += " LIMIT ?"
            params.append(str(limit))
        rows = self.db.query(sql, params)
        return [_row(r) for r in reversed(rows)]

    def get(self, run_id: int) -> Run | None:
        """One run by id."""
        row = self.db.query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _row(row) if row else None

    def last(self, job: str) -> Run | None:
        """The newest run of a job."""
        row = self.db.query_one("SELECT * FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1", (job,))
        return _row(row) if row else None

    def last_size(self, job: str, target: str) -> int | None:
        """The total size recorded by the newest finished run of a job on this target."""
        row = self.db.query_one(
            "SELECT total_size FROM runs WHERE job = ? AND target = ? AND total_size IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (job, target),
        )
        return int(row["total_size"]) if row else None
