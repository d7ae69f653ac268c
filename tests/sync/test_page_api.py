"""The sync page's API with a logged-in user: real `homekeep serve`, real clients (the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import run_cli
from tests.sync.pagesite import USER, Site, make_conflict, site, tree
from tests.test_error_shape import assert_error_shape


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("syncpage")) as s:
        yield s


def test_the_overview_shows_each_folder_with_its_devices(hosted: Site) -> None:
    hosted.share("photos")
    (hosted.client("photos", "laptop") / "a.txt").write_text("from the laptop")
    (hosted.client("photos", "laptop") / "sub").mkdir()
    (hosted.client("photos", "laptop") / "sub" / "b.txt").write_text("b")
    hosted.push("photos", "laptop")
    hosted.push("photos", "desk")
    assert tree(hosted.client("photos", "desk")) == tree(hosted.client("photos", "laptop"))
    me = hosted.session()
    answer = me.get("/overview")
    assert answer.status_code == 200, answer.text
    (photos,) = [f for f in answer.json()["folders"] if f["name"] == "photos"]
    assert photos["shared"] is True
    assert (photos["files"], photos["bytes"]) == (2, len("from the laptop") + 1)
    assert photos["last_change"] is not None
    devices = {d["device"]: d for d in photos["clients"]}
    assert set(devices) == {"laptop", "desk"}
    assert all(d["online"] and d["address"] == "127.0.0.1" for d in devices.values())
    # a one-way client's folder is listed too, with the device that pushes it
    (hosted.work / "phone").mkdir()
    (hosted.work / "phone" / "p.txt").write_text("one way")
    result = run_cli(
        "sync",
        "push",
        hosted.work / "phone",
        "--server",
        hosted.url,
        "--token",
        hosted.tokens["desk"],
        "--name",
        "phone",
        data_dir=hosted.work / "data-phone",
    )
    assert result.returncode == 0, result.stderr
    folders = {f["name"]: f for f in me.get("/overview").json()["folders"]}
    assert folders["phone"]["shared"] is False
    assert folders["phone"]["files"] == 1
    assert [d["device"] for d in folders["phone"]["clients"]] == ["desk"]
    not_shared = me.get("/folders/phone/conflicts")  # a one-way folder has no conflicts
    assert not_shared.status_code == 404
    assert "not a shared folder" in not_shared.text


def test_a_user_sees_only_the_folders_they_may_act_as(hosted: Site) -> None:
    hosted.share("private")
    (hosted.client("private", "laptop") / "secret.txt").write_text("not bob's")
    hosted.push("private", "laptop")
    bob = hosted.session(USER)
    names = [f["name"] for f in bob.get("/overview").json()["folders"]]
    assert "private" not in names
    refused = bob.get("/folders/private/conflicts")
    assert refused.status_code == 403
    assert_error_shape(refused, "bob asks for another's conflicts")
    assert bob.get("/history", folder="private").status_code == 403
    assert all(e["client"] == "bob" for e in bob.get("/history").json()["events"])
    moved = bob.post("/folders/private/versions/restore", {"version": ".homekeep-versions/x"})
    assert moved.status_code == 403


def test_resolving_a_conflict_keeps_the_chosen_version_and_the_clients_follow(
    hosted: Site,
) -> None:
    on_server = hosted.share("plans")
    make_conflict(hosted, "plans")
    hosted.push("plans", "laptop")
    me = hosted.session()
    (conflict,) = me.get("/folders/plans/conflicts").json()["conflicts"]
    assert conflict["path"] == "plan.txt"
    assert conflict["copy"].startswith("plan.sync-conflict-")
    assert conflict["file"]["size"] == len("the desk's edit, newer")
    assert conflict["copy_file"]["size"] == len("the laptop's edit")
    laptop = hosted.client("plans", "laptop")
    assert (laptop / conflict["copy"]).read_text() == "the laptop's edit"

    done = me.post("/folders/plans/conflicts/resolve", {"copy": conflict["copy"], "keep": "file"})
    assert done.status_code == 200, done.text
    assert done.json()["path"] == "plan.txt"
    assert tree(on_server) == {"plan.txt": "the desk's edit, newer"}
    kept = me.get("/folders/plans/versions", under="plan.txt").json()["versions"]
    assert "the laptop's edit" in [(on_server / v["version"]).read_text() for v in kept]
    assert me.get("/folders/plans/conflicts").json()["conflicts"] == []
    hosted.push("plans", "laptop")
    hosted.push("plans", "desk")
    assert tree(laptop) == tree(hosted.client("plans", "desk")) == tree(on_server)
    # resolved once: the copy is gone, so a second try is a clear 404
    again = me.post("/folders/plans/conflicts/resolve", {"copy": conflict["copy"], "keep": "copy"})
    assert again.status_code == 404
    assert_error_shape(again, "a conflict resolved twice")


def test_restoring_a_version_puts_it_back_on_the_server_and_the_clients(hosted: Site) -> None:
    on_server = hosted.share("drafts")
    laptop = hosted.client("drafts", "laptop")
    (laptop / "d").mkdir()
    (laptop / "d" / "essay.txt").write_text("first draft")
    hosted.push("drafts", "laptop")
    (laptop / "d" / "essay.txt").write_text("second draft, worse")
    hosted.push("drafts", "laptop")
    me = hosted.session()
    versions = me.get("/folders/drafts/versions", under="d/").json()["versions"]
    (first,) = [v for v in versions if (on_server / v["version"]).read_text() == "first draft"]
    assert first["path"] == "d/essay.txt"
    done = me.post("/folders/drafts/versions/restore", {"version": first["version"]})
    assert done.status_code == 200, done.text
    assert (on_server / "d" / "essay.txt").read_text() == "first draft"
    hosted.push("drafts", "laptop")
    assert (laptop / "d" / "essay.txt").read_text() == "first draft"
    after = me.get("/folders/drafts/versions").json()["versions"]
    assert "second draft, worse" in [(on_server / v["version"]).read_text() for v in after]


def test_the_history_filters_by_folder_action_path_and_time_and_pages(hosted: Site) -> None:
    hosted.share("notes")
    laptop = hosted.client("notes", "laptop")
    (laptop / "a.txt").write_text("a")
    (laptop / "b.md").write_text("b")
    hosted.push("notes", "laptop")
    (laptop / "a.txt").unlink()
    (laptop / "b.md").rename(laptop / "c.md")
    hosted.push("notes", "laptop")
    me = hosted.session()
    everything = me.get("/history", folder="notes").json()["events"]
    assert {e["client"] for e in everything} == {"notes"}
    deleted = me.get("/history", folder="notes", action="delete").json()["events"]
    assert [e["path"] for e in deleted] == ["a.txt"]
    named = me.get("/history", folder="notes", path="b.md").json()["events"]
    assert {e["action"] for e in named} == {"create", "rename"}
    assert all("b.md" in (e["path"], e["dest"]) for e in named)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert me.get("/history", folder="notes", since=later).json()["events"] == []
    assert me.get("/history", folder="notes", until=earlier).json()["events"] == []
    assert len(me.get("/history", folder="notes", since=earlier).json()["events"]) == len(
        everything
    )
    first = me.get("/history", folder="notes", limit=1).json()
    second = me.get("/history", folder="notes", limit=1, before=first["next_before"]).json()
    assert [first["events"][0]["id"], second["events"][0]["id"]] == [
        e["id"] for e in everything[:2]
    ]
    for bad in ({"action": "explode"}, {"since": "yesterday"}, {"limit": 0}, {"path": "a\x00"}):
        answer = me.get("/history", **bad)
        assert 400 <= answer.status_code < 500, (bad, answer.text)
        assert_error_shape(answer, f"history with {bad}")


HOSTILE_COPIES = [
    "../../etc/passwd.sync-conflict-20260101-000000-x",
    "/etc/passwd.sync-conflict-20260101-000000-x",
    "a/../../b.sync-conflict-20260101-000000-x.txt",
    ".homekeep-versions/plan.sync-conflict-20260101-000000-x.txt",
    "plan.txt",  # not a conflict copy: never removed through this
    "x\x00.sync-conflict-20260101-000000-x",
    "a\\..\\b.sync-conflict-20260101-000000-x",
]
HOSTILE_VERSIONS = [
    ".homekeep-versions/../../../etc/passwd",
    "../.homekeep-versions/x~20260101-000000.txt",
    ".homekeep-versions",
    ".homekeep-versions/",
    "/etc/passwd",
    "d/essay.txt",
    ".homekeep-versions/d/../../x",
    ".homekeep-versions/" + "a/" * 3000,
]


def test_hostile_names_and_bodies_get_a_4xx_and_change_nothing(hosted: Site) -> None:
    on_server = hosted.share("guarded")
    (hosted.client("guarded", "laptop") / "plan.txt").write_text("keep me")
    hosted.push("guarded", "laptop")
    outside = hosted.work / "outside.txt"
    outside.write_text("outside")
    me = hosted.session()
    before = tree(on_server)
    answers = []
    for copy in HOSTILE_COPIES:
        for keep in ("file", "copy"):
            answers.append(
                (copy, me.post("/folders/guarded/conflicts/resolve", {"copy": copy, "keep": keep}))
            )
    for version in HOSTILE_VERSIONS:
        answers.append(
            (version, me.post("/folders/guarded/versions/restore", {"version": version}))
        )
    for under in ("../..", "/etc", "a/../../b"):
        answers.append((under, me.get("/folders/guarded/versions", under=under)))
    for where, answer in answers:
        assert 400 <= answer.status_code < 500, (where, answer.status_code, answer.text)
        assert_error_shape(answer, repr(where)[:80])
    assert tree(on_server) == before
    assert outside.read_text() == "outside"
    # unknown, misnamed and one-way folders
    for path, status in [
        ("/folders/nowhere/conflicts", 404),
        ("/folders/nowhere/versions", 404),
        ("/folders/..%2F..%2Fetc/conflicts", 404),  # no such route once decoded
        ("/folders/" + "x" * 200 + "/versions", 422),
    ]:
        answer = me.get(path)
        assert answer.status_code == status, (path, answer.text)
        assert_error_shape(answer, path)
    # bodies: too big, broken, the wrong type, unknown or missing fields
    resolve = "/folders/guarded/conflicts/resolve"
    bad_bodies = [
        (
            me.post(
                resolve,
                content=b'{"copy": "' + b"a" * (1 << 20) + b'", "keep": "file"}',
                headers={"Content-Type": "application/json"},
            ),
            413,
        ),
        (me.post(resolve, content=b"{broken", headers={"Content-Type": "application/json"}), 422),
        (me.post(resolve, content=b"copy=x", headers={"Content-Type": "text/plain"}), 415),
        (me.post(resolve, {"copy": "x", "keep": "both"}), 422),
        (me.post(resolve, {"copy": "x", "keep": "file", "extra": 1}), 422),
        (me.post(resolve, {"keep": "file"}), 422),
        (me.post(resolve, ["not", "an", "object"]), 422),
        (me.post(resolve, {"copy": 7, "keep": "file"}), 422),
    ]
    for answer, status in bad_bodies:
        assert answer.status_code == status, answer.text
        assert_error_shape(answer, f"body answered {status}")
    assert tree(on_server) == before


def test_the_page_api_wants_a_session_with_the_csrf_token(hosted: Site) -> None:
    hosted.share("csrf")
    me = hosted.session()
    web = me.web.client
    answer = web.post(
        "/api/sync/folders/csrf/versions/restore",
        json={"version": ".homekeep-versions/x~20260101-000000.txt"},
        headers={"Origin": me.web.origin},
    )
    assert answer.status_code == 403  # no CSRF token: refused before anything is read
    assert_error_shape(answer, "no CSRF token")
    with hosted.server.client() as anonymous:
        assert anonymous.get("/api/sync/overview").status_code == 401
        page = anonymous.get("/sync/", follow_redirects=False)
        assert page.status_code in (302, 303)
        assert "/login" in page.headers["location"]
