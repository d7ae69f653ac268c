"""Every router answers a bad request in the one error shape, and never with a 5xx.

One `homekeep serve` with every area mounted; each operation of its OpenAPI document is
sent without credentials, with hostile path values, and with a broken body. What must
hold for each answer: a status below 500, and for a 4xx a body that is exactly
``{"error": {"code": str, "message": str}}`` (extra keys only inside ``error``'s details).
The standalone servers (`sync server`, `convert server`, `pool serve`) get the same unknown-path and
unknown-method checks. The protocol ports have their own shape tests beside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Server, create_token, running, serve

# Operations that anyone may call: the rest must refuse a request without credentials.
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/api/images/{image_id}"),  # public like the image itself (docs/images.md)
    ("get", "/api/images/{image_id}/thumbnail"),
    ("delete", "/api/images/{image_id}"),  # with the image's own delete token instead
}
HOSTILE_SEGMENTS = ("..%2F..%2Fetc", "%00", "9" * 40, "-1", "x" * 2000)


def assert_error_shape(response: httpx.Response, where: str) -> None:
    """A 4xx whose JSON body is the one error shape."""
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text}"
    try:
        body: Any = response.json()
    except ValueError:
        pytest.fail(f"{where}: {response.status_code} is not JSON: {response.text[:200]!r}")
    assert isinstance(body, dict), f"{where}: {body}"
    assert set(body) == {"error"}, f"{where}: {body}"
    error = body["error"]
    for key in ("code", "message"):
        assert isinstance(error.get(key), str), f"{where}: {body}"
        assert error[key], f"{where}: {body}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path_factory.mktemp("shape") / "data"
    token = create_token(data_dir, "everything", "all")
    sync_root = data_dir.parent / "sync"  # mounts the sync protocol and the sync page's API
    with serve(data_dir, env={"HOMEKEEP_SYNC_ROOT": str(sync_root)}) as server:
        yield server, token


def operations(server: Server, token: str) -> list[tuple[str, str, dict[str, Any]]]:
    with server.client(token) as http:
        document = http.get("/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete", "head"):
                found.append((method, path, operation))
    assert len(found) > 30  # every area is mounted
    return found


def fill(path: str, value: str) -> str:
    """The path with every ``{parameter}`` replaced by ``value``."""
    out, rest = "", path
    while "{" in rest:
        before, _, after = rest.partition("{")
        out += before + value
        rest = after.partition("}")[2]
    return out + rest


def test_unknown_paths_and_methods(site: tuple[Server, str]) -> None:
    server, token = site
    with server.client(token) as http:
        assert_error_shape(http.get("/api/no-such-area/x"), "unknown path")
        assert_error_shape(http.get("/api/images/" + "z" * 5000), "long unknown id")
        assert_error_shape(http.request("PURGE", "/api/images"), "unknown method")
        assert_error_shape(http.delete("/healthz"), "method not allowed")


def test_every_api_operation_refuses_a_caller_without_credentials(
    site: tuple[Server, str],
) -> None:
    server, token = site
    with server.client() as http:
        for method, path, _ in operations(server, token):
            if (method, path) in PUBLIC or not path.startswith("/api/"):
                continue
            answer = http.request(method.upper(), fill(path, "1"))
            where = f"{method.upper()} {path} without credentials"
            assert answer.status_code == 401, f"{where}: {answer.status_code} {answer.text}"
            if method != "head":  # a HEAD answer has no body to shape
                assert_error_shape(answer, where)


def test_every_operation_answers_hostile_path_values_in_shape(site: tuple[Server, str]) -> None:
    server, token = site
    with server.client(token) as http:
        for method, path, _ in operations(server, token):
            if "{" not in path or method == "head":
                continue
            for value in HOSTILE_SEGMENTS:
                answer = http.request(method.upper(), fill(path, value))
                where = f"{method.upper()} {fill(path, value)[:120]}"
                if answer.status_code >= 400:
                    assert_error_shape(answer, where)
                assert answer.status_code < 500, where


def test_every_body_operation_answers_a_broken_body_in_shape(site: tuple[Server, str]) -> None:
    server, token = site
    bodies: list[tuple[bytes, str]] = [
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
        (b'{"a": ' * 2000 + b"1" + b"}" * 2000, "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"name=%ZZ&&&=", "application/x-www-form-urlencoded"),
    ]
    with server.client(token) as http:
        for method, path, operation in operations(server, token):
            if "requestBody" not in operation:
                continue
            for content, kind in bodies:
                answer = http.request(
                    method.upper(), fill(path, "1"), content=content, headers={"Content-Type": kind}
                )
                where = f"{method.upper()} {path} with {content[:20]!r} as {kind}"
                assert answer.status_code < 500, f"{where}: {answer.text}"
                if answer.status_code >= 400:
                    assert_error_shape(answer, where)


@pytest.mark.parametrize(
    "args",
    [
        ("sync", "server", "{root}", "--port", "0"),
        ("convert", "server", "--port", "0"),
        ("pool", "serve", "--port", "0"),
    ],
    ids=["sync-server", "convert-server", "pool-serve"],
)
def test_standalone_servers_answer_in_shape(args: tuple[str, ...], tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    command = [a.format(root=root) for a in args]
    with running(command, data_dir=tmp_path / "data") as server, server.client() as http:
        assert_error_shape(http.get("/api/nothing-here"), f"{args[0]} server, unknown path")
        assert_error_shape(http.request("PURGE", "/healthz"), f"{args[0]} server, bad method")
        answer = http.post(f"/api/{args[0]}/anything", content=b"{broken")
        assert_error_shape(answer, f"{args[0]} server, broken body without credentials")
