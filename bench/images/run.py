"""Benchmark images: uploads/s and GET req/s, homekeep beside nginx on the same files.

Run: python bench/images/run.py [--duration 5] [--connections 32]
Needs wrk (Debian: apt-get install wrk) and nginx (Debian: nginx-light) on PATH.
Prints one table; the ratio to nginx is the number to compare across machines.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from PIL import Image

HERE = Path(__file__).parent
HOMEKEEP = [sys.executable, "-m", "homekeep"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample_png(target: int = 100_000) -> bytes:
    """A PNG of about ``target`` bytes: random pixels do not compress."""
    rng = random.Random(7)
    side = int((target / 3) ** 0.5)
    im = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    path = Path(tempfile.mkstemp(suffix=".png")[1])
    im.save(path, "PNG")
    data = path.read_bytes()
    path.unlink()
    return data


def env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("HOMEKEEP_")}
    keep.update(NO_PROXY="*", HOMEKEEP_IMAGES_RATE_LIMIT_PER_MINUTE="0")
    return keep


@contextmanager
def homekeep(data_dir: Path, port: int, **extra: str) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*HOMEKEEP, "--data-dir", str(data_dir), "serve", "--port", str(port)],
        env={**env(), **extra},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url + "/healthz")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def nginx(conf: Path, ready: str) -> Iterator[None]:
    proc = subprocess.Popen(
        ["nginx", "-e", str(conf.parent / "nginx-error.log"), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(ready)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def wrk(url: str, args: argparse.Namespace, script: Path | None = None, **env_vars: str) -> float:
    """Run wrk and return requests per second; refuse a run with errors."""
    cmd = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "20s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, env={**os.environ, **env_vars}, check=True
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return float(match[1])


POST_LUA = """
local f = io.open(os.getenv("BODY_FILE"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.method = os.getenv("METHOD") or "POST"
wrk.headers["Content-Type"] = os.getenv("BODY_TYPE")
if os.getenv("TOKEN") then wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN") end
if os.getenv("RANDOM_PATH") then
  request = function()
    return wrk.format(nil, os.getenv("RANDOM_PATH") .. math.random(1, 1000000000) .. ".png")
  end
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found on PATH: apt-get install {tool}")
    with tempfile.TemporaryDirectory(prefix="hk-bench-images-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        token = subprocess.run(
            [
                *HOMEKEEP,
                "--data-dir",
                str(data_dir),
                "token",
                "create",
                "bench",
                "--scope",
                "images",
            ],
            capture_output=True,
            text=True,
            env=env(),
            check=True,
        ).stdout.strip()
        png = sample_png()
        bodies = tmp / "bodies"
        bodies.mkdir()
        (bodies / "image.png").write_bytes(png)
        doc = {
            "file_name": "bench.png",
            "mime_type": "image/png",
            "data": base64.b64encode(png).decode(),
        }
        (bodies / "json").write_text(json.dumps(doc))
        boundary = "hkbench7d3f"
        multipart = (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="bench.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + png
            + f"\r\n--{boundary}--\r\n".encode()
        )
        (bodies / "multipart").write_bytes(multipart)
        script = tmp / "post.lua"
        script.write_text(POST_LUA)
        ports = {name: free_port() for name in ("HK", "HK_ACCEL", "STATIC", "ALIAS", "ACCEL")}
        area_dir = data_dir / "images"
        conf_text = (HERE / "nginx.conf.in").read_text()
        for key, value in {
            "TMP": str(tmp),
            "FILES": str(area_dir / "files"),
            "AREA_DIR": str(area_dir),
            **{f"{k}_PORT": str(v) for k, v in ports.items()},
        }.items():
            conf_text = conf_text.replace(f"@{key}@", value)
        conf = tmp / "nginx.conf"
        conf.write_text(conf_text)
        (tmp / "dav").mkdir()
        rows: list[tuple[str, float, float]] = []
        with (
            homekeep(data_dir, ports["HK"]) as hk,
            homekeep(data_dir, ports["HK_ACCEL"], HOMEKEEP_IMAGES_ACCEL_REDIRECT="/_images/"),
        ):
            static = f"http://127.0.0.1:{ports['STATIC']}"
            with nginx(conf, static + "/"):
                common = {"TOKEN": token, "BODY_TYPE": "image/png"}
                put = wrk(
                    static,
                    args,
                    script,
                    BODY_FILE=str(bodies / "image.png"),
                    METHOD="PUT",
                    RANDOM_PATH="/dav/",
                    BODY_TYPE="image/png",
                )
                up_json = wrk(
                    hk + "/api/images",
                    args,
                    script,
                    **{
                        **common,
                        "BODY_FILE": str(bodies / "json"),
                        "BODY_TYPE": "application/json",
                    },
                )
                up_multi = wrk(
                    hk + "/api/images",
                    args,
                    script,
                    **{
                        **common,
                        "BODY_FILE": str(bodies / "multipart"),
                        "BODY_TYPE": f"multipart/form-data; boundary={boundary}",
                    },
                )
                rows.append(("upload 100 KB PNG, base64 JSON", up_json, put))
                rows.append(("upload 100 KB PNG, multipart", up_multi, put))
                link = httpx.post(
                    hk + "/api/images",
                    content=png,
                    headers={"Content-Type": "image/png", "Authorization": f"Bearer {token}"},
                ).json()["url"]
                path = "/i/" + link.rsplit("/", 1)[1]
                nginx_get = wrk(static + path, args)
                rows.append(("GET image, homekeep alone", wrk(hk + path, args), nginx_get))
                alias = f"http://127.0.0.1:{ports['ALIAS']}{path}"
                rows.append(("GET image, nginx front (alias)", wrk(alias, args), nginx_get))
                accel = f"http://127.0.0.1:{ports['ACCEL']}{path}"
                check = httpx.get(accel)
                assert check.content == png, "X-Accel-Redirect front served other bytes"
                assert check.headers["content-type"] == "image/png"
                rows.append(
                    ("GET image, nginx front (X-Accel-Redirect)", wrk(accel, args), nginx_get)
                )
        count = len(list((area_dir / "files").iterdir()))
    print(
        f"images benchmark: {len(png)} byte PNG, wrk -t2 -c{args.connections} "
        f"-d{args.duration}s, {count} images stored"
    )
    print(f"{'measurement':<44} {'homekeep req/s':>15} {'nginx req/s':>12} {'ratio':>7}")
    for name, ours, theirs in rows:
        print(f"{name:<44} {ours:>15.0f} {theirs:>12.0f} {ours / theirs:>7.3f}")
    print(
        "nginx column: uploads = nginx WebDAV PUT of the same PNG (stores bytes, checks nothing);"
        " GET = nginx alone serving the file"
    )


if __name__ == "__main__":
    main()
