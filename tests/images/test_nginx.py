"""The documented nginx front with X-Accel-Redirect, with a real nginx on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.images import samples
from tests.images.conftest import FAST, start
from tests.support import free_port, run_cli

CONF = """
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 30m;
        location /_images/ {{
            internal;
            alias {files}/;
            add_header X-Content-Type-Options nosniff always;
            add_header Content-Security-Policy "default-src 'none'; sandbox" always;
        }}
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_x_accel_redirect_front(tmp_path: Path) -> None:
    env = {**FAST, "HOMEKEEP_IMAGES_ACCEL_REDIRECT": "/_images/"}
    for hosted in start(tmp_path, env):
        data = samples.png(seed=500)
        direct = httpx.post(
            f"{hosted.server.url}/api/images",
            content=data,
            headers={"Content-Type": "image/png", "Authorization": f"Bearer {hosted.token}"},
        ).json()
        alone = httpx.get(direct["url"])
        assert alone.headers["x-accel-redirect"] == f"/_images/{direct['id']}.png"
        assert alone.content == b""
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            CONF.format(tmp=tmp_path, port=port, files=hosted.files, upstream=hosted.server.url)
        )
        proc = subprocess.Popen(
            ["nginx", "-e", str(tmp_path / "error.log"), "-c", str(conf), "-g", "daemon off;"],
            stderr=subprocess.PIPE,
        )
        try:
            front = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    httpx.get(front + "/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            served = httpx.get(f"{front}/i/{direct['id']}.png")
            assert served.status_code == 200
            assert served.content == data
            assert served.headers["content-type"] == "image/png"
            assert served.headers["x-content-type-options"] == "nosniff"
            assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
            assert "x-accel-redirect" not in served.headers
            assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
            etag = served.headers["etag"]  # nginx's own (mtime-size) once it sends the file
            again = httpx.get(f"{front}/i/{direct['id']}.png", headers={"If-None-Match": etag})
            assert again.status_code == 304
            assert served.headers["content-length"] == str(len(data))
            assert httpx.get(f"{front}/i/nosuch99.png").status_code == 404
            assert httpx.get(f"{front}/_images/{direct['id']}.png").status_code == 404
            upload = httpx.post(
                f"{front}/api/images",
                files={"file": ("b.png", samples.png(seed=501), "image/png")},
                headers={"Authorization": f"Bearer {hosted.token}"},
            )
            assert upload.status_code == 201
            assert httpx.post(upload.json()["delete_url"]).status_code == 200
            assert httpx.get(f"{front}/i/{upload.json()['id']}.png").status_code == 404
            gone = run_cli("images", "delete", direct["id"], data_dir=hosted.data_dir)
            assert gone.returncode == 0, gone.stderr
            for tag in (etag, f'"{direct["sha256"]}"'):  # nginx's ETag, and homekeep's
                after = httpx.get(f"{front}/i/{direct['id']}.png", headers={"If-None-Match": tag})
                assert after.status_code == 404  # a delete by another process, at once
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            assert proc.stderr is not None
            proc.stderr.close()
