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
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from homekeep.convert.checks import decode_command  # noqa: E402
from homekeep.convert.client import ServerClient, sha512_file  # noqa: E402
from homekeep.convert.config import ConvertConfig  # noqa: E402
from homekeep.convert.outbox import Outbox, targets  # noqa: E402
from homekeep.convert.probing import probe  # noqa: E402
from homekeep.convert.profiles import ffmpeg_args  # noqa: E402

POLL_SECONDS, POLL_QUEUED_SECONDS, POLL_MAX_SECONDS = 0.1, 0.5, 5.0
SERVING: list[int] = []  # the pid of the server running now
CHECKED = re.compile(r"item ([0-9a-f-]{36}): converted in ([\d.]+) s, checked in ([\d.]+) s")

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
    """`homekeep serve` on a free port with ``threads`` workers; yields its URL and a token.

    Its process id is kept in SERVING while it runs, for ``server_cpu``.
    """
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
    SERVING[:] = [proc.pid]
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


def send_all(
    url: str, token: str, files: list[Path], conversion: str, client_id: str, uploads: int
) -> list[str]:
    """Send ``files`` as `homekeep convert add` does: into the client's outbox (its SHA-512
    of each file), then ``uploads`` resumable uploads at a time; return their item ids."""
    config = ConvertConfig.model_validate({"client_id": client_id, "upload_concurrency": uploads})
    folder = Path(tempfile.mkdtemp(prefix="hk-bench-client-"))
    box = Outbox(folder / "client.sqlite", config, targets(config, url, token))
    try:
        local = [box.add(path, conversion)[0]["id"] for path in files]
        box.send_all()
        items = [box.get(n) for n in local]
    finally:
        box.close()
        shutil.rmtree(folder, ignore_errors=True)
    if any(not i["item_id"] for i in items):
        raise SystemExit(f"not every file was accepted: {items[0]}")
    return [i["item_id"] for i in items]


def through_queue(
    url: str, token: str, files: list[Path], conversion: str, client_id: str, uploads: int
) -> tuple[float, float, list[str]]:
    """Seconds from the first upload until every item is finished (and checked).

    Also the seconds the uploads took, and the item ids. The client polls as a patient
    one would: every POLL_QUEUED_SECONDS while items wait in the queue, then about halfway
    through the time the server says is left (at most POLL_MAX_SECONDS), and every
    POLL_SECONDS near the end, so its questions take little CPU from the encoders and add
    little to the wall time.
    """
    start = time.perf_counter()
    ids = send_all(url, token, files, conversion, client_id, uploads)
    uploaded = time.perf_counter() - start
    with ServerClient(url, token) as client:
        waiting = set(ids)
        deadline = time.monotonic() + 3600
        while waiting:
            if time.monotonic() > deadline:
                raise SystemExit("the queue did not finish within an hour")
            items = client.items(client_id)
            failed = [i for i in items if i["status"] == "finished_with_errors"]
            if failed:
                raise SystemExit(f"a benchmark item failed: {failed[0]['errors']}")
            waiting -= {i["item_id"] for i in items if i["status"].startswith("finished")}
            left = [
                i["progress"]["seconds_left"] or 0
                for i in items
                if i["item_id"] in waiting and i["status"] == "in_progress" and i["progress"]
            ]
            if waiting:
                pause = min(left) / 2 if len(left) == len(waiting) else POLL_QUEUED_SECONDS
                time.sleep(min(POLL_MAX_SECONDS, max(POLL_SECONDS, pause)))
    return time.perf_counter() - start, uploaded, ids


