"""Configured behaviour on a real server: open uploads, rate limits, dedup, expiry, URLs."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image

from homekeep.core.config import load_settings
from homekeep.core.errors import ConfigError
from homekeep.images.config import ImagesConfig
from tests.images import samples
from tests.images.conftest import FAST, Hosted, start
from tests.support import run_cli

PNG = samples.png(seed=70)


def post(h: Hosted, data: bytes = PNG, *, anonymous: bool = False, **kw: str) -> httpx.Response:
    headers = {"Content-Type": "image/png"}
    if not anonymous:
        headers["Authorization"] = f"Bearer {kw.pop('token', h.token)}"
    return httpx.post(f"{h.server.url}/api/images", content=data, headers=headers, params=kw)


@pytest.fixture
def custom(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Hosted]:
    yield from start(tmp_path, request.param)


@pytest.mark.parametrize(
    "custom", [{**FAST, "HOMEKEEP_IMAGES_OPEN_UPLOADS": "true"}], indirect=True
)
def test_open_uploads_take_anonymous_images(custom: Hosted) -> None:
    response = post(custom, anonymous=True)
    assert response.status_code == 201
    assert custom.row(response.json()["id"])["owner"] is None  # type: ignore[index]
    assert httpx.get(response.json()["url"]).content == PNG
    assert post(custom, token="hk_bad").status_code == 401  # a bad token is still refused


@pytest.mark.parametrize(
    "custom",
    [
        {
            "HOMEKEEP_IMAGES_RATE_LIMIT_PER_MINUTE": "30",
            "HOMEKEEP_IMAGES_RATE_LIMIT_BURST": "2",
            "HOMEKEEP_IMAGES_OPEN_UPLOADS": "true",
            "HOMEKEEP_WEB_TRUSTED_PROXIES": '["127.0.0.1"]',
        }
    ],
    indirect=True,
)
def test_rate_limit_answers_429_with_retry_after_per_token_and_per_address(
    custom: Hosted,
) -> None:
    """30 a minute is one every 2 s: after the burst of 2, Retry-After says 2."""
    seeds = iter(range(1000, 2000))

    def send(who: str) -> httpx.Response:
        data = samples.png(seed=next(seeds))
        if who == "token":
            return post(custom, data)
        # Behind a proxy on loopback the client address is X-Forwarded-For's.
        headers = {"Content-Type": "image/png", "X-Forwarded-For": who}
        return httpx.post(f"{custom.server.url}/api/images", content=data, headers=headers)

    for who in ("token", "192.0.2.1"):
        assert [send(who).status_code for _ in range(2)] == [201, 201]
        before = custom.state()
        limited = send(who)
        assert limited.status_code == 429, who
        assert limited.json()["error"]["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "2"
        assert custom.state() == before
    assert send("192.0.2.2").status_code == 201  # another address has its own bucket
    assert send("192.0.2.1").status_code == 429
    # An IPv6 client has a whole /64: one bucket for all of it, another for the next /64.
    assert [send(f"2001:db8:0:1::{n}").status_code for n in (1, 2, 3)] == [201, 201, 429]
    assert send("2001:db8:0:1:ffff::9").status_code == 429
    assert send("2001:db8:0:2::1").status_code == 201
    time.sleep(2.05)
    assert send("token").status_code == 201
    assert send("192.0.2.1").status_code == 201


def peak_mib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "custom",
    [{**FAST, "HOMEKEEP_IMAGES_DECODE_SLOTS": "1", "HOMEKEEP_IMAGES_MAX_PIXELS": "20000000"}],
    indirect=True,
)
def test_concurrent_uploads_decode_one_slot_at_a_time(custom: Hosted) -> None:
    """Six 20-megapixel PNGs (small files: one colour) at once: one whole frame (60 MB) in
    memory at a time, not six."""
    out = io.BytesIO()
    Image.new("RGB", (4470, 4470), (1, 2, 3)).save(out, "PNG", compress_level=1)
    big = out.getvalue()
    assert post(custom, big).status_code == 201  # the first decode sets the baseline
    pid = custom.server.process.pid
    before = peak_mib(pid)
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: post(custom, big).status_code, range(6)))
    assert codes == [201] * 6
    assert peak_mib(pid) - before < 150  # six at once took it up by about 450 MiB


@pytest.mark.parametrize("custom", [{**FAST, "HOMEKEEP_IMAGES_DEDUP": "true"}], indirect=True)
def test_dedup_gives_back_the_same_image(custom: Hosted) -> None:
    first = post(custom)
    again = post(custom)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["delete_url"] is None
    assert len(custom.state()[1]) == 1
    assert post(custom, samples.png(seed=71)).json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    "custom", [{**FAST, "HOMEKEEP_IMAGES_SWEEP_INTERVAL_SECONDS": "0.3"}], indirect=True
)
def test_expired_images_are_swept(custom: Hosted) -> None:
    keep = post(custom).json()
    body = post(custom, samples.png(seed=72), expires_in="1").json()
    assert body["expires_at"] is not None
    served = httpx.get(body["url"])
    assert served.status_code == 200  # expiry rounds up: never gone before a full second
    assert int(served.headers["cache-control"].split("max-age=")[1].split(",")[0]) <= 2
    doc = {"mime_type": "image/png", "data": base64.b64encode(samples.png(seed=73)).decode()}
    headers = {"Authorization": f"Bearer {custom.token}"}
    by_json = httpx.post(
        f"{custom.server.url}/api/images", json={**doc, "expires_in": 1}, headers=headers
    ).json()
    assert by_json["expires_at"] is not None
    deadline = time.monotonic() + 10
    while (custom.row(body["id"]) or custom.row(by_json["id"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert custom.row(body["id"]) is None
    assert custom.row(by_json["id"]) is None
    assert not (custom.files / f"{body['id']}.png").exists()
    assert httpx.get(body["url"]).status_code == 404
    assert httpx.get(keep["url"]).status_code == 200


@pytest.mark.parametrize(
    "custom",
    [
        {
            **FAST,
            "HOMEKEEP_IMAGES_PUBLIC_URL": "https://img.example.net/",
            "HOMEKEEP_IMAGES_ID_ALPHABET": "abcdef",
            "HOMEKEEP_IMAGES_ID_LENGTH": "6",
            "HOMEKEEP_IMAGES_ALLOWED_TYPES": '["image/png"]',
            "HOMEKEEP_IMAGES_DEFAULT_EXPIRY_SECONDS": "3600",
        }
    ],
    indirect=True,
)
def test_public_url_id_alphabet_allowed_types_and_default_expiry(custom: Hosted) -> None:
    body = post(custom).json()
    assert body["url"] == f"https://img.example.net/i/{body['id']}.png"
    assert body["delete_url"].startswith(f"https://img.example.net/images/delete/{body['id']}/")
    assert len(body["id"]) == 6
    assert set(body["id"]) <= set("abcdef")
    assert body["expires_at"] is not None
    jpeg = httpx.post(
        f"{custom.server.url}/api/images",
        content=samples.encode("JPEG"),
        headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {custom.token}"},
    )
    assert jpeg.status_code == 415
    assert "image/png" in jpeg.json()["error"]["message"]


@pytest.mark.parametrize(
    "custom", [{**FAST, "HOMEKEEP_IMAGES_MAX_EXPIRY_SECONDS": "600"}], indirect=True
)
def test_max_expiry_caps_and_defaults(custom: Hosted) -> None:
    before = custom.state()
    too_long = post(custom, expires_in="601")
    assert too_long.status_code == 422
    assert "600" in too_long.json()["error"]["message"]
    assert custom.state() == before
    capped = post(custom).json()
    assert capped["expires_at"] is not None
    left = datetime.fromisoformat(capped["expires_at"]) - datetime.now(UTC)
    assert 500 < left.total_seconds() <= 601  # rounded up to the whole second


def test_server_public_url_is_the_fallback(tmp_path: Path) -> None:
    env = {**FAST, "HOMEKEEP_SERVER_PUBLIC_URL": "http://home.example:8080"}
    for hosted in start(tmp_path, env):
        body = post(hosted).json()
        assert body["url"] == f"http://home.example:8080/i/{body['id']}.png"


BAD_CONFIG = [
    ("id_length", "5"),
    ("id_length", "65"),
    ("id_alphabet", '"a"'),
    ("id_alphabet", '"aab"'),
    ("id_alphabet", '"a/b"'),
    ("id_alphabet", '"a.b"'),
    ("allowed_types", '["image/svg+xml"]'),
    ("allowed_types", "[]"),
    ("allowed_types", '"image/png"'),
    ("max_bytes", "0"),
    ("max_pixels", "0"),
    ("max_pixels", "89478486"),  # past Pillow's limit, where it would only warn
    ("max_frames", "0"),
    ("max_total_pixels", "0"),
    ("max_total_pixels", "1000"),  # under max_pixels: a still image could not pass
    ("rate_limit_per_minute", "-1"),
    ("rate_limit_burst", "0"),
    ("default_expiry_seconds", "-1"),
    ("max_expiry_seconds", "-1"),
    ("sweep_interval_seconds", "0"),
    ("accel_redirect", '"x"'),
    ("accel_redirect", '"/../"'),
    ("file_name_max", "0"),
    ("public_url", '"img.example"'),
    ("public_url", '"javascript:alert(1)"'),
    ("public_url", '"https://img.example/?a=b"'),
    ("strip_gps", '"maybe"'),
    ("apply_orientation", "2"),
    ("dedup", '"perhaps"'),
    ("open_uploads", "[]"),
    ("no_such_key", "1"),
]


@pytest.mark.parametrize(("key", "value"), BAD_CONFIG, ids=[f"{k}={v}" for k, v in BAD_CONFIG])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, key: str, value: str) -> None:
    """The loader the CLI runs (in process, for speed; the CLI cases are below)."""
    config = tmp_path / "config.toml"
    config.write_text(f"[images]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {"images": ImagesConfig}, env={})
    assert caught.value.exit_code == 2
    message = caught.value.message
    assert message.startswith(f"{config}: [images] ")
    assert key in message
    assert "\n" not in message


def test_bad_config_file_is_a_one_line_cli_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[images]\nid_alphabet = "a.b"\n')
    result = run_cli("--config", config, "images", "list", data_dir=tmp_path, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {config}: [images] id_alphabet: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("var", "value"),
    [("HOMEKEEP_IMAGES_ID_LENGTH", "5"), ("HOMEKEEP_IMAGES_PUBLIC_URL", "ftp://x")],
)
def test_bad_config_is_refused_at_start_with_the_key_named(
    tmp_path: Path, var: str, value: str
) -> None:
    result = run_cli("serve", "--port", "0", data_dir=tmp_path, env={var: value}, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: environment variable " + var)
    assert len(result.stderr.strip().splitlines()) == 1
