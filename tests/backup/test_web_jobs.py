"""The backup page's API on a real server: jobs added, changed and deleted with a login,
runs followed, a backup browsed and restored from; hostile input refused with nothing written."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backup.conftest import Home, make_tree
from tests.support import Server, WebSession, add_user, create_token, running

pytestmark = pytest.mark.timeout(120)


@dataclass
class Site:
    """A server with an admin and a user who may use backup, both logged in."""

    home: Home
    server: Server
    admin: WebSession
    user: WebSession

    def jobs(self) -> list[dict[str, Any]]:
        saved: list[dict[str, Any]] = tomllib.loads(self.home.config.read_text())["backup"].get(
            "jobs", []
        )
        return saved

    def still_up(self) -> None:
        assert self.server.client().get("/healthz").status_code == 200
        assert self.server.process.poll() is None


def send(session: WebSession, method: str, path: str, body: Any) -> Any:
    """A JSON request the way the page sends it: the session cookie and its CSRF token."""
    return send_text(session, method, path, json.dumps(body))


def send_text(session: WebSession, method: str, path: str, text: str) -> Any:
    """``send`` of a body already written as JSON text."""
    return session.client.request(
        method,
        path,
        content=text.encode(),
        headers={
            "Content-Type": "application/json",
            "X-CSRF-Token": session.csrf,
            "Origin": session.origin,
        },
    )


@pytest.fixture
def site(home: Home, source: Path) -> Iterator[Site]:
    home.write([])
    add_user(home.data, "root", "root password", admin=True)
    add_user(home.data, "bob", "bob password", "backup")
    with running(["--config", home.config, "serve", "--port", "0"], data_dir=home.data) as srv:
        admin = WebSession.open(srv.url)
        assert admin.login("root", "root password").status_code == 303
        user = WebSession.open(srv.url, source="127.0.0.2")
        assert user.login("bob", "bob password").status_code == 303
        try:
            yield Site(home, srv, admin, user)
        finally:
            admin.close()
            user.close()


def files_outside(home: Home) -> list[Path]:
    """Every path of the test's folder but the server's data directory."""
    return sorted(p for p in home.tmp.rglob("*") if home.data not in p.parents)


def wait_for_run(session: WebSession, job: str) -> dict[str, Any]:
    """The job's newest run once this server no longer runs it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if job not in session.client.get("/api/backup/progress").json()["running"]:
            break
        time.sleep(0.1)
    runs: list[dict[str, Any]] = session.client.get(f"/api/backup/jobs/{job}/runs").json()
    return runs[-1]


def test_an_admin_adds_changes_and_deletes_a_job(site: Site, source: Path) -> None:
    added = send(
        site.admin,
        "POST",
        "/api/backup/jobs",
        {"name": "photos", "source": str(source), "every": 6, "units": "Hours"},
    )
    assert added.status_code == 201, added.text
    assert added.json()["schedule"] == "every 6 Hours"
    assert site.jobs() == [{"name": "photos", "source": str(source), "every": 6, "units": "Hours"}]
    assert site.home.config.read_text().startswith("# kept comment")
    listed = site.user.client.get("/api/backup/jobs").json()
    assert [j["name"] for j in listed] == ["photos"]
    changed = send(
        site.admin,
        "PUT",
        "/api/backup/jobs/photos",
        {
            "name": "pictures",
            "method": "snapshot",
            "cron": "0 3 * * *",
            "every": None,
            "keep_daily": 7,
            "excludes": ["*.tmp"],
        },
    )
    assert changed.status_code == 200, changed.text
    assert site.jobs() == [
        {
            "name": "pictures",
            "source": str(source),
            "method": "snapshot",
            "excludes": ["*.tmp"],
            "units": "Hours",  # kept from before: a schedule switched back to every
            "cron": "0 3 * * *",
            "keep_daily": 7,
        }
    ]
    assert send(site.admin, "DELETE", "/api/backup/jobs/photos", None).status_code == 404
    gone = send(site.admin, "DELETE", "/api/backup/jobs/pictures", None)
    assert gone.json() == {"deleted": "pictures"}
    assert site.jobs() == []
    site.still_up()


