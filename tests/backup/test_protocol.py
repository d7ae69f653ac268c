"""The protocol answers every message, however broken, with a response object."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homekeep.backup.config import BackupConfig, cron_problem, cron_shape_ok
from homekeep.backup.protocol import Commands, drive_entries
from homekeep.backup.service import Service, open_service
from homekeep.core.area import AreaContext
from homekeep.core.config import CORE_SECTIONS, load_settings

REQUESTS = [
    "ListDrives",
    "AddDrive",
    "RemoveDrive",
    "EditDrive",
    "RunDrive",
    "DriveStats",
    "GetHistory",
    "GetLogs",
    "Bogus",
]
KEYS = [
    "Name",
    "Source",
    "Target",
    "Sleep",
    "Units",
    "Drives",
    "Drive",
    "Limit",
    "Lines",
    "Run",
    "SpeedTest",
    "Method",
    "Excludes",
    "Cron",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"request": st.sampled_from(REQUESTS)},
    optional=dict.fromkeys(KEYS, json_values),
)


class RecordingControl:
    """Runs nothing; records what would have been started (injected for the protocol)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.started: list[str] = []

    def start_run(self, name: str) -> bool:
        self.started.append(name)
        return True

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        return fn()


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[backup]\nroot = "{tmp_path / "backups"}"\nallowed_roots = ["{tmp_path}"]\n'
    )
    settings = load_settings(
        config, {**CORE_SECTIONS, "backup": BackupConfig}, data_dir=tmp_path / "data", env={}
    )
    svc = open_service(AreaContext(name="backup", settings=settings))
    yield Commands(RecordingControl(svc))
    svc.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=messages)
def test_any_message_gets_a_response(commands: Commands, message: dict[str, Any]) -> None:
    answer = asyncio.run(commands.answer(json.dumps(message)))
    assert answer["response"] == message["request"]
    assert set(answer) >= {"response"}
    if "Result" in answer:
        assert answer["Result"] in ("Success", "Failure")
    json.dumps(answer)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200) | st.binary(max_size=100))
def test_garbage_gets_an_error_response(commands: Commands, text: str | bytes) -> None:
    answer = asyncio.run(commands.answer(text))
    assert answer["Result"] == "Failure" or answer["response"] in REQUESTS


@pytest.mark.parametrize(
    ("drives", "expected"),
    [
        ([{"1": {"Source": "/a"}}], [("1", {"Source": "/a"})]),
        (
            {"1": {"Source": "/a"}, "2": {"Source": "/b"}},
            [("1", {"Source": "/a"}), ("2", {"Source": "/b"})],
        ),
        ([{"Source": "/a", "Target": "/b"}], [(None, {"Source": "/a", "Target": "/b"})]),
        ({"Source": "/a"}, [(None, {"Source": "/a"})]),
        ([], None),
        ("drives", None),
        ([1], None),
    ],
)
def test_drive_forms(drives: Any, expected: Any) -> None:
    assert drive_entries(drives) == expected


def test_run_drive_starts_a_known_job(commands: Commands, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    add = {"request": "AddDrive", "Drives": [{"job": {"Source": str(src)}}]}
    assert asyncio.run(commands.answer(json.dumps(add)))["Result"] == "Success"
    answer = asyncio.run(commands.answer('{"request": "RunDrive", "Name": "job"}'))
    assert answer == {"response": "RunDrive", "Result": "Success", "Name": "job"}
    control = commands.control
    assert isinstance(control, RecordingControl)
    assert control.started == ["job"]


@pytest.mark.parametrize(
    ("job", "last", "due"),
    [
        # every/units: never run -> one interval from now; catch_up -> now.
        ({"every": 2, "units": "Hours"}, None, "2026-01-01T02:00:00"),
        ({"every": 2, "units": "Hours", "catch_up": True}, None, "2026-01-01T00:00:00"),
        # last run 1 h ago: due in 1 h, whatever catch_up says.
        ({"every": 2, "units": "Hours"}, "2025-12-31T23:00:00", "2026-01-01T01:00:00"),
        # missed while down: catch_up runs now, otherwise the schedule restarts.
        (
            {"every": 30, "units": "Minutes", "catch_up": True},
            "2025-12-31T20:00:00",
            "2026-01-01T00:00:00",
        ),
        ({"every": 30, "units": "Minutes"}, "2025-12-31T20:00:00", "2026-01-01T00:30:00"),
        ({"cron": "15 3 * * *"}, None, "2026-01-01T03:15:00"),
        ({"cron": "15 3 * * *", "catch_up": True}, "2025-12-30T03:15:00", "2026-01-01T00:00:00"),
        ({"cron": "15 3 * * *"}, "2025-12-31T03:15:00", "2026-01-01T03:15:00"),
        ({}, None, None),
        ({"every": 1, "units": "Days", "enabled": False}, None, None),
    ],
)
def test_first_due(job: dict[str, Any], last: str | None, due: str | None) -> None:
    from datetime import UTC, datetime

    from homekeep.backup.config import JobSpec
    from homekeep.backup.schedule import first_due

    spec = JobSpec.model_validate({"name": "j", "source": "/s", **job})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    started = datetime.fromisoformat(last).replace(tzinfo=UTC) if last else None
    got = first_due(spec, started, now)
    assert (got.replace(tzinfo=None).isoformat() if got else None) == due


@settings(max_examples=300, deadline=None)
@given(target=st.text(max_size=60))
def test_any_target_string_resolves_or_says_why(target: str) -> None:
    from homekeep.backup.config import JobSpec
    from homekeep.backup.targets import resolve
    from homekeep.core.errors import InvalidInput

    job = JobSpec(name="j", source="/s", target=target)
    problem = ""
    try:
        resolved = resolve(job, BackupConfig(root=Path("/srv/backup")))
    except InvalidInput as exc:
        problem = exc.message
    if problem:
        assert "target" in problem
        return
    # Nothing that could read as an rsync option ever reaches the command line.
    assert not resolved.location.startswith("-")
    assert resolved.kind in ("local", "ssh", "rsyncd", "rclone")


_CRON_FIELD = st.one_of(
    st.sampled_from(["*", "?", "L", "mon-fri", "jan", "5#3", "*/2", "1-5/2", "0,30", "61"]),
    st.integers(0, 70).map(str),
    st.text("0123456789*/,-?#LWa ", min_size=1, max_size=6),
)


@given(st.lists(_CRON_FIELD, min_size=1, max_size=8).map(" ".join))
@settings(max_examples=300, deadline=None)
def test_cron_shape_check_never_rejects_what_croniter_accepts(expr: str) -> None:
    # The config load only checks the shape (croniter stays unloaded for `backup run`);
    # it must never refuse an expression croniter would run.
    from croniter import croniter

    if croniter.is_valid(expr):
        assert cron_shape_ok(expr)
    assert (cron_problem(expr) is None) == croniter.is_valid(expr)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_malformed_not_a_crash(commands: Commands, depth: int) -> None:
    answer = asyncio.run(commands.answer("[" * depth + "]" * depth))
    assert answer in (
        {"response": "Error", "Result": "Failure", "Error": "Malformed JSON"},
        {"response": "Error", "Result": "Failure", "Error": "Invalid Request"},
    )
    deep = '{"request": "ListDrives", "x": ' + "[" * depth + "]" * depth + "}"
    assert asyncio.run(commands.answer(deep))["Error"] == "Malformed JSON"
