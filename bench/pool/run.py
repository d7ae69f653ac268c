"""Benchmark pool: allocations, 1,000 clients, server start, idle memory, relay rate.

Run: python bench/pool/run.py [--allocations 2000] [--clients 1000] [--messages 200000]

Each figure sits beside a reference measured in the same run on the same machine, since
these machines are shared and noisy: allocations against the dispatcher's own /healthz
(the HTTP floor), server start and idle memory against a bare asyncio echo server
started as a fresh interpreter, relayed messages against that echo server's round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from homekeep.pool.client import Dispatch, RoomClient

HOMEKEEP = [sys.executable, "-m", "homekeep"]
TEXT = "move e2e4 " * 4  # a message of 40 characters
WINDOW = 2000  # messages in flight at once, for the relay and the echo alike

ECHO_SERVER = """
import asyncio, sys
async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line)
    writer.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0, limit=1 << 16)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def env(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("HOMEKEEP_")}
    keep["NO_PROXY"] = "*"
    keep.update(extra)
    return keep


@contextmanager
def dispatcher(workdir: Path, **config: object) -> Iterator[tuple[str, str, int]]:
    """`homekeep pool serve` with ``[pool]`` keys; yields its URL, a token and its pid."""
    data = workdir / f"data-{time.monotonic_ns()}"
    token = subprocess.run(
        [*HOMEKEEP, "--data-dir", str(data), "token", "create", "bench", "--scope", "pool"],
        capture_output=True,
        text=True,
        check=True,
        env=env({}),
    ).stdout.strip()
    keys = {f"HOMEKEEP_POOL_{k.upper()}": str(v) for k, v in config.items()}
    proc = subprocess.Popen(
        [*HOMEKEEP, "--data-dir", str(data), "pool", "serve", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(keys),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if " at " not in first:
        raise SystemExit(f"the dispatcher did not start: {first}")
    url = first.split(" at ", 1)[1].split("/ ", 1)[0]
    try:
        yield url, token, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@contextmanager
def echo_server() -> Iterator[tuple[int, int, float]]:
    """A bare asyncio echo server in a fresh interpreter: its port, pid and start time."""
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    started = time.perf_counter() - began
    try:
        yield port, proc.pid, started
    finally:
        proc.kill()
        proc.wait(timeout=10)


def status(url: str, token: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{url}/api/pool/servers", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def timed_requests(
    url: str, token: str, method: str, path: str, count: int, concurrency: int
) -> tuple[float, list[float]]:
    """``count`` requests, ``concurrency`` at a time: wall seconds and each latency."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as http:
        todo = iter(range(count))

        async def worker() -> None:
            for _ in todo:
                began = time.perf_counter()
                answer = await http.request(method, path, json={} if method == "POST" else None)
                answer.raise_for_status()
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - began, latencies


def bench_allocations(workdir: Path, count: int, concurrency: int) -> dict[str, float]:
    seats = count + 200
    with dispatcher(
        workdir, max_clients=seats // 2 + 1, max_servers=2, min_idle=2, ticket_ttl_seconds=600
    ) as (url, token, _):
        deadline = time.monotonic() + 30
        while status(url, token)["pool"]["ready"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        asyncio.run(timed_requests(url, token, "POST", "/api/pool/allocate", 100, concurrency))
        wall, latencies = asyncio.run(
            timed_requests(url, token, "POST", "/api/pool/allocate", count, concurrency)
        )
        floor_wall, floor = asyncio.run(
            timed_requests(url, token, "GET", "/healthz", count, concurrency)
        )
        bare_wall, bare = asyncio.run(
            timed_requests(url, "", "GET", "/healthz", count, concurrency)
        )
    return {
        "allocations_per_second": count / wall,
        "allocation_p50_ms": statistics.median(latencies) * 1000,
        "allocation_p99_ms": p99(latencies) * 1000,
        "healthz_per_second": count / floor_wall,
        "healthz_p99_ms": p99(floor) * 1000,
        "anonymous_healthz_per_second": count / bare_wall,
        "anonymous_healthz_p99_ms": p99(bare) * 1000,
    }


async def many_clients(url: str, token: str, count: int) -> dict[str, float]:
    dispatch = Dispatch(url, token)
    clients = [RoomClient(dispatch, f"p{i}") for i in range(count)]
    began = time.perf_counter()
    await asyncio.gather(*(client.join(timeout=120) for client in clients))
    joined = time.perf_counter() - began
    by_server: dict[str, list[RoomClient]] = {}
    for client in clients:
        by_server.setdefault(str(client.welcome["server"]), []).append(client)
    # one message in every room: each reaches every other client of its server
    began = time.perf_counter()
    for members in by_server.values():
        await members[0].send("hello, room")
    await asyncio.gather(
        *(c.wait_for("message", 60) for members in by_server.values() for c in members[1:])
    )
    broadcast = time.perf_counter() - began
    await asyncio.sleep(1)  # let the dispatcher see every join
    shown = status(url, token)
    await asyncio.gather(*(client.close() for client in clients))
    await dispatch.aclose()
    return {
        "clients": count,
        "servers": len(by_server),
        "connected_per_dispatcher": shown["pool"]["clients"],
        "join_seconds": joined,
        "broadcast_seconds": broadcast,
        "server_rss_mib": statistics.mean(
            s["memory_rss_bytes"] for s in shown["servers"] if s["client_count"]
        )
        / 2**20,
    }


def bench_clients(workdir: Path, count: int) -> dict[str, float]:
    with dispatcher(workdir, max_clients=250, max_servers=8, min_idle=1) as (url, token, _):
        return asyncio.run(many_clients(url, token, count))


def bench_servers(workdir: Path, servers: int) -> dict[str, float]:
    """Start ``servers`` servers, one after another; their start times and idle memory."""
    with dispatcher(workdir, max_clients=1, max_servers=servers, min_idle=0) as (url, token, _):

        async def fill() -> list[RoomClient]:
            dispatch = Dispatch(url, token)
            clients = []
            for i in range(servers):  # one client a server: each join starts the next
                client = RoomClient(dispatch, f"s{i}")
                await client.join()
                clients.append(client)
            return clients

        async def run() -> dict[str, Any]:
            clients = await fill()
            shown = status(url, token)
            for client in clients:
                await client.close()
            await clients[0].dispatch.aclose()
            return shown

        shown = asyncio.run(run())
        starts = sorted(
            (int(s["id"][1:]), s["start_seconds"]) for s in shown["servers"] if s["start_seconds"]
        )
        time.sleep(1)
        idle = [psutil.Process(s["pid"]).memory_full_info() for s in shown["servers"] if s["pid"]]
    first, rest = starts[0][1], [s for _, s in starts[1:]]
    return {
        "first_start_ms": first * 1000,
        "start_median_ms": statistics.median(rest) * 1000,
        "start_max_ms": max(rest) * 1000,
        "idle_uss_mib": statistics.mean(m.uss for m in idle) / 2**20,
        "idle_pss_mib": statistics.mean(m.pss for m in idle) / 2**20,
        "idle_rss_mib": statistics.mean(m.rss for m in idle) / 2**20,
    }


def bench_echo_process() -> dict[str, float]:
    starts, memory = [], []
    for _ in range(5):
        with echo_server() as (_, pid, started):
            starts.append(started)
            time.sleep(0.3)
            memory.append(psutil.Process(pid).memory_full_info())
    return {
        "start_median_ms": statistics.median(starts) * 1000,
        "idle_uss_mib": statistics.mean(m.uss for m in memory) / 2**20,
        "idle_rss_mib": statistics.mean(m.rss for m in memory) / 2**20,
    }


async def pump(
    writer: asyncio.StreamWriter, readers: list[asyncio.StreamReader], count: int, line: bytes
) -> float:
    """Send ``count`` lines; each reader must get them all. Seconds from first to last."""
    got = [0] * len(readers)

    async def read(index: int, reader: asyncio.StreamReader) -> None:
        while got[index] < count:
            data = await reader.read(1 << 16)
            if not data:
                raise SystemExit("a connection closed during the relay run")
            got[index] += data.count(b"\n")

    began = time.perf_counter()
    tasks = [asyncio.create_task(read(i, r)) for i, r in enumerate(readers)]
    sent = 0
    while sent < count:
        while sent - min(got) > WINDOW:
            await asyncio.sleep(0)
        batch = min(500, count - sent)
        writer.write(line * batch)
        sent += batch
        await writer.drain()
    await asyncio.gather(*tasks)
    return time.perf_counter() - began


async def relay_rate(url: str, token: str, count: int, receivers: int) -> float:
    """Messages per second one sender gets through a room to ``receivers`` others."""
    dispatch = Dispatch(url, token)
    seats = [await dispatch.allocate(f"r{i}") for i in range(receivers + 1)]
    await dispatch.aclose()
    streams = []
    for seat in seats:
        reader, writer = await asyncio.open_connection(seat.host, seat.port, limit=1 << 20)
        writer.write(json.dumps({"type": "hello", "ticket": seat.ticket}).encode() + b"\n")
        await reader.readline()
        streams.append((reader, writer))
    await asyncio.sleep(0.5)
    for reader, _ in streams:  # the joined notices
        while True:
            try:
                await asyncio.wait_for(reader.readline(), 0.2)
            except TimeoutError:
                break
    line = json.dumps({"type": "message", "text": TEXT}).encode() + b"\n"
    seconds = await pump(streams[0][1], [r for r, _ in streams[1:]], count, line)
    for _, writer in streams:
        writer.close()
    return count / seconds


async def echo_rate(port: int, count: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    line = json.dumps({"type": "message", "text": TEXT}).encode() + b"\n"
    seconds = await pump(writer, [reader], count, line)
    writer.close()
    return count / seconds


def bench_relay(workdir: Path, count: int) -> dict[str, float]:
    with dispatcher(
        workdir, max_clients=20, max_servers=1, min_idle=1, ping_interval_seconds=600
    ) as (url, token, _):
        deadline = time.monotonic() + 30
        while status(url, token)["pool"]["ready"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        one = asyncio.run(relay_rate(url, token, count, 1))
        ten = asyncio.run(relay_rate(url, token, count // 5, 9))
    with echo_server() as (port, _, _):
        echo = asyncio.run(echo_rate(port, count))
    return {"relay_1to1_per_second": one, "relay_1to9_per_second": ten, "echo_per_second": echo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=8)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON too.")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        workdir = Path(tmp)
        alloc = bench_allocations(workdir, args.allocations, args.concurrency)
        crowd = bench_clients(workdir, args.clients)
        servers = bench_servers(workdir, args.servers)
        echo_proc = bench_echo_process()
        relay = bench_relay(workdir, args.messages)
    rows = [
        (
            f"allocations/s ({args.concurrency} at once)",
            f"{alloc['allocations_per_second']:.0f}",
            f"{alloc['healthz_per_second']:.0f} GET /healthz/s",
            f"{alloc['allocations_per_second'] / alloc['healthz_per_second']:.2f}",
        ),
        (
            "",
            "",
            f"{alloc['anonymous_healthz_per_second']:.0f} GET /healthz/s without a token",
            f"{alloc['allocations_per_second'] / alloc['anonymous_healthz_per_second']:.2f}",
        ),
        (
            "allocation p99 (p50)",
            f"{alloc['allocation_p99_ms']:.1f} ms ({alloc['allocation_p50_ms']:.1f})",
            f"{alloc['healthz_p99_ms']:.1f} ms",
            f"{alloc['allocation_p99_ms'] / alloc['healthz_p99_ms']:.2f}",
        ),
        (
            f"{crowd['clients']:.0f} clients joined (allocate+connect+hello)",
            f"{crowd['join_seconds']:.2f} s on {crowd['servers']:.0f} servers",
            f"dispatcher counted {crowd['connected_per_dispatcher']:.0f}",
            "",
        ),
        (
            "one message to every room's others",
            f"{crowd['broadcast_seconds'] * 1000:.0f} ms",
            f"{crowd['server_rss_mib']:.1f} MiB RSS per 250-client server",
            "",
        ),
        (
            "server start (forkserver warm)",
            f"{servers['start_median_ms']:.1f} ms (max {servers['start_max_ms']:.1f})",
            f"{echo_proc['start_median_ms']:.1f} ms fresh python echo",
            f"{servers['start_median_ms'] / echo_proc['start_median_ms']:.2f}",
        ),
        ("first server (starts the forkserver)", f"{servers['first_start_ms']:.0f} ms", "", ""),
        (
            "idle server memory, USS (PSS, RSS)",
            f"{servers['idle_uss_mib']:.1f} MiB ({servers['idle_pss_mib']:.1f}, "
            f"{servers['idle_rss_mib']:.1f})",
            f"{echo_proc['idle_uss_mib']:.1f} MiB USS echo ({echo_proc['idle_rss_mib']:.1f} RSS)",
            f"{servers['idle_uss_mib'] / echo_proc['idle_uss_mib']:.2f}",
        ),
        (
            "messages relayed/s, 1 sender to 1",
            f"{relay['relay_1to1_per_second']:.0f}",
            f"{relay['echo_per_second']:.0f} echoed/s",
            f"{relay['relay_1to1_per_second'] / relay['echo_per_second']:.2f}",
        ),
        (
            "messages relayed/s, 1 sender to 9 (deliveries: x9)",
            f"{relay['relay_1to9_per_second']:.0f}",
            f"{relay['echo_per_second']:.0f} echoed/s",
            f"{relay['relay_1to9_per_second'] / relay['echo_per_second']:.2f}",
        ),
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    header = ("measure", "pool", "reference (same run)", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    if args.json:
        print(
            json.dumps(
                {
                    "allocations": alloc,
                    "clients": crowd,
                    "servers": servers,
                    "echo_process": echo_proc,
                    "relay": relay,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
