"""Run inside a private network namespace: ask a fresh server for its set-up page from a
peer that is not on loopback, and print what it answered as JSON.

The namespace (``unshare -rn``) has only its own loopback interface, to which this script
adds the documentation address 192.0.2.10; a client bound to it is a real non-loopback
peer, and nothing leaves the namespace. Usage: ``python -m tests.core.netns_probe DIR``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import running

OUTSIDE = "192.0.2.10"


def main(work: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{OUTSIDE}/32", "dev", "lo"], check=True)
    answers: dict[str, object] = {}
    for label, trusted in (("untrusted", []), ("trusted", [OUTSIDE])):
        folder = work / label
        folder.mkdir()
        config = folder / "config.toml"
        config.write_text(
            f"[server]\ntrusted_hosts = ['{OUTSIDE}']\n[web]\ntrusted_proxies = {trusted!r}\n"
        )
        args: list[str | Path] = ["--config", config, "serve", "--host", "0.0.0.0", "--port", "0"]
        with running(args, data_dir=folder / "data") as server:
            port = server.url.rsplit(":", 1)[1]
            outside = httpx.Client(
                base_url=f"http://{OUTSIDE}:{port}",
                transport=httpx.HTTPTransport(local_address=OUTSIDE),
            )
            inside = httpx.Client(base_url=f"http://127.0.0.1:{port}")
            form = {"name": "eve", "password": "eve password", "password2": "eve password"}
            answers[label] = {
                "plain": outside.get("/setup").status_code,
                "x-forwarded-for": outside.get(
                    "/setup", headers={"X-Forwarded-For": "127.0.0.1"}
                ).status_code,
                "forwarded": outside.get(
                    "/setup", headers={"Forwarded": "for=127.0.0.1"}
                ).status_code,
                "landing": outside.get("/").headers.get("location"),
                "post": outside.post(
                    "/setup", data=form, headers={"X-Forwarded-For": "127.0.0.1"}
                ).status_code,
                "loopback": inside.get("/setup").status_code,
                "users": httpx.get(f"http://127.0.0.1:{port}/login").text.count(
                    "No user exists yet"
                ),
            }
    sys.stdout.write(json.dumps(answers))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
