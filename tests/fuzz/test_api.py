"""Every operation of the API document, fuzzed by schemathesis against a real server.

Each request, whatever it holds, must get a 2xx, 3xx or 4xx (``not_a_server_error``),
and every answer must match what the document declares for its status
(``response_schema_conformance``), the errors too, in the one error shape. All four
phases run: examples, coverage (the boundary values of every bound the document
states), fuzzing, and stateful (operations chained along the links schemathesis
infers). The quick pass runs in `make test`; the long one (a few hundred cases per
operation) with ``pytest -m slow tests/fuzz`` (docs/fuzzing.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from tests.fuzz.home import Home, home
from tests.support import clean_env

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = "not_a_server_error,response_schema_conformance"
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with home(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def config(served: Home, folder: Path) -> Path:
    """A schemathesis config: half the time a path parameter takes an id that exists."""
    path = folder / "schemathesis.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "dictionaries": {name: {"values": ids} for name, ids in served.ids.items()},
                "parameters": {
                    f"path.{name}": {"dictionary": name, "probability": 0.5} for name in served.ids
                },
            }
        ),
        encoding="utf-8",
    )
    return path


def fuzz(served: Home, examples: int, report: Path) -> tuple[int, str]:
    """Run ``schemathesis run`` against the server; return its exit code and its output."""
    command: list[str | Path] = [
        SCHEMATHESIS, "--config-file", config(served, report), "run", f"{served.url}/openapi.json",
        "--header", f"Authorization: Bearer {served.token}",
        "--checks", CHECKS, "--phases", PHASES, "--max-examples", str(examples),
        "--workers", "1", "--max-failures", "50", "--generation-database", "none",
        "--report", "junit", "--report-dir", report, "--no-color",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=report,
        timeout=3600,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _run(served: Home, examples: int, report: Path) -> int:
    """Fuzz; fail with schemathesis's report and the server's log; return the case count."""
    code, output = fuzz(served, examples, report)
    log = "".join(list(served.log)[-60:])
    assert code == 0, f"{output}\n--- server log, last lines ---\n{log}"
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None, output
    print(output[output.find("SUMMARY") :])  # the figures of the run, with -s
    return int(generated[1])


def test_no_server_error_and_true_answers(served: Home, tmp_path: Path) -> None:
    assert _run(served, 5, tmp_path) > 1000


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a few hundred cases for every operation: well past 300 s
def test_no_server_error_and_true_answers_long(served: Home, tmp_path: Path) -> None:
    assert _run(served, 300, tmp_path) > 10_000


def _integers(node: Any, where: str, components: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every integer schema under ``node`` (following references), with where it is."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            yield from _integers(components[name], f"{where}->{name}", components)
            return
        if node.get("type") == "integer":
            yield where, node
        for key, value in node.items():
            yield from _integers(value, f"{where}.{key}", components)
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _integers(value, f"{where}[{n}]", components)


def test_every_integer_a_request_carries_is_bounded(served: Home) -> None:
    """The document states both bounds of every integer (the server enforces them: the
    fuzz's coverage phase sends each bound and one past it)."""
    document = httpx.get(f"{served.url}/openapi.json").json()
    components = document.get("components", {}).get("schemas", {})
    unbounded = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            inputs = [operation.get("parameters", []), operation.get("requestBody", {})]
            for spot, schema in _integers(inputs, where, components):
                if "minimum" not in schema or "maximum" not in schema:
                    unbounded.append(spot)
    assert unbounded == []


def test_errors_are_documented_in_the_one_shape(served: Home) -> None:
    document = httpx.get(f"{served.url}/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = operation["responses"].get("4XX", {})
            schema = errors.get("content", {}).get("application/json", {}).get("schema")
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


HUGE = 10**36
SYNC = "/api/sync/v1/clients/laptop"
PNG = {"Content-Type": "image/png"}
MKDIR = {"op": "mkdir", "path": "d", "mode": 0o755, "mtime_ns": HUGE}
PAST_BOUNDS = [
    pytest.param("GET", f"/api/images?offset={HUGE}&limit=155", {}, id="images-offset"),
    pytest.param(
        "POST", "/api/images", {"json": {"data": "data:image/png;base64,AA==", "expires_in": HUGE}},
        id="images-expiry",
    ),
    pytest.param(
        "POST", "/api/images?expires_in=%C2%B2", {"content": b"x", "headers": PNG},
        id="images-expiry-digits",
    ),
    pytest.param("GET", f"{SYNC}/manifest?generation={HUGE}", {}, id="sync-generation"),
    pytest.param(
        "PUT", f"{SYNC}/files?path=a&size=0&mode=420&mtime_ns={HUGE}&hash={'0' * 64}",
        {"content": b""}, id="sync-upload-mtime",
    ),
    pytest.param("POST", f"{SYNC}/ops", {"json": {"ops": [MKDIR]}}, id="sync-op-mtime"),
    pytest.param("GET", f"/api/music/tracks/{HUGE}", {}, id="music-track-id"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "request_args"), PAST_BOUNDS)
def test_numbers_past_their_bounds_are_refused(
    served: Home, method: str, path: str, request_args: dict[str, Any]
) -> None:
    """The requests that answered 500 before issue 18 now get a 422 that names the field."""
    with served.server.client(served.token) as http:
        answer = http.request(method, path, **request_args)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"


def test_an_upload_offset_past_64_bits_is_refused(served: Home) -> None:
    with served.server.client(served.token) as http:
        opened = http.post(
            "/api/convert/uploads",
            json={"file_name": "a.png", "file_size": 10, "conversion": "webp"},
        )
        assert opened.status_code == 201, opened.text
        answer = http.patch(
            opened.json()["upload_url"],
            content=b"x",
            headers={"Upload-Offset": "9" * 19, "Content-Type": "application/offset+octet-stream"},
        )
    assert answer.status_code == 400, answer.text
    assert "Upload-Offset" in answer.json()["error"]["message"]
