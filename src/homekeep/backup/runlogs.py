"""The full tool output of each run: ``<data>/backup/logs/<job>/<run id>-<time>.log``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from homekeep.backup.retention import STAMP_FORMAT


def new_log(area_dir: Path, job: str, run_id: int) -> Path:
    """The path of a new run's log (its folder created)."""
    stamp = datetime.now(UTC).strftime(STAMP_FORMAT)
    path = area_dir / "logs" / job / f"{run_id:06d}-{stamp}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def prune(folder: Path, keep: int) -> None:
    """Delete the oldest run logs of a job beyond ``keep`` (names start with the run id)."""
    logs = sorted(folder.glob("*.log"), key=lambda p: int(p.name.split("-", 1)[0]))
    for old in logs[: max(0, len(logs) - keep)]:
        old.unlink(missing_ok=True)
        old.with_suffix(".filter").unlink(missing_ok=True)


def tail(path: str | None, lines: int) -> list[str]:
    """The last ``lines`` lines of a run's log; none when it is gone (pruned)."""
    if not path or not Path(path).is_file():
        return []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return text.splitlines()[-lines:]