def server_cpu() -> tuple[float, float]:
    """CPU seconds of the running server itself, and of its ended children (ffmpeg, ffprobe)."""
    fields = Path(f"/proc/{SERVING[0]}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def check_seconds(data_dir: Path, ids: list[str]) -> float:
    """The seconds the workers spent checking these items' outputs (from the server log)."""
    wanted = set(ids)
    total = 0.0
    found = 0
    for line in (data_dir / "logs" / "homekeep.log").read_text().splitlines():
        match = CHECKED.search(line)
        if match and match[1] in wanted:
            total += float(match[3])
            found += 1
    if found != len(wanted):
        raise SystemExit(f"the server log names {found} of {len(wanted)} checks")
    return total


def bare(
    files: list[Path], conversion: str, out: Path, parallel: int, config: ConvertConfig
) -> tuple[float, float, float]:
    """Seconds for bare ffmpeg with the very arguments the workers use, then for decoding
    its outputs as the workers' check does (a video) or not at all (images: Pillow); and
    the CPU seconds of the conversions."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    jobs = []
    outputs = []
    for path in files:
        info = probe(path, timeout=60)
        ext = "mkv" if conversion.startswith("mkv") else conversion
        outputs.append(out / f"{path.stem}.{ext}")
        jobs.append([path, *ffmpeg_args(conversion, info, config), outputs[-1]])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda job: ffmpeg("-i", *job), jobs))
    converted = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    decoded = 0.0
    if conversion.startswith("mkv"):
        start = time.perf_counter()
        for output in outputs:
            subprocess.run(decode_command(output), capture_output=True, check=True, timeout=1800)
        decoded = time.perf_counter() - start
    return converted, decoded, cpu


def upload_speed(url: str, token: str, blob: Path) -> tuple[float, float]:
    """Bytes per second of the upload alone (create, PATCHes, the server's check), and of
    the client's SHA-512 of the file before it (which it declares when it creates)."""
    size = blob.stat().st_size
    start = time.perf_counter()
    digest = sha512_file(blob)
    hashed = time.perf_counter()
    with ServerClient(url, token) as client:
        upload = client.create_upload(blob.name, size, digest, "mkv-x264", "bench")
        try:
            client.send(upload["upload_id"], blob, 0, size)
        except Exception as exc:  # random bytes: refused by ffprobe once they are all in
            if "not a media file" not in str(exc):
                raise
    done = time.perf_counter()
    return size / (done - hashed), size / (hashed - start)


def upload(tmp: Path, megabytes: int, rounds: int) -> None:
    """The resumable upload against a plain PUT to nginx, of the same random file."""
    blob = tmp / "blob.bin"
    with blob.open("wb") as fh:
        for _ in range(megabytes):
            fh.write(os.urandom(1 << 20))
    rows = []
    with server(tmp / "hk-upload", 0, {}) as (url, token):
        for n in range(rounds):
            sent, hashed = upload_speed(url, token, blob)
            nginx = nginx_put_speed(tmp, blob)
            rows.append((sent, hashed, nginx))
            print(
                f"  round {n + 1}: homekeep {sent / 1e6:.0f} MB/s (the client's SHA-512 before "
                f"it: {hashed / 1e6:.0f} MB/s); nginx PUT {nginx / 1e6:.0f} MB/s",
                flush=True,
            )
    sent = statistics.median(r[0] for r in rows)
    both = statistics.median(1 / (1 / r[0] + 1 / r[1]) for r in rows)
    nginx = statistics.median(r[2] for r in rows)
    ratio = statistics.median(r[0] / r[2] for r in rows)
    ratio_both = statistics.median(1 / (1 / r[0] + 1 / r[1]) / r[2] for r in rows)
    print(f"\n| upload of {megabytes} MiB, median of {rounds} rounds | MB/s | ratio |")
    print("|---|---|---|")
    print(
        f"| homekeep resumable upload (64 MiB PATCHes, SHA-512 on the server) "
        f"| {sent / 1e6:.0f} | {ratio:.3f} |"
    )
    print(
        f"| the same with the client's SHA-512 of the file first | {both / 1e6:.0f} "
        f"| {ratio_both:.3f} |"
    )
    print(f"| nginx WebDAV PUT (stores the bytes, checks nothing) | {nginx / 1e6:.0f} | 1.000 |")


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


def video(tmp: Path, seconds: float, preset: str, rounds: int, uploads: int) -> None:
    """The clip through the queue and by bare ffmpeg, alternating (ours, bare, ours...)."""
    clip = make_clip(tmp, seconds)
    size = clip.stat().st_size
    name = f"{seconds:.0f} s 1080p30 clip ({size / 1e6:.0f} MB) to mkv-x264 ({preset})"
    print(f"{name}, 1 worker, {rounds} rounds (ours first in each)", flush=True)
    data = tmp / "hk-video"
    same = ConvertConfig.model_validate({"x264_preset": preset})  # as the server below
    rows = []
    with server(data, 1, {"HOMEKEEP_CONVERT_X264_PRESET": preset}) as (url, token):
        for n in range(rounds):
            own, children = server_cpu()
            total, uploaded, ids = through_queue(
                url, token, [clip], "mkv-x264", f"video-{n}", uploads
            )
            own_after, children_after = server_cpu()
            checked = check_seconds(data, ids)
            converted, decoded, _ = bare([clip], "mkv-x264", tmp / "bare-video", 1, same)
            rows.append((total, uploaded, checked, converted, decoded))
            print(
                f"  round {n + 1}: queue {total:.2f} s (upload {uploaded:.2f} s, check "
                f"{checked:.2f} s); bare ffmpeg {converted:.2f} s, its output decoded in "
                f"{decoded:.2f} s; CPU of the server's Python {own_after - own:.2f} s, of "
                f"its ffprobe, ffmpeg and check {children_after - children:.2f} s",
                flush=True,
            )
    print(f"\n{name}, 1 worker; ratios are the median of {rounds} alternating rounds\n")
    print("| round | queue, whole (s) | of it upload (s) | of it check (s) | bare ffmpeg (s) "
          "| conversion only | with the check |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for n, (total, uploaded, checked, converted, _) in enumerate(rows, 1):
        print(
            f"| {n} | {total:.2f} | {uploaded:.2f} | {checked:.2f} | {converted:.2f} "
            f"| {(total - checked) / converted:.3f} | {total / converted:.3f} |"
        )
    only = statistics.median([(t - c) / b for t, _, c, b, _ in rows])
    whole = statistics.median([t / b for t, _, _, b, _ in rows])
    bare_check = statistics.median([d / b for *_, b, d in rows])
    print(
        f"| median | | | | | **{only:.3f}** | **{whole:.3f}** |\n\n"
        f"Decoding bare ffmpeg's output as the check does adds {bare_check:.3f}x of its "
        "encode time."
    )


def make_clip(tmp: Path, seconds: float) -> Path:
    """A 1080p30 H.264 clip with AAC sound, from ffmpeg's test sources."""
    clip = tmp / "clip1080.mp4"
    if not clip.exists():
        ffmpeg(
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:d={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:d={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", clip,
        )  # fmt: skip
    return clip


def timed(cmd: list[str], **kwargs: Any) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=1800, capture_output=True, **kwargs)
    return time.perf_counter() - start


def check_ideas(tmp: Path, seconds: float, preset: str, rounds: int) -> None:
    """What each way of checking the output costs beside bare ffmpeg's encode, alternating.

    After the encode: the worker's check (every frame decoded, no deblocking), the same
    with one decoder thread, and with the IDCT skipped too. During the encode: ffmpeg's
    tee muxer writes the file and a Matroska copy of the same packets to a pipe, which a
    second ffmpeg decodes as they come; then a demux of the file counts its packets.
    """
    clip = make_clip(tmp, seconds)
    config = ConvertConfig.model_validate({"x264_preset": preset})
    args = ffmpeg_args("mkv-x264", probe(clip, timeout=60), config)
    assert args[-2:] == ["-f", "matroska"]
    out = tmp / "check-out.mkv"
    encode = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip), *args, str(out)]
    check = decode_command(out)
    at = check.index("-i")  # decoder options go before the input
    after = {
        "check after (worker's)": check,
        "after, -threads 1": [*check[:at], "-threads", "1", *check[at:]],
        "after, -skip_idct all too": [*check[:at], "-skip_idct", "all", *check[at:]],
    }
    print(f"check ideas for {clip.stat().st_size / 1e6:.0f} MB of 1080p30 ({preset})", flush=True)
    rows: dict[str, list[float]] = {name: [] for name in ["bare encode", *after, "tee"]}
    for n in range(rounds):
        bare_s = timed(encode)
        rows["bare encode"].append(bare_s)
        for name, cmd in after.items():
            rows[name].append(bare_s + timed(cmd))
        rows["tee"].append(tee_encode(args, clip, out, check))
        print("  round", n + 1, {k: round(v[-1], 2) for k, v in rows.items()}, flush=True)
    base = statistics.median(rows["bare encode"])
    print(f"\n| {rounds} rounds, alternating | median (s) | against the bare encode |")
    print("|---|---|---|")
    for name, values in rows.items():
        ratios = [v / b for v, b in zip(values, rows["bare encode"], strict=True)]
        print(f"| {name} | {statistics.median(values):.2f} | {statistics.median(ratios):.3f} |")
    print(f"\nbare encode median {base:.2f} s")


def tee_encode(args: list[str], clip: Path, out: Path, check: list[str]) -> float:
    """Encode with the tee muxer feeding a decoder through a pipe; seconds until both end
    and the file's packets are counted.

    The tee muxer does not ask x264 for a global header, nor clear the MP4 tag of the
    copied AAC track, as the Matroska muxer alone does: both are set here by hand (the
    tag is AAC's; other audio codecs would each need theirs).
    """
    read, write = os.pipe()
    tee = f"[f=matroska]{out}|[f=matroska]pipe:{write}"
    start = time.perf_counter()
    decoder = subprocess.Popen(
        [*check[: check.index("-i") + 1], "pipe:0", *check[check.index("-i") + 2 :]],
        stdin=read,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(read)
    try:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip),
             *args[:-2], "-flags:v", "+global_header", "-tag:a", "0xff", "-f", "tee", tee],
            check=True, timeout=1800, pass_fds=(write,),
        )  # fmt: skip
    finally:
        os.close(write)
    if decoder.wait(timeout=600) != 0:
        raise SystemExit("the decoder at the end of the tee failed")
    subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", str(out)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def images(tmp: Path, count: int, rounds: int, uploads: int, workers: list[int]) -> None:
    """PNGs to WebP through the queue with 1 and 2 workers, and bare ffmpeg 1 and 2 at a time."""
    folder = tmp / "images"
    folder.mkdir()
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25",
        "-frames:v", str(count), folder / "img%03d.png",
    )  # fmt: skip
    files = sorted(folder.glob("*.png"))
    summary = []
    for threads in workers:
        name = (
            f"{len(files)} PNGs (640x480) to webp, {threads} worker(s), {uploads} upload(s) at once"
        )
        print(f"{name}, {rounds} rounds (ours first in each)", flush=True)
        ratios, ours, theirs = [], [], []
        with server(tmp / f"hk-images-{threads}", threads, {}) as (url, token):
            for n in range(rounds):
                own, children = server_cpu()
                total, uploaded, _ = through_queue(url, token, files, "webp", f"img-{n}", uploads)
                own_after, children_after = server_cpu()
                converted, _, bare_cpu = bare(
                    files, "webp", tmp / f"bare-webp-{threads}", threads, ConvertConfig()
                )
                ratios.append(total / converted)
                ours.append(total)
                theirs.append(converted)
                print(
                    f"  round {n + 1}: queue {total:.2f} s (uploads {uploaded:.2f} s; CPU of "
                    f"the server's Python {own_after - own:.2f} s, of its ffprobe and ffmpeg "
                    f"{children_after - children:.2f} s); bare ffmpeg {converted:.2f} s "
                    f"(CPU {bare_cpu:.2f} s); "
                    f"ratio {total / converted:.3f}",
                    flush=True,
                )
        summary.append((name, statistics.median(ours), statistics.median(theirs), ratios))
    print("\n| what | queue (s) | bare ffmpeg (s) | median ratio |\n|---|---|---|---|")
    for name, ours_s, theirs_s, ratios in summary:
        print(f"| {name} | {ours_s:.2f} | {theirs_s:.2f} | **{statistics.median(ratios):.3f}** |")
    if len(summary) == 2:
        (_, one, bare_one, _), (_, two, bare_two, _) = summary
        print(
            f"\nTwo workers against one: the queue is {one / two:.2f}x faster, "
            f"bare ffmpeg two at a time {bare_one / bare_two:.2f}x."
        )


