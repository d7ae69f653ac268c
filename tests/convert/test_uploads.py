"""Uploads in flight together: one cut mid-body resumes where it stopped while the others
go through, and bad input sent alongside good is still refused with nothing left."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.convert import media
from tests.convert.conftest import cli_json, start
from tests.convert.relay import Relay

IDLE = {"HOMEKEEP_CONVERT_NUMBER_OF_CONVERSION_THREADS": "0"}  # no conversions: not the point


def test_uploads_stream_together_and_a_cut_one_resumes(tmp_path: Path) -> None:
    # Real video, raw so that it is large (about 7 MB each) and quick to make.
    clips = [media.raw_video(tmp_path / f"raw{n}.mkv", frames=60 + n) for n in range(4)]
    for hosted in start(tmp_path / "server", IDLE):
        port = int(hosted.url.rsplit(":", 1)[1])
        client = tmp_path / "client"
        three = {"HOMEKEEP_CONVERT_UPLOAD_CONCURRENCY": "3"}
        with Relay(port, bytes_per_second=4e6, cut_at=3 << 20) as relay:
            link = ("--server", relay.url, "--token", hosted.token)
            first = cli_json(client, "add", *clips, "--to", "mkv-x264", *link, env=three)
            assert relay.most_at_once >= 2, "the uploads went one after another"
            assert relay.cut is not None
            cut = [i for i in first if i["status"] == "outbox" and i["upload_id"]]
            assert len(cut) == 1, first
            assert any(i["status"] == "to_do" for i in first), first  # the others went on
            with hosted.client() as http:
                head = http.head(f"/api/convert/uploads/{cut[0]['upload_id']}")
            kept = int(head.headers["upload-offset"])
            assert 0 < kept < cut[0]["file_size"], head.headers
            assert hosted.files("uploads") == [f"{cut[0]['upload_id']}.part"]

            # The relay cuts only once: the cut upload resumes from what the server kept.
            after = cli_json(client, "status", *link, env=three)
        assert [i["status"] for i in after] == ["to_do"] * 4, after
        resumed = next(i for i in after if i["id"] == cut[0]["id"])
        assert resumed["item_id"] == cut[0]["upload_id"]  # the same upload, not a new one
        on_server = dict(hosted.rows("SELECT file_name, sha512 FROM items"))
        assert on_server == {c.name: hashlib.sha512(c.read_bytes()).hexdigest() for c in clips}
        assert hosted.files("uploads") == []


def test_an_upload_held_by_a_silent_request_waits_and_then_resumes(tmp_path: Path) -> None:
    clip = media.raw_video(tmp_path / "held.mkv", frames=60)
    for hosted in start(tmp_path / "server", IDLE):
        port = int(hosted.url.rsplit(":", 1)[1])
        client = tmp_path / "client"
        with Relay(port, bytes_per_second=4e6, cut_at=3 << 20, hang=True) as relay:
            link = ("--server", relay.url, "--token", hosted.token)
            [first] = cli_json(client, "add", clip, "--to", "mkv-x264", *link)
            assert first["status"] == "outbox", first
            assert first["upload_id"], first
            # The server still holds the upload (the cut request has not ended for it):
            # the client is told to come back, and the item stays in its outbox.
            [held] = cli_json(client, "status", *link)
            assert held["status"] == "outbox", held
            relay.let_go()
            [after] = cli_json(client, "status", *link)
        assert after["status"] == "to_do", after
        assert after["item_id"] == first["upload_id"]
        assert hosted.rows("SELECT sha512 FROM items") == [
            (hashlib.sha512(clip.read_bytes()).hexdigest(),)
        ]


def test_bad_input_sent_together_is_refused_with_nothing_left(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    for hosted in start(tmp_path / "server", IDLE):
        names = ("mp4", "text", "truncated", "faststart", "empty", "png")
        items = cli_json(
            tmp_path / "client",
            "add",
            *(clips[n] for n in names),
            "--to",
            "mkv-x264",
            "--server",
            hosted.url,
            "--token",
            hosted.token,
            env={"HOMEKEEP_CONVERT_UPLOAD_CONCURRENCY": "4"},
        )
        by_name = {Path(i["file_path"]).name: i for i in items}
        good = [by_name["clip.mp4"], by_name["fast.mp4"]]
        assert [i["status"] for i in good] == ["to_do", "to_do"]
        reasons = {
            "notes.mp4": "not a media file",
            "cut.mp4": "not a media file",
            "empty.mp4": "the file is empty",
            "still.png": "mkv-x264 takes video",
        }
        for name, reason in reasons.items():
            assert by_name[name]["status"] == "refused", by_name[name]
            assert reason in by_name[name]["errors"][0], by_name[name]
        assert hosted.files("uploads") == []
        assert hosted.files("inputs") == sorted(i["item_id"] for i in good)
        assert hosted.rows("SELECT COUNT(*) FROM items") == [(2,)]