def test_a_user_reads_and_runs_but_only_an_admin_changes(site: Site, source: Path) -> None:
    assert send(site.admin, "POST", "/api/backup/jobs", {"name": "docs", "source": str(source)})
    before = site.home.config.read_bytes()
    attempts = [
        ("POST", "/api/backup/jobs", {"name": "mine", "source": str(source)}),
        ("PUT", "/api/backup/jobs/docs", {"name": "docs", "source": str(source), "every": 1}),
        ("DELETE", "/api/backup/jobs/docs", None),
        ("POST", "/api/backup/jobs/docs/restore", {"dest": str(site.home.tmp / "out")}),
    ]
    for method, path, body in attempts:
        refused = send(site.user, method, path, body)
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "forbidden"
    assert site.home.config.read_bytes() == before
    # a personal token of the admin is no admin; a CLI token with the backup scope is
    token = create_token(site.home.data, "script", "backup")
    scripted = site.server.client(token).post(
        "/api/backup/jobs", json={"name": "scripted", "source": str(source)}
    )
    assert scripted.status_code == 201
    started = site.user.client.post(
        "/api/backup/jobs/docs/run", headers={"X-CSRF-Token": site.user.csrf}
    )
    assert started.status_code == 202
    assert wait_for_run(site.user, "docs")["result"] == "ok"
    assert (site.home.root / "docs" / "a.txt").read_text() == "alpha\n"
    # without the CSRF token, the cookie alone changes nothing
    forged = site.admin.client.post(
        "/api/backup/jobs",
        json={"name": "forged", "source": str(source)},
        headers={"Origin": site.admin.origin},
    )
    assert forged.status_code == 403
    assert "forged" not in site.home.config.read_text()


# One server takes every case of a table: each asserts that nothing was written, so
# the cases cannot see each other, and a server start per case cost minutes.
BAD_JOBS: list[tuple[Any, int, str]] = [
    ({"name": "<script>alert(1)</script>", "source": "SRC"}, 422, "a job name is"),
    ({"name": "../../etc", "source": "SRC"}, 422, "a job name is"),
    ({"name": "x" * 65, "source": "SRC"}, 422, "a job name is"),
    ({"name": "x" * 201, "source": "SRC"}, 422, "at most 200 characters"),
    ({"source": "SRC"}, 422, "name: Field required"),
    ({"name": "a"}, 422, "source: Field required"),
    ({"name": "a", "source": "relative/path"}, 422, "absolute path"),
    ({"name": "a", "source": "/nonexistent/folder"}, 422, "not an existing directory"),
    ({"name": "a", "source": "/etc"}, 422, "/etc"),
    ({"name": "a", "source": "SRC", "target": "/var/tmp/x"}, 422, "allowed_roots"),
    ({"name": "a", "source": "SRC", "target": "nas:/backups"}, 422, "config file only"),
    ({"name": "a", "source": "SRC", "target": "SRC/inside"}, 422, "inside the source"),
    ({"name": "a", "source": "SRC", "method": "copy"}, 422, "method"),
    ({"name": "a", "source": "SRC", "every": "daily"}, 422, "every"),
    ({"name": "a", "source": "SRC", "every": 0}, 422, "every"),
    ({"name": "a", "source": "SRC", "every": 1, "cron": "0 3 * * *"}, 422, "not both"),
    ({"name": "a", "source": "SRC", "cron": "61 3 * * *"}, 422, "cron"),
    ({"name": "a", "source": "SRC", "units": "Weeks"}, 422, "units must be"),
    ({"name": "a", "source": "SRC", "excludes": "*.tmp"}, 422, "excludes"),
    ({"name": "a", "source": "SRC", "ssh_command": "sh -c evil"}, 422, "ssh_command"),
    ({"name": "a", "source": "SRC", "extra_args": ["--rsh=evil"]}, 422, "extra_args"),
    ({"name": "a", "source": "SRC", "keep_last": -1}, 422, "keep_last"),
    ({"name": "a", "source": "SRC", "excludes": ["x"] * 201}, 422, "excludes"),
    ({"name": "dup", "source": "SRC"}, 409, "already exists"),
    ([1, 2], 422, "Input should be an object"),
    ("just text", 422, "Input should be an object"),
]


def test_bad_jobs_are_refused_and_nothing_is_written(site: Site, source: Path) -> None:
    assert send(site.admin, "POST", "/api/backup/jobs", {"name": "dup", "source": str(source)})
    for body, status, message in BAD_JOBS:
        _refuse_job(site, source, body, status, message)


def _refuse_job(site: Site, source: Path, body: Any, status: int, message: str) -> None:
    before = site.home.config.read_bytes()
    text = json.dumps(body).replace('"SRC', '"' + str(source))
    refused = send_text(site.admin, "POST", "/api/backup/jobs", text)
    assert refused.status_code == status, (body, refused.text)
    assert set(refused.json()) == {"error"}
    assert message in refused.json()["error"]["message"], body
    assert site.home.config.read_bytes() == before
    # an edit is checked the same way (where it leaves out a field, that field is kept)
    if isinstance(body, dict) and status == 422 and "required" not in message:
        edit = send_text(site.admin, "PUT", "/api/backup/jobs/dup", text)
        assert edit.status_code == 422, body
        assert site.home.config.read_bytes() == before
    site.still_up()