def cut_patch(url: str, token: str, path: str, blob: Path, offset: int, cut: int) -> None:
    """A PATCH announcing the whole rest of ``blob`` that dies after the bytes up to ``cut``.

    The connection is reset, not closed (a network gone away), a moment after the bytes
    went out, so the server has read them.
    """
    where = urlsplit(url)
    assert where.hostname is not None
    assert where.port is not None
    size = blob.stat().st_size
    sock = socket.create_connection((where.hostname, where.port), timeout=60)
    try:
        sock.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
                f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
                "Content-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {size - offset}\r\n\r\n"
            ).encode()
        )
        with blob.open("rb") as fh:
            fh.seek(offset)
            left = cut - offset
            while left > 0 and (block := fh.read(min(1 << 20, left))):
                sock.sendall(block)
                left -= len(block)
        time.sleep(0.5)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def resume(tmp: Path, gib: float, cuts: int) -> None:
    """A real video of ``gib`` GiB uploaded through ``cuts`` connections cut at random
    points (one at 60 %), each resumed from where HEAD says; the item's SHA-512 must be
    the file's."""
    frame = 1920 * 1080 * 3 // 2  # raw 4:2:0 1080p: no encoding, so quick to make
    big = tmp / "big.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
        "-frames:v", str(math.ceil(gib * (1 << 30) / frame)),
        "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-f", "matroska", big,
    )  # fmt: skip
    size = big.stat().st_size
    digest = sha512_file(big)
    rng = random.Random(15)
    points = sorted({int(size * 0.6), *(rng.randrange(1, size) for _ in range(cuts - 1))})
    print(f"{size} bytes ({size / (1 << 30):.2f} GiB) cut at {len(points)} points", flush=True)
    with server(tmp / "hk-resume", 0, {}) as (url, token), ServerClient(url, token) as client:
        upload = client.create_upload(big.name, size, digest, "mkv-x264", "bench")
        path = f"/api/convert/uploads/{upload['upload_id']}"
        offset = 0
        for cut in points:
            if cut <= offset:
                continue
            cut_patch(url, token, path, big, offset, cut)
            head = client.http.head(f"/uploads/{upload['upload_id']}")
            head.raise_for_status()
            kept = int(head.headers["upload-offset"])
            if not offset <= kept <= cut:
                raise SystemExit(f"cut at {cut}: the server says {kept}, from {offset}")
            print(
                f"  cut at {cut} ({100 * cut / size:.1f} %): the server kept {kept} bytes "
                f"({cut - kept} lost); resuming from there",
                flush=True,
            )
            offset = kept
        item = client.send(upload["upload_id"], big, offset, size)
    if item["sha512_checksum"] != digest or item["file_size"] != size:
        raise SystemExit(f"the item's SHA-512 or size differs from the file's: {item}")
    print(f"  finished: item {item['item_id']}, {size} bytes, SHA-512 equal to the file's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="How many PNGs (default 100).")
    parser.add_argument("--seconds", type=float, default=30, help="Clip length (default 30).")
    parser.add_argument("--preset", default="medium", help="x264 preset (default medium).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (default 3).")
    parser.add_argument("--upload-mb", type=int, default=512, help="Upload size (default 512).")
    parser.add_argument("--resume-gib", type=float, default=2, help="Cut upload (default 2).")
    parser.add_argument("--cuts", type=int, default=6, help="Cuts in it (default 6).")
    parser.add_argument(
        "--uploads",
        type=int,
        default=ConvertConfig().upload_concurrency,
        help="The client's uploads at once ([convert] upload_concurrency; default: its default).",
    )
    parser.add_argument(
        "--workers",
        type=int,
        choices=(1, 2),
        action="append",
        help="Workers for the images (repeatable; default: 1, then 2).",
    )
    parser.add_argument(
        "--only",
        choices=("video", "images", "upload", "resume", "check"),
        action="append",
        help="One part (repeatable); default: video, images, upload.",
    )
    args = parser.parse_args()
    parts = args.only or ["video", "images", "upload"]
    for tool in ("ffmpeg", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: ffmpeg, nginx-light)")
    tmp = Path(tempfile.mkdtemp(prefix="hk-bench-convert-"))
    print(f"homekeep convert benchmark; work dir {tmp}; {os.cpu_count()} CPUs", flush=True)
    try:
        if "video" in parts:
            video(tmp, args.seconds, args.preset, args.rounds, args.uploads)
        if "images" in parts:
            images(tmp, args.images, args.rounds, args.uploads, args.workers or [1, 2])
        if "upload" in parts:
            upload(tmp, args.upload_mb, args.rounds)
        if "check" in parts:
            check_ideas(tmp, args.seconds, args.preset, args.rounds)
        if "resume" in parts:
            resume(tmp, args.resume_gib, args.cuts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
