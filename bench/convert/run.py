"""Benchmark convert: wall time through the queue against bare ffmpeg, in the same run.

(a) a 30 s 1080p clip to mkv-x264; (b) 100 small PNGs to WebP, with one worker and with
two (bare ffmpeg runs one and two at a time to match); (c) upload throughput of the
resumable protocol against a plain HTTP PUT of the same file to nginx (WebDAV).
Needs ffmpeg and nginx (Debian: nginx-light). Prints Markdown tables for
docs/benchmarks.md; the ratios are the numbers to compare across machines.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from homekeep.convert.client import ServerClient, sha512_file  # noqa: E402
from homekeep.convert.config import ConvertConfig  # noqa: E402
from homekeep.convert.probing import probe  # noqa: E402
from homekeep.convert.profiles import ffmpeg_args  # noqa: E402

NGINX_CONF = """
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    server {{
        listen 127.0.0.1:{port};
        location /dav/ {{
            alias {tmp}/dav/;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
            client_body_buffer_size 1m;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *(str(a) for a in args)],
        check=True,
        timeout=1800,
    )


def env(extra: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOMEKEEP_")}
    return {**clean, "NO_PROXY": "*", "HOMEKEEP_CONVERT_MIN_FREE_BYTES": "0", **extra}


@contextmanager
def server(data_dir: Path, threads: int, extra: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`homekeep serve` on a free port with ``threads`` workers; yields its URL and a token."""
    hk = [sys.executable, "-m", "homekeep", "--data-dir", str(data_dir)]
    made = subprocess.run(
        [*hk, "token", "create", "bench", "--scope", "convert"],
        capture_output=True,
        text=True,
        check=True,
        env=env({}),
    )
    port = free_port()
    proc = subprocess.Popen(
        [*hk, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env({"HOMEKEEP_CONVERT_NUMBER_OF_CONVERSION_THREADS": str(threads), **extra}),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield url, made.stdout.strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def through_queue(url: str, token: str, files: list[Path], conversion: str) -> float:
    """Seconds from the first upload until every item is finished (and checked)."""
    start = time.perf_counter()
    with ServerClient(url, token) as client:
        ids = []
        for path in files:
            data = path.read_bytes()
            sha = hashlib.sha512(data).hexdigest()
            upload = client.create_upload(path.name, len(data), sha, conversion, "bench")
            ids.append(client.send(upload["upload_id"], path, 0, len(data))["item_id"])
        waiting = set(ids)
        while waiting:
            items = client.items("bench")
            done = {i["item_id"] for i in items if i["status"].startswith("finished")}
            failed = [i for i in items if i["status"] == "finished_with_errors"]
            if failed:
                raise SystemExit(f"a benchmark item failed: {failed[0]['errors']}")
            waiting -= done
            if waiting:
                time.sleep(0.05)
    return time.perf_counter() - start


def bare(files: list[Path], conversion: str, out: Path, parallel: int) -> float:
    """Seconds for bare ffmpeg with the very arguments the workers use."""
    config = ConvertConfig()
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for path in files:
        info = probe(path, timeout=60)
        ext = "mkv" if conversion.startswith("mkv") else conversion
        jobs.append([path, *ffmpeg_args(conversion, info, config), out / f"{path.stem}.{ext}"])
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda job: ffmpeg("-i", *job), jobs))
    return time.perf_counter() - start


def upload_speed(url: str, token: str, blob: Path) -> float:
    size = blob.stat().st_size
    start = time.perf_counter()
    with ServerClient(url, token) as client:
        upload = client.create_upload(blob.name, size, sha512_file(blob), "mkv-x264", "bench")
        try:
            client.send(upload["upload_id"], blob, 0, size)
        except Exception as exc:  # random bytes: refused by ffprobe once they are all in
            if "not a media file" not in str(exc):
                raise
    return size / (time.perf_counter() - start)


def nginx_put_speed(tmp: Path, blob: Path) -> float:
    port = free_port()
    (tmp / "dav").mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(
        ["nginx", "-e", str(tmp / "nginx-error.log"), "-c", str(conf), "-g", "daemon off;"]
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)

        def body() -> Iterator[bytes]:
            with blob.open("rb") as fh:
                while block := fh.read(1 << 20):
                    yield block

        start = time.perf_counter()
        answer = httpx.put(
            f"http://127.0.0.1:{port}/dav/{blob.name}",
            content=body(),
            headers={"Content-Length": str(blob.stat().st_size)},
            timeout=600,
        )
        answer.raise_for_status()
        return blob.stat().st_size / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="How many PNGs (default 100).")
    parser.add_argument("--seconds", type=float, default=30, help="Clip length (default 30).")
    parser.add_argument("--preset", default="medium", help="x264 preset (default medium).")
    parser.add_argument("--upload-mb", type=int, default=512, help="Upload size (default 512).")
    parser.add_argument("--only", choices=("video", "images", "upload"), action="append")
    args = parser.parse_args()
    parts = args.only or ["video", "images", "upload"]
    for tool in ("ffmpeg", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: ffmpeg, nginx-light)")
    tmp = Path(tempfile.mkdtemp(prefix="hk-bench-convert-"))
    print(f"homekeep convert benchmark; work dir {tmp}; {os.cpu_count()} CPUs", flush=True)
    rows: list[tuple[str, float, float]] = []
    try:
        if "video" in parts:
            clip = tmp / "clip1080.mp4"
            ffmpeg(
                "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:d={args.seconds}",
                "-f", "lavfi", "-i", f"sine=frequency=440:d={args.seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", clip,
            )  # fmt: skip
            extra = {"HOMEKEEP_CONVERT_X264_PRESET": args.preset}
            theirs = bare([clip], "mkv-x264", tmp / "bare-video", 1)
            with server(tmp / "hk-video", 1, extra) as (url, token):
                ours = through_queue(url, token, [clip], "mkv-x264")
            name = f"{args.seconds:.0f} s 1080p clip to mkv-x264 ({args.preset}), 1 worker"
            rows.append((name, ours, theirs))
            print(f"  {name}: queue {ours:.2f} s, bare ffmpeg {theirs:.2f} s", flush=True)
        if "images" in parts:
            folder = tmp / "images"
            folder.mkdir()
            ffmpeg(
                "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25",
                "-frames:v", str(args.images), folder / "img%03d.png",
            )  # fmt: skip
            images = sorted(folder.glob("*.png"))
            for workers in (1, 2):
                theirs = bare(images, "webp", tmp / f"bare-webp-{workers}", workers)
                with server(tmp / f"hk-images-{workers}", workers, {}) as (url, token):
                    ours = through_queue(url, token, images, "webp")
                name = f"{len(images)} PNGs (640x480) to webp, {workers} worker(s)"
                rows.append((name, ours, theirs))
                print(f"  {name}: queue {ours:.2f} s, bare ffmpeg {theirs:.2f} s", flush=True)
        speeds: tuple[float, float] | None = None
        if "upload" in parts:
            blob = tmp / "blob.bin"
            with blob.open("wb") as fh:
                for _ in range(args.upload_mb):
                    fh.write(os.urandom(1 << 20))
            with server(tmp / "hk-upload", 0, {}) as (url, token):
                ours_speed = upload_speed(url, token, blob)
            speeds = (ours_speed, nginx_put_speed(tmp, blob))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if rows:
        print("\n| what | through the queue (s) | bare ffmpeg (s) | ratio |")
        print("|---|---|---|---|")
        for name, ours, theirs in rows:
            print(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.3f} |")
    if speeds is not None:
        ours_speed, nginx_speed = speeds
        print(f"\n| upload of {args.upload_mb} MiB | MB/s | ratio |")
        print("|---|---|---|")
        print(
            f"| homekeep resumable upload (64 MiB PATCHes, SHA-512) | {ours_speed / 1e6:.0f} "
            f"| {ours_speed / nginx_speed:.3f} |"
        )
        print(f"| nginx WebDAV PUT | {nginx_speed / 1e6:.0f} | 1.000 |")


if __name__ == "__main__":
    main()