BROKEN_BODIES: list[tuple[bytes, str, int]] = [
    (b"{not json", "application/json", 422),
    (b'{"name": "a", "source": "/x"' + b" " * 70_000 + b"}", "application/json", 413),
    (b"name=a&source=/x", "application/x-www-form-urlencoded", 415),
    (b"", "application/json", 422),
    (b'{"name": "\xff\xfe"}', "application/json", 422),
]


def test_broken_bodies_get_a_4xx(site: Site) -> None:
    for content, kind, status in BROKEN_BODIES:
        before = site.home.config.read_bytes()
        headers = {
            "Content-Type": kind,
            "X-CSRF-Token": site.admin.csrf,
            "Origin": site.admin.origin,
        }
        answer = site.admin.client.post("/api/backup/jobs", content=content, headers=headers)
        assert answer.status_code == status, (content[:40], answer.text)
        assert set(answer.json()["error"]) == {"code", "message"}
        assert site.home.config.read_bytes() == before
        site.still_up()


def test_browse_a_snapshot_and_restore_a_file_and_a_folder(site: Site, source: Path) -> None:
    home = site.home
    added = send(
        site.admin,
        "POST",
        "/api/backup/jobs",
        {"name": "snap", "source": str(source), "method": "snapshot"},
    )
    assert added.status_code == 201, added.text
    empty = site.user.client.get("/api/backup/jobs/snap/snapshots").json()
    assert empty["snapshots"] == []
    run = send(site.admin, "POST", "/api/backup/jobs/snap/run", None)
    assert run.status_code == 202
    assert wait_for_run(site.admin, "snap")["result"] == "ok"
    snapshots = site.user.client.get("/api/backup/jobs/snap/snapshots").json()["snapshots"]
    assert len(snapshots) == 1
    stamp = snapshots[0]
    top = site.user.client.get("/api/backup/jobs/snap/browse", params={"snapshot": stamp})
    assert top.status_code == 200, top.text
    top = top.json()
    assert [(e["name"], e["kind"]) for e in top["entries"]] == [
        ("cache", "dir"),
        ("notes", "dir"),
        ("photos", "dir"),
        ("a.txt", "file"),
        ("b.jpg", "file"),
    ]
    notes = site.user.client.get(
        "/api/backup/jobs/snap/browse", params={"snapshot": stamp, "path": "notes"}
    ).json()
    assert notes["entries"][0]["name"] == "c.md"
    assert notes["entries"][0]["size"] == len("# notes\n")

    out = home.tmp / "restored"

    def restore(**body: Any) -> Any:
        return send(
            site.admin, "POST", "/api/backup/jobs/snap/restore", {"snapshot": stamp, **body}
        )

    done = restore(path="notes/c.md", dest=str(out))
    assert done.status_code == 200, done.text
    assert done.json()["restored"] == str(out / "c.md")
    assert (out / "c.md").read_text() == "# notes\n"
    again = restore(path="notes/c.md", dest=str(out))
    assert again.status_code == 409
    folder = restore(path="photos", dest=str(out))
    assert folder.status_code == 200
    assert (out / "photos" / "2024" / "d.jpg").read_bytes() == (
        source / "photos/2024/d.jpg"
    ).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["c.md", "photos"]  # no staging left

    # over the source only when asked, and then only into place
    (source / "a.txt").write_text("changed by mistake\n")
    refused = restore(path="a.txt", dest=str(source), overwrite=True)
    assert refused.status_code == 422
    assert "source" in refused.json()["error"]["message"]
    assert (source / "a.txt").read_text() == "changed by mistake\n"
    asked = restore(path="a.txt", dest=str(source), overwrite=True, into_source=True)
    assert asked.status_code == 200, asked.text
    assert (source / "a.txt").read_text() == "alpha\n"
    site.still_up()


