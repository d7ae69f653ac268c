"""Logging in, sessions, CSRF and access rules, against a real server on loopback.

Each test talks from its own loopback address (127.0.0.N), as a client of its own: the
login backoff counts per address too, and the tests share one server.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from homekeep.core import throttle
from tests.support import Server, WebSession, add_user, create_token, running

PASSWORDS = {
    "root": "root password 1",
    "bob": "bob password 1",
    "dave": "dave password 1",
    "erin": "erin password 1",
    "frank": "frank password 1",
}
PROXY = "127.0.0.9"


@dataclass
class Site:
    """The shared server, its data folder, and a CLI token for images."""

    server: Server
    data: Path
    images_token: str

    def web(self, source: str) -> WebSession:
        return WebSession.open(self.server.url, source)

    def as_user(self, name: str, source: str) -> WebSession:
        web = self.web(source)
        response = web.login(name, PASSWORDS[name])
        assert response.status_code == 303, response.text
        return web

    def sql(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.data / "homekeep.sqlite") as conn:
            return conn.execute(query, params).fetchall()

    def users(self) -> list[tuple[object, ...]]:
        return self.sql("SELECT name, admin, disabled_at FROM users ORDER BY name")

    def alive(self) -> None:
        assert httpx.get(self.server.url + "/healthz").status_code == 200


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    data = root / "data"
    config = root / "config.toml"
    config.write_text(f'[web]\ntrusted_proxies = ["{PROXY}"]\n')
    add_user(data, "root", PASSWORDS["root"], admin=True)
    add_user(data, "bob", PASSWORDS["bob"], "images", "music")
    add_user(data, "dave", PASSWORDS["dave"], "music")
    add_user(data, "erin", PASSWORDS["erin"], "images")
    add_user(data, "frank", PASSWORDS["frank"], "music")
    token = create_token(data, "cli-images", "images")
    with running(["--config", config, "serve", "--port", "0"], data_dir=data) as server:
        yield Site(server, data, token)


def error_message(page: str) -> str:
    found = re.search(r'id="error-message"[^>]*>([^<]*)<', page)
    assert found is not None, page[:2000]
    return found[1]


def test_pages_redirect_to_the_login_and_back(site: Site) -> None:
    web = site.web("127.0.0.2")
    landing = web.client.get("/")
    assert landing.status_code == 302
    assert landing.headers["location"] == "/login"
    page = web.client.get("/images/?x=1")
    assert page.status_code == 302
    assert page.headers["location"] == "/login?next=/images/%3Fx%3D1"
    api = web.client.get("/api/images")
    assert api.status_code == 401
    assert api.json()["error"]["code"] == "unauthorized"
    form = web.client.get("/login", params={"next": "/images/?x=1"})
    assert 'name="next" value="/images/?x=1"' in form.text
    done = web.login("bob", PASSWORDS["bob"], "/images/?x=1")
    assert done.status_code == 303
    assert done.headers["location"] == "/images/?x=1"
    cookie = done.headers["set-cookie"]
    assert cookie.startswith("homekeep_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert web.client.get("/images/").status_code == 200
    assert web.client.get("/api/whoami").json() == {
        "name": "bob",
        "scopes": ["images", "music"],
        "kind": "session",
        "user": "bob",
        "admin": False,
    }
    assert web.client.get("/login").headers["location"] == "/"  # logged in already
    old_cookie = web.client.cookies["homekeep_session"]
    out = web.post("/logout")
    assert out.status_code == 303
    assert out.headers["location"] == "/login?done=logged-out"
    assert 'homekeep_session=""' in out.headers["set-cookie"]
    assert web.client.get("/").status_code == 302
    replay = httpx.get(site.server.url + "/api/whoami", cookies={"homekeep_session": old_cookie})
    assert replay.status_code == 401  # the session is gone on the server, not just the cookie
    assert "You are logged out." in web.client.get("/login?done=logged-out").text


@pytest.mark.parametrize("name", ["bob", "nobody", "<b>bob</b>", "b" * 300, "bob\x00", "BOB "])
def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(site: Site, name: str) -> None:
    web = site.web("127.0.0.3")
    response = web.login(name, "not the password")
    assert response.status_code == 401
    assert error_message(response.text) == "wrong user name or password"
    assert "<b>bob" not in response.text  # what was typed comes back as text, never markup
    assert "not the password" not in response.text
    assert "homekeep_session" not in response.headers.get("set-cookie", "")
    site.alive()


def test_repeated_failures_back_off_per_user_and_per_address(site: Site) -> None:
    web = site.web("127.0.0.4")
    statuses = []
    for n in range(throttle.FREE_PER_USER + 3):
        statuses.append(web.login("dave", f"guess {n}").status_code)
    assert statuses[: throttle.FREE_PER_USER - 1] == [401] * (throttle.FREE_PER_USER - 1)
    assert statuses[-1] == 429
    right = web.login("dave", PASSWORDS["dave"])  # the right password waits its turn too
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) >= 8
    assert "too many failed logins; try again in" in error_message(right.text)
    elsewhere = site.web("127.0.0.5").login("dave", PASSWORDS["dave"])
    assert elsewhere.status_code == 429  # the name is locked from every address
    # one address guessing at many names is locked for all of them
    guesser = site.web("127.0.0.6")
    for n in range(throttle.FREE_PER_ADDRESS + 3):
        guesser.login(f"name{n}", "guess")
    assert guesser.login("bob", PASSWORDS["bob"]).status_code == 429
    assert site.web("127.0.0.7").login("bob", PASSWORDS["bob"]).status_code == 303
    log = (site.data / "logs" / "homekeep.log").read_text()
    assert "failed login as 'dave' from 127.0.0.4 (1 in a row)" in log
    assert "login as 'dave' from 127.0.0.5 refused" in log
    assert PASSWORDS["dave"] not in log


def test_a_trusted_proxy_names_the_client_and_its_scheme(site: Site) -> None:
    proxied = WebSession.open(site.server.url, PROXY)
    token = proxied.form_token()
    host = proxied.origin.split("://")[1]
    # what a TLS proxy in front adds; its browser holds the form cookie (Secure over https)
    headers = {
        "X-Forwarded-For": "198.51.100.23",
        "X-Forwarded-Proto": "https",
        "Origin": f"https://{host}",
        "Cookie": f"homekeep_form={token}",
    }

    def attempt(password: str) -> httpx.Response:
        form = {"csrf_token": token, "name": "erin", "password": password, "next": "/"}
        with httpx.Client(
            base_url=site.server.url, transport=httpx.HTTPTransport(local_address=PROXY)
        ) as client:
            return client.post("/login", data=form, headers=headers)

    assert attempt("nope").status_code == 401
    ok = attempt(PASSWORDS["erin"])
    assert ok.status_code == 303
    assert "Secure" in ok.headers["set-cookie"]  # the proxy served it over TLS
    log = (site.data / "logs" / "homekeep.log").read_text()
    assert "failed login as 'erin' from 198.51.100.23" in log
    # the same headers from a client that is not a proxy change nothing: there the
    # https Origin is another origin than the server's own
    direct = site.web("127.0.0.8")
    token = direct.form_token()
    plain = direct.client.post(
        "/login",
        data={"csrf_token": token, "name": "erin", "password": "nope", "next": "/"},
        headers={"X-Forwarded-For": "198.51.100.23", "Origin": direct.origin},
    )
    assert plain.status_code == 401
    log = (site.data / "logs" / "homekeep.log").read_text()
    assert "failed login as 'erin' from 127.0.0.8" in log
    spoofed = direct.client.post(
        "/login",
        data={"csrf_token": token, "name": "erin", "password": "nope", "next": "/"},
        headers={"X-Forwarded-Proto": "https", "Origin": f"https://{host}"},
    )
    assert spoofed.status_code == 403


def _backdate(site: Site, column: str, when: datetime, session_id: int) -> None:
    stamp = when.isoformat(timespec="seconds")
    with sqlite3.connect(site.data / "homekeep.sqlite") as conn:
        conn.execute(f"UPDATE sessions SET {column} = ? WHERE id = ?", (stamp, session_id))  # noqa: S608


def _session_ids(site: Site, user: str) -> list[int]:
    rows = site.sql(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.name = ?"
        " ORDER BY s.id",
        (user,),
    )
    return [int(str(r[0])) for r in rows]


def test_expired_forged_and_revoked_sessions_are_refused(site: Site) -> None:
    first = site.as_user("erin", "127.0.0.10")
    second = site.as_user("erin", "127.0.0.11")
    third = site.as_user("erin", "127.0.0.12")
    account = first.client.get("/account").text
    for ip in ("127.0.0.10", "127.0.0.11", "127.0.0.12"):
        assert f"<td>{ip}</td>" in account
    one, two, three = _session_ids(site, "erin")[-3:]
    # revoked from the account page of another session
    assert first.post(f"/account/sessions/{two}/revoke").status_code == 303
    assert second.client.get("/api/whoami").status_code == 401
    assert second.client.get("/account").status_code == 302
    # idle too long, and past the maximum lifetime
    _backdate(site, "last_seen_at", datetime.now(UTC) - timedelta(days=15), three)
    assert third.client.get("/").status_code == 302
    _backdate(site, "expires_at", datetime.now(UTC) - timedelta(seconds=5), one)
    assert first.client.get("/api/whoami").status_code == 401
    assert first.client.get("/").headers["location"] == "/login"
    # forged: random, truncated, hostile
    live = site.as_user("erin", "127.0.0.13")
    real = live.client.cookies["homekeep_session"]
    for forged in (real[:-1] + ("x" if real[-1] != "x" else "y"), "A" * 43, "", "' OR 1=1 --"):
        answer = httpx.get(site.server.url + "/api/whoami", cookies={"homekeep_session": forged})
        assert answer.status_code == 401, forged
    huge = httpx.get(
        site.server.url + "/api/whoami", headers={"Cookie": "homekeep_session=" + "A" * 20_000}
    )
    assert huge.status_code == 401
    assert live.client.get("/api/whoami").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example".replace("%2F", "/"),
    ],
)
def test_an_open_redirect_through_next_is_refused(site: Site, target: str) -> None:
    web = site.web("127.0.0.14")
    form = web.client.get("/login", params={"next": target})
    assert 'name="next" value="/"' in form.text
    done = web.login("bob", PASSWORDS["bob"], target)
    assert done.status_code == 303
    assert done.headers["location"] == "/"


def test_cross_site_and_tokenless_posts_are_refused(site: Site) -> None:
    web = site.as_user("bob", "127.0.0.15")
    before = site.sql("SELECT COUNT(*) FROM tokens")
    form = {"name": "phone", "scope": "music"}
    attempts = [
        web.post("/account/tokens", form, headers={"Origin": "http://evil.example"}),
        web.post("/account/tokens", form, headers={"Origin": "http://127.0.0.1:1"}),
        web.post("/account/tokens", form, headers={"Origin": "null"}),
        web.post("/account/tokens", form, headers={"Sec-Fetch-Site": "cross-site"}),
        web.post("/account/tokens", form, headers={"Sec-Fetch-Site": "same-site"}),
        web.client.post("/account/tokens", data=form),  # no CSRF token at all
        web.client.post("/account/tokens", data={**form, "csrf_token": "x" * 43}),
        web.client.post("/account/tokens", data={**form, "csrf_token": "é" * 43}),
        web.client.post(
            "/api/images", files={"file": ("a.png", b"\x89PNG", "image/png")}
        ),  # an API call with the cookie but not the header
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    assert site.sql("SELECT COUNT(*) FROM tokens") == before
    assert web.client.post("/logout").status_code == 403  # not even a forced logout
    assert web.client.get("/api/whoami").status_code == 200
    # a login form posted from another site is refused too (login CSRF)
    other = site.web("127.0.0.16")
    token = other.form_token()
    forced = other.client.post(
        "/login",
        data={"csrf_token": token, "name": "bob", "password": PASSWORDS["bob"], "next": "/"},
        headers={"Origin": "http://evil.example"},
    )
    assert forced.status_code == 403
    stale = other.client.post(
        "/login",
        data={"csrf_token": "y" * 43, "name": "bob", "password": PASSWORDS["bob"], "next": "/"},
    )
    assert stale.status_code == 403
    # with the header from our page's fetch helper the same API call goes through
    ok = web.client.post(
        "/api/images",
        files={"file": ("a.txt", b"not an image", "text/plain")},
        headers={"X-CSRF-Token": web.csrf, "Origin": web.origin},
    )
    assert ok.status_code not in (401, 403)
    # a bearer token needs no CSRF token
    bearer = httpx.get(
        site.server.url + "/api/images", headers={"Authorization": f"Bearer {site.images_token}"}
    )
    assert bearer.status_code == 200


def test_tokens_act_only_within_their_scopes(site: Site) -> None:
    cli = {"Authorization": f"Bearer {site.images_token}"}
    assert httpx.get(site.server.url + "/api/images", headers=cli).status_code == 200
    for path in ("/api/music/artists", "/api/backup/jobs"):
        refused = httpx.get(site.server.url + path, headers=cli)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
    web = site.as_user("bob", "127.0.0.17")
    made = web.post("/account/tokens", {"name": "player", "scope": "music"})
    assert made.status_code == 201
    found = re.search(r'id="new-token-secret">([^<]+)<', made.text)
    assert found is not None
    mine = {"Authorization": f"Bearer {found[1]}"}
    assert httpx.get(site.server.url + "/api/music/artists", headers=mine).status_code == 200
    assert httpx.get(site.server.url + "/api/images", headers=mine).status_code == 403
    assert httpx.get(site.server.url + "/account", headers=mine).status_code == 403
    token_id = site.sql("SELECT id FROM tokens WHERE name = 'player'")[0][0]
    assert web.post(f"/account/tokens/{token_id}/revoke").status_code == 303
    assert httpx.get(site.server.url + "/api/music/artists", headers=mine).status_code == 401


def test_a_user_reaches_only_the_areas_granted_and_no_admin_page(site: Site) -> None:
    web = site.as_user("bob", "127.0.0.18")
    landing = web.client.get("/").text
    assert re.findall(r'data-area="(\w+)"', landing) == ["images", "music"]
    nav = landing.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert 'href="/images/"' in nav
    assert "/backup/" not in nav
    assert "/admin/users" not in landing
    page = web.client.get("/backup/", headers={"Accept": "text/html"})
    assert page.status_code == 403
    assert "may not use backup" in error_message(page.text)
    api = web.client.get("/api/backup/jobs")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "forbidden"
    assert web.client.get("/admin/users").status_code == 403
    before = site.users()
    added = web.post(
        "/admin/users", {"name": "mallory", "password": "long enough pw", "admin": "1"}
    )
    assert added.status_code == 403
    assert web.post("/admin/users/root/disable").status_code == 403
    assert site.users() == before


def test_the_admin_manages_users_from_the_users_page(site: Site) -> None:
    admin = site.as_user("root", "127.0.0.19")
    page = admin.client.get("/admin/users")
    assert page.status_code == 200
    assert 'data-user="frank"' in page.text
    added = admin.post(
        "/admin/users", {"name": "gina", "password": "gina password", "area": ["images", "music"]}
    )
    assert added.status_code == 303
    assert added.headers["location"] == "/admin/users?done=added"
    gina = site.web("127.0.0.20")
    assert gina.login("gina", "gina password").status_code == 303
    assert gina.client.get("/images/").status_code == 200
    saved = admin.post("/admin/users/gina/access", {"area": ["music"]})
    assert saved.status_code == 303
    assert gina.client.get("/images/").status_code == 403  # at once, same session
    frank = site.as_user("frank", "127.0.0.21")
    assert admin.post("/admin/users/frank/disable").status_code == 303
    assert frank.client.get("/api/whoami").status_code == 401
    assert site.web("127.0.0.21").login("frank", PASSWORDS["frank"]).status_code == 403
    assert admin.post("/admin/users/frank/enable").status_code == 303
    assert admin.post("/admin/users/gina/remove").status_code == 303
    assert gina.client.get("/api/whoami").status_code == 401
    assert "gina" not in [u[0] for u in site.users()]
    last = admin.post("/admin/users/root/remove")
    assert last.status_code == 409
    assert "last enabled admin" in error_message(last.text)


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        (
            "/admin/users",
            {"name": "<img src=x>", "password": "long enough pw"},
            422,
            "invalid user",
        ),
        ("/admin/users", {"name": "h" * 5000, "password": "long enough pw"}, 422, "longer than"),
        ("/admin/users", {"name": "hank", "password": "short"}, 422, "too short"),
        ("/admin/users", {"name": "hank", "password": "p" * 5000}, 422, "longer than"),
        ("/admin/users", {"name": "hank"}, 422, "too short"),
        ("/admin/users", {}, 422, "invalid user name"),
        (
            "/admin/users",
            {"name": "hank", "password": "long enough pw", "area": "nope"},
            422,
            "unknown area",
        ),
        ("/admin/users", {"name": "bob", "password": "long enough pw"}, 409, "exists already"),
        ("/admin/users/nobody/disable", {}, 404, "no user named"),
        ("/admin/users/bob/access", {"area": "x" * 300}, 422, "unknown area"),
    ],
)
def test_bad_input_on_the_users_page_writes_nothing(
    site: Site, path: str, form: dict[str, str], status: int, message: str
) -> None:
    admin = site.as_user("root", "127.0.0.22")
    before = site.users()
    response = admin.post(path, form, headers={"Accept": "text/html"})
    assert response.status_code == status
    assert message in error_message(response.text)
    assert site.users() == before
    site.alive()


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        (
            "/account/password",
            {"current": "nope nope", "password": "new password", "password2": "new password"},
            401,
            "current password is wrong",
        ),
        (
            "/account/password",
            {
                "current": PASSWORDS["bob"],
                "password": "new password",
                "password2": "other password",
            },
            422,
            "differ",
        ),
        (
            "/account/password",
            {"current": PASSWORDS["bob"], "password": "tiny", "password2": "tiny"},
            422,
            "too short",
        ),
        ("/account/password", {}, 422, "too short"),
        ("/account/tokens", {"name": "../x", "scope": "music"}, 400, "invalid token name"),
        ("/account/tokens", {"name": "t" * 100, "scope": "music"}, 422, "longer than"),
        ("/account/tokens", {"name": "ok", "scope": "backup"}, 422, "unknown scope"),
        ("/account/tokens", {"name": "ok"}, 422, "at least one area"),
        ("/account/sessions/999999/revoke", {}, 404, "no such session"),
        ("/account/tokens/zzz/revoke", {}, 404, "no such active token"),
    ],
)
def test_bad_input_on_the_account_page_writes_nothing(
    site: Site, path: str, form: dict[str, str], status: int, message: str
) -> None:
    web = site.as_user("bob", "127.0.0.23")
    before = (site.sql("SELECT * FROM tokens"), site.sql("SELECT password_hash FROM users"))
    response = web.post(path, form, headers={"Accept": "text/html"})
    assert response.status_code == status, response.text[:500]
    assert message in error_message(response.text)
    after = (site.sql("SELECT * FROM tokens"), site.sql("SELECT password_hash FROM users"))
    assert after == before
    site.alive()


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        (
            "/login",
            {"content": b'{"name": "bob"}', "headers": {"Content-Type": "application/json"}},
            415,
        ),
        ("/login", {"files": {"name": ("n", b"bob")}}, 415),
        (
            "/login",
            {
                "content": b"name=" + b"b" * 70_000,
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
        (
            "/login",
            {
                "content": b"%%%&&&===",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            403,
        ),
        ("/setup", {"data": {"name": "x"}}, 303),
        ("/admin/users", {"data": {"name": "x"}}, 302),  # to the login page
        ("/account/sessions/not-a-number/revoke", {"data": {}}, 302),
    ],
)
def test_malformed_requests_get_a_4xx_and_the_server_stays_up(
    site: Site, path: str, kwargs: dict[str, object], status: int
) -> None:
    web = site.web("127.0.0.24")
    response = web.client.post(path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    site.alive()


def test_password_change_keeps_this_session_and_ends_the_others(site: Site) -> None:
    here = site.as_user("frank", "127.0.0.25")
    there = site.as_user("frank", "127.0.0.26")
    changed = here.post(
        "/account/password",
        {"current": PASSWORDS["frank"], "password": "frank new pw", "password2": "frank new pw"},
    )
    assert changed.status_code == 303
    assert "Password changed" in here.client.get(changed.headers["location"]).text
    assert there.client.get("/api/whoami").status_code == 401
    assert here.client.get("/api/whoami").status_code == 200
    assert site.web("127.0.0.27").login("frank", PASSWORDS["frank"]).status_code == 401
    assert site.web("127.0.0.27").login("frank", "frank new pw").status_code == 303


def test_wrong_types_from_a_logged_in_user_get_a_4xx(site: Site) -> None:
    web = site.as_user("bob", "127.0.0.28")
    before = site.sql("SELECT * FROM sessions WHERE user_agent != ''")
    assert web.post("/account/sessions/abc/revoke").status_code == 422
    assert web.post("/account/sessions/99999999999999999999999/revoke").status_code == 422
    assert web.post("/account/tokens/%00%2F..%2F/revoke").status_code == 404
    as_json = web.client.post(
        "/account/tokens",
        json={"name": "x", "scope": ["music"]},
        headers={"X-CSRF-Token": web.csrf, "Origin": web.origin},
    )
    assert as_json.status_code == 415
    repeated = web.post("/account/tokens", {"name": ["a", "b"], "scope": "music"})
    assert repeated.status_code == 201  # the last value of a repeated field counts, once
    assert site.sql("SELECT * FROM sessions WHERE user_agent != ''")[: len(before)] == before
    site.alive()
