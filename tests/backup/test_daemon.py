"""The daemon: seed 002's WebSocket protocol, run events, persistence, schedules."""

from __future__ import annotations

import json
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.backup.conftest import Home, ask, daemon, events_until

# The seed's examples, read as valid JSON: "Drives" is a list of one-key objects and the
# Windows paths have their backslashes escaped.
SEED_LIST = '{\n  "request": "ListDrives"\n}'
SEED_ADD = """{
  "request": "AddDrive",
  "Drives": [
    {"1": {
      "Name": "Test Drive",
      "Source": "C:\\\\Whatever",
      "Target": "D:\\\\Whatever",
      "Sleep": 12,
      "Units": "Hour"
    }}
  ]
}"""
# The seed's text exactly as printed: not JSON, so it gets the malformed-JSON answer.
SEED_ADD_LITERAL = """{
  "request": "AddDrive",
  "Drives": [
    "1": {
      "Name": "Test Drive",
      "Source": "C:\\Whatever",
      "Target": "D:\\Whatever",
      "Sleep": 12,
      "Units": "Hour"
    }
  ]
}"""


def drive(source: Path, target: Path, **more: Any) -> dict[str, Any]:
    return {"Source": str(source), "Target": str(target), **more}


def test_seed_examples(home: Home, source: Path) -> None:
    home.write([])
    with daemon(home) as url, home.client(url) as ws:
        assert ask(ws, SEED_LIST) == {"response": "ListDrives", "Drives": []}
        assert ask(ws, SEED_ADD) == {
            "response": "AddDrive",
            "Result": "Failure",
            "Error": "Invalid Source Path",
            "Message": "Source must be an absolute path",
        }
        assert ask(ws, SEED_ADD_LITERAL) == {
            "response": "Error",
            "Result": "Failure",
            "Error": "Malformed JSON",
        }
        real = json.loads(SEED_ADD)
        real["Drives"][0]["1"] |= drive(source, home.tmp / "mirror")
        assert ask(ws, real) == {"response": "AddDrive", "Result": "Success"}
        assert ask(ws, SEED_LIST) == {
            "response": "ListDrives",
            "Drives": [
                {
                    "Test Drive": {
                        "Source": str(source),
                        "Target": str(home.tmp / "mirror"),
                        "Sleep": 12,
                        "Units": "Hour",
                    }
                }
            ],
        }
    saved = tomllib.loads(home.config.read_text())
    assert saved["backup"]["jobs"] == [
        {
            "name": "Test Drive",
            "source": str(source),
            "target": str(home.tmp / "mirror"),
            "every": 12,
            "units": "Hour",
        }
    ]
    assert home.config.read_text().startswith("# kept comment")
    listed = json.loads(home.cli("backup", "list", "--json").stdout)
    assert listed[0]["schedule"] == "every 12 Hour"
    # A restarted daemon lists the drive it was given before.
    with daemon(home) as url, home.client(url) as ws:
        again = ask(ws, SEED_LIST)["Drives"]
        # Units left out default to Days; the name to the drive's index in the list.
        plain = {"request": "AddDrive", "Drives": [drive(source, home.tmp / "m2", Sleep=3)]}
        assert ask(ws, plain) == {"response": "AddDrive", "Result": "Success"}
        assert ask(ws, SEED_LIST)["Drives"][1] == {
            "2": drive(source, home.tmp / "m2", Sleep=3, Units="Days")
        }
    assert again == [
        {
            "Test Drive": {
                "Source": str(source),
                "Target": str(home.tmp / "mirror"),
                "Sleep": 12,
                "Units": "Hour",
            }
        }
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"Sleep": "twelve", "Units": "Hours"}, {"Result": "Success", "Warning": "Invalid Time"}),
        ({"Sleep": 0}, {"Result": "Success", "Warning": "Invalid Time"}),
        ({"Sleep": 3, "Units": "Fortnights"}, {"Result": "Success", "Warning": "Invalid Units"}),
        (
            {"Source": "/no/such/dir", "Units": "Weeks"},
            {"Result": "Failure", "Error": "Invalid Source Path", "Warning": "Invalid Units"},
        ),
        ({"Target": "D:\\Whatever"}, {"Result": "Failure", "Error": "Invalid Target Path"}),
        ({"Target": "relative/path"}, {"Result": "Failure", "Error": "Invalid Target Path"}),
        ({"Target": "/"}, {"Result": "Failure", "Error": "Invalid Target Path"}),  # holds Source
        ({"Target": 7}, {"Result": "Failure", "Error": "Invalid Target Path"}),
        ({"Name": "../../etc"}, {"Result": "Failure", "Error": "Invalid Name"}),
    ],
)
def test_add_drive_errors_and_warnings(
    home: Home, source: Path, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    home.write([])
    with daemon(home) as url, home.client(url) as ws:
        message = {"request": "AddDrive", "Drives": [{"1": drive(source, home.tmp / "t") | fields}]}
        answer = ask(ws, message)
        # A failure says why in a Message; the seed's fields are as the seed has them.
        assert bool(answer.pop("Message", "")) == (expected["Result"] == "Failure")
        assert answer == {"response": "AddDrive", **expected}
        drives = ask(ws, SEED_LIST)["Drives"]
        if expected["Result"] == "Success":
            # Invalid time input falls back to one day.
            assert drives == [{"1": drive(source, home.tmp / "t", Sleep=1, Units="Days")}]
        else:
            assert drives == []


def test_drive_forms_names_and_requests(home: Home, source: Path) -> None:
    home.write([])
    with daemon(home) as url, home.client(url) as ws:
        # Object form; a list of plain drives (named after their index); duplicates.
        assert (
            ask(ws, {"request": "AddDrive", "Drives": {"A": drive(source, home.tmp / "a")}})[
                "Result"
            ]
            == "Success"
        )
        assert (
            ask(ws, {"request": "AddDrive", "Drives": [drive(source, home.tmp / "b")]})["Result"]
            == "Success"
        )
        assert ask(ws, {"request": "AddDrive", "Drives": {"A": drive(source, home.tmp / "c")}}) == {
            "response": "AddDrive",
            "Result": "Failure",
            "Error": "Duplicate Name",
        }
        names = [next(iter(d)) for d in ask(ws, SEED_LIST)["Drives"]]
        assert names == ["A", "2"]
        edited = ask(
            ws,
            {
                "request": "EditDrive",
                "Name": "2",
                "Drive": {"Name": "B", "Sleep": 30, "Units": "Minutes"},
            },
        )
        assert edited == {"response": "EditDrive", "Result": "Success"}
        assert ask(ws, SEED_LIST)["Drives"][1] == {
            "B": drive(source, home.tmp / "b", Sleep=30, Units="Minutes")
        }
        assert ask(ws, {"request": "RemoveDrive", "Name": "A"}) == {
            "response": "RemoveDrive",
            "Result": "Success",
        }
        assert ask(ws, {"request": "RemoveDrive", "Name": "A"}) == {
            "response": "RemoveDrive",
            "Result": "Failure",
            "Error": "Unknown Drive",
        }
        for bad, answer in [
            ("{", {"response": "Error", "Result": "Failure", "Error": "Malformed JSON"}),
            ("[1, 2]", {"response": "Error", "Result": "Failure", "Error": "Invalid Request"}),
            (
                '{"request": 5}',
                {"response": "Error", "Result": "Failure", "Error": "Invalid Request"},
            ),
            (
                '{"request": "FormatDisk"}',
                {"response": "FormatDisk", "Result": "Failure", "Error": "Unknown Request"},
            ),
            (
                '{"request": "AddDrive", "Drives": "x"}',
                {"response": "AddDrive", "Result": "Failure", "Error": "Invalid Drives"},
            ),
            (
                json.dumps({"request": "AddDrive", "Drives": [{"Source": "/"}] * 101}),
                {"response": "AddDrive", "Result": "Failure", "Error": "Too Many Drives"},
            ),
            (
                '{"request": "RunDrive"}',
                {"response": "RunDrive", "Result": "Failure", "Error": "Missing Name"},
            ),
            (
                '{"request": "GetHistory", "Name": "B", "Limit": -1}',
                {"response": "GetHistory", "Result": "Failure", "Error": "Invalid Limit"},
            ),
        ]:
            assert ask(ws, bad) == answer
        ws.send(b"\x00\x01binary")
        assert json.loads(ws.recv(timeout=10))["Error"] == "Invalid Request"
        # Still connected after all that.
        assert len(ask(ws, SEED_LIST)["Drives"]) == 1
        ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009  # message too big
    jobs = tomllib.loads(home.config.read_text())["backup"]["jobs"]
    assert [j["name"] for j in jobs] == ["B"]


def test_run_drive_pushes_events_and_history(home: Home, source: Path) -> None:
    home.write([{"name": "docs", "source": str(source)}])
    with daemon(home) as url, home.client(url) as ws:
        ws.send(json.dumps({"request": "RunDrive", "Name": "docs"}))
        begun = time.monotonic()
        answer = json.loads(ws.recv(timeout=30))  # the answer comes first, at once
        assert answer == {"response": "RunDrive", "Result": "Success", "Name": "docs"}
        assert time.monotonic() - begun < 2
        events = events_until(ws, "RunFinished")
        assert events[0]["event"] == "RunStarted"
        progress = [e for e in events if e["event"] == "RunProgress"]
        assert progress
        assert 0 <= progress[-1]["Percent"] <= 100
        finished = events[-1]
        assert finished["Result"] == "ok"
        assert finished["Summary"].startswith("docs: ok in")
        assert (home.root / "docs" / "a.txt").read_text() == "alpha\n"
        history = ask(ws, {"request": "GetHistory", "Name": "docs"})
        assert [r["result"] for r in history["Runs"]] == ["ok"]
        assert history["Runs"][0]["trigger"] == "api"
        logs = ask(ws, {"request": "GetLogs", "Name": "docs"})
        assert logs["Run"] == finished["Run"]
        assert any(line.startswith("$ ") and "rsync" in line for line in logs["Lines"])
        assert any("Number of files" in line for line in logs["Lines"])
        stats = ask(ws, {"request": "DriveStats", "Name": "docs", "SpeedTest": True})
        assert stats["Result"] == "Success"
        assert stats["Source"]["free"] > 0
        assert stats["Target"]["total"] > 0
        assert stats["Speed"]["write_mb_s"] > 0
        assert stats["LastRun"]["id"] == finished["Run"]
        assert ask(ws, {"request": "GetLogs", "Name": "docs", "Run": 999}) == {
            "response": "GetLogs",
            "Result": "Failure",
            "Error": "Unknown Run",
        }


def started(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["started_at"])


def test_schedule_in_seconds_and_catch_up(home: Home, source: Path) -> None:
    every4 = {"source": str(source), "every": 4, "units": "Seconds"}
    home.write(
        [
            {"name": "eager", **every4, "catch_up": True},
            {"name": "patient", **every4},
            {
                "name": "fresh",
                "source": str(source),
                "every": 1,
                "units": "Minutes",
                "catch_up": True,
            },
        ]
    )
    assert home.cli("backup", "run", "eager").returncode == 0
    assert home.cli("backup", "run", "patient").returncode == 0
    time.sleep(4.2)  # both are now overdue: the daemon was "down"
    assert home.cli("backup", "run", "fresh").returncode == 0
    start = datetime.now(UTC).replace(microsecond=0)
    with daemon(home) as url, home.client(url) as ws:
        ready = datetime.now(UTC)
        added = {
            "request": "AddDrive",
            "Drives": [{"fast": drive(source, home.tmp / "fast", Sleep=1, Units="Seconds")}],
        }
        assert ask(ws, added)["Result"] == "Success"
        time.sleep(3.5)
    eager, patient = home.history("eager"), home.history("patient")
    # The missed run ran at start; without catch_up the schedule restarted from then.
    assert eager[1]["trigger"] == "schedule"
    assert started(eager[1]) <= ready + timedelta(seconds=1)
    assert all(started(r) >= start + timedelta(seconds=3) for r in patient[1:])
    assert len(home.history("fresh")) == 1  # ran recently: nothing was missed
    fast = home.history("fast")
    assert 2 <= len(fast) <= 5
    assert {r["trigger"] for r in fast} == {"schedule"}


def finished(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that have ended (a run is listed from its start)."""
    return [r for r in runs if r.get("finished_at")]


def test_cron_with_a_seconds_field_fires_live(home: Home, source: Path) -> None:
    # croniter's optional sixth field is the second: every 2 seconds, on even seconds.
    home.write([{"name": "ticking", "source": str(source), "cron": "* * * * * */2"}])
    listed = home.cli("backup", "list", "--json")
    assert json.loads(listed.stdout)[0]["schedule"] == "cron * * * * * */2"
    with daemon(home):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(finished(home.history("ticking"))) < 2:
            time.sleep(0.5)
    runs = home.history("ticking")
    assert len(runs) >= 2, runs
    assert {r["trigger"] for r in runs} == {"schedule"}
    assert all(started(r).timestamp() % 2 < 1.5 for r in runs)  # soon after an even second
    assert [r["result"] for r in runs[:2]] == ["ok", "ok"]
    # Stopping the daemon may catch a later tick mid-run: that one is recorded as cancelled.
    assert {r["result"] for r in runs[2:]} <= {"ok", "cancelled"}