BAD_RESTORES: list[tuple[dict[str, Any], int, str]] = [
    ({"path": "../../etc/passwd", "dest": "OUT"}, 422, "'..'"),
    ({"path": "notes/\u0000x", "dest": "OUT"}, 422, "NUL"),
    ({"path": "escape/secret.txt", "dest": "OUT"}, 404, "not inside the backup"),
    ({"path": "nope.txt", "dest": "OUT"}, 404, "not in this backup"),
    ({"path": "a.txt", "dest": "relative/out"}, 422, "absolute"),
    ({"path": "a.txt", "dest": "/etc/cron.d"}, 422, "/etc"),
    ({"path": "a.txt", "dest": "/var/tmp/out"}, 422, "allowed_roots"),
    ({"path": "a.txt", "dest": "BACKUP/x"}, 422, "inside the backup"),
    ({"path": "a.txt", "dest": "SECRET"}, 422, "not a folder"),
    ({"path": "a.txt", "snapshot": "../../x", "dest": "OUT"}, 400, "no snapshots"),
    ({"path": "a.txt"}, 422, "dest: Field required"),
    ({"path": 5, "dest": "OUT"}, 422, "path"),
    ({"path": "a.txt", "dest": "OUT", "overwrite": "yes please"}, 422, "overwrite"),
    ({"path": "x" * 5000, "dest": "OUT"}, 422, "path"),
    ({"path": "a.txt", "dest": "OUT", "mode": "0777"}, 422, "mode"),
]


def test_bad_restores_write_nothing(site: Site, source: Path) -> None:
    home = site.home
    outside = make_tree(home.tmp / "outside", {"secret.txt": "not in any backup\n"})
    (source / "escape").symlink_to(outside)
    (home.tmp / "afile").write_text("a file\n")
    send(site.admin, "POST", "/api/backup/jobs", {"name": "m", "source": str(source)})
    send(site.admin, "POST", "/api/backup/jobs/m/run", None)
    assert wait_for_run(site.admin, "m")["result"] == "ok"
    for body, status, message in BAD_RESTORES:
        _refuse_restore(site, body, status, message)


def _refuse_restore(site: Site, body: dict[str, Any], status: int, message: str) -> None:
    home = site.home
    before = files_outside(home)
    text = (
        json.dumps(body)
        .replace('"OUT"', json.dumps(str(home.tmp / "out")))
        .replace('"BACKUP', '"' + str(home.root / "m"))
        .replace('"SECRET"', json.dumps(str(home.tmp / "afile")))
    )
    refused = send_text(site.admin, "POST", "/api/backup/jobs/m/restore", text)
    assert refused.status_code == status, (body, refused.text)
    assert message in refused.json()["error"]["message"], body
    assert files_outside(home) == before
    site.still_up()


BAD_BROWSES: list[tuple[dict[str, str], int]] = [
    ({"path": "../.."}, 422),
    ({"path": "a.txt"}, 400),
    ({"path": "escape"}, 400),
    ({"path": "escape/secret.txt"}, 404),
    ({"snapshot": "2020-01-01T000000Z"}, 400),
    ({"path": "p" * 5000}, 422),
]


def test_browsing_stays_inside_the_backup(site: Site, source: Path) -> None:
    outside = make_tree(site.home.tmp / "outside", {"secret.txt": "not in any backup\n"})
    (source / "escape").symlink_to(outside)
    send(site.admin, "POST", "/api/backup/jobs", {"name": "m", "source": str(source)})
    send(site.admin, "POST", "/api/backup/jobs/m/run", None)
    assert wait_for_run(site.admin, "m")["result"] == "ok"
    for params, status in BAD_BROWSES:
        answer = site.user.client.get("/api/backup/jobs/m/browse", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert "not in any backup" not in answer.text
    site.still_up()


def test_a_run_shows_its_progress(site: Site, tmp_path: Path) -> None:
    import shutil
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tree = tmp_path / "stdlib-email"
    shutil.copytree(stdlib / "email", tree, ignore=shutil.ignore_patterns("__pycache__"))
    body = {"name": "slow", "source": str(tree), "bwlimit": "300"}
    assert send(site.admin, "POST", "/api/backup/jobs", body).status_code == 201
    assert send(site.admin, "POST", "/api/backup/jobs/slow/run", None).status_code == 202
    again = send(site.admin, "POST", "/api/backup/jobs/slow/run", None)
    assert again.status_code == 409
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = site.user.client.get("/api/backup/progress").json()["running"].get("slow")
        if state is None:
            break
        seen.append(state)
        time.sleep(0.2)
    assert seen, "the run ended before the first look"
    assert any(0 < s["percent"] < 100 for s in seen), seen
    assert max(s["bytes"] for s in seen) > 0
    assert wait_for_run(site.user, "slow")["result"] == "ok"
    assert send(site.admin, "DELETE", "/api/backup/jobs/slow", None).status_code == 200
