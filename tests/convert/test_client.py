"""The client: its outbox while no server answers, servers chosen by media type and load,
downloads checked by SHA-512, and `convert watch` on a folder."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.convert.conftest import FAST, cli_json, start
from tests.support import HOMEKEEP, clean_env, create_token, free_port, run_cli, running


def test_items_wait_offline_and_go_out_when_the_server_is_back(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_dir = tmp_path / "server"
    token = create_token(server_dir, "laptop", "convert")
    client = tmp_path / "client"
    link = ("--server", url, "--token", token)
    added = cli_json(client, "add", clips["mp4"], clips["png"], "--to", "mkv-x264", *link)
    assert [i["status"] for i in added] == ["outbox", "outbox"]
    still = cli_json(client, "status", *link)
    assert [i["status"] for i in still] == ["outbox", "outbox"]
    with running(["serve", "--port", str(port)], data_dir=server_dir, env=FAST):
        deadline = time.monotonic() + 60
        items = cli_json(client, "status", *link)
        while {i["status"] for i in items} - {"finished_successful", "refused"}:
            assert time.monotonic() < deadline, items
            time.sleep(0.3)
            items = cli_json(client, "status", *link)
        video, picture = items
        assert video["status"] == "finished_successful"
        assert video["server_id"] == url
        assert picture["status"] == "refused"  # a PNG is no video: the server probed it
        assert "mkv-x264 takes video" in picture["errors"][0]
        # A download cut half-way resumes from its .part with Range: a damaged .part is
        # kept and appended to, so the SHA-512 catches it, drops it, and says so; a good
        # half is completed.
        whole = httpx.get(
            f"{url}/api/convert/items/{video['item_id']}/output",
            headers={"Authorization": f"Bearer {token}"},
        ).content
        out = tmp_path / "out"
        out.mkdir()
        part = out / "clip.mkv.part"
        part.write_bytes(b"\0" * (len(whole) // 2))
        damaged = run_cli("convert", "fetch", "--out", out, *link, data_dir=client)
        assert "arrived damaged" in damaged.stderr
        assert not part.exists()
        assert not (out / "clip.mkv").exists()
        part.write_bytes(whole[: len(whole) // 2])
        fetched = cli_json(client, "fetch", "--out", out, *link)
        assert [Path(f["output_path"]).name for f in fetched] == ["clip.mkv"]
        data = Path(fetched[0]["output_path"]).read_bytes()
        assert data == whole
        assert hashlib.sha512(data).hexdigest() == fetched[0]["output_sha512"]
        again = run_cli("convert", "fetch", *link, data_dir=client)
        assert again.returncode == 0
        assert "nothing to fetch" in again.stderr


def test_items_go_to_a_server_of_their_media_type_spread_by_load(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    idle = {"HOMEKEEP_CONVERT_NUMBER_OF_CONVERSION_THREADS": "0"}
    pictures = {**idle, "HOMEKEEP_CONVERT_MEDIA_TYPES": '["image"]'}
    for only_images in start(tmp_path / "a", pictures):
        for everything in start(tmp_path / "b", idle):
            config = tmp_path / "client.toml"
            config.write_text(
                "[convert]\nclient_id = 'desk'\n"
                + "".join(
                    "[[convert.servers]]\nhost = '127.0.0.1'\n"
                    f"port = {h.server.url.rsplit(':', 1)[1]}\n"
                    f"media_types = {types}\ntoken = '{h.token}'\n"
                    for h, types in (
                        (only_images, '["image"]'),
                        (everything, '["audio", "image", "video"]'),
                    )
                )
            )
            client = tmp_path / "client"
            base = ("--config", str(config))
            sound = run_cli(*base, "convert", "add", clips["flac"], "--to", "opus", data_dir=client)
            assert sound.returncode == 0, sound.stderr
            pics = [shutil.copy(clips["png"], tmp_path / f"p{n}.png") for n in range(3)]
            added = run_cli(*base, "convert", "add", *pics, "--to", "webp", data_dir=client)
            assert added.returncode == 0, added.stderr
            listed = run_cli(*base, "convert", "status", "--no-refresh", "--json", data_dir=client)
            items = json.loads(listed.stdout)
            where = [i["server_id"] for i in items]
            assert where == [everything.url, only_images.url, only_images.url, everything.url]
            assert {i["status"] for i in items} == {"to_do"}
            with everything.client() as http:
                mine = http.get("/api/convert/items", params={"client_id": "desk"}).json()
                assert len(mine["items"]) == 2


def test_watch_sends_new_media_and_fetches_the_results(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    for hosted in start(tmp_path / "server"):
        folder = tmp_path / "inbox"
        folder.mkdir()
        done = tmp_path / "done"
        env = {
            "HOMEKEEP_CONVERT_POLL_SECONDS": "0.5",
            "HOMEKEEP_CONVERT_FETCH_DIR": str(done),
        }
        proc = subprocess.Popen(
            [
                *HOMEKEEP,
                "--data-dir",
                str(tmp_path / "client"),
                "convert",
                "watch",
                str(folder),
                "--server",
                hosted.url,
                "--token",
                hosted.token,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(env),
        )
        try:
            assert proc.stdout is not None
            assert "watching" in proc.stdout.readline()
            shutil.copy(clips["gif"], folder / "party.gif")
            (folder / "readme.txt").write_text("not media")
            deadline = time.monotonic() + 60
            while not (done / "party.webp").exists():
                assert time.monotonic() < deadline, "the watched GIF never came back as WebP"
                assert proc.poll() is None
                time.sleep(0.2)
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        assert (done / "party.webp").read_bytes()[8:12] == b"WEBP"
        assert [r[0] for r in hosted.rows("SELECT file_name FROM items")] == ["party.gif"]
