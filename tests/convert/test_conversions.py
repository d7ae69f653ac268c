"""Every conversion, for real: the outputs are what they claim, checked by ffprobe and Pillow."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.convert.conftest import Hosted


def streams(data: bytes, tmp: Path, suffix: str) -> list[dict[str, Any]]:
    path = tmp / f"out{suffix}"
    path.write_bytes(data)
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    found: list[dict[str, Any]] = json.loads(done.stdout)["streams"]
    return found


def converted(hosted: Hosted, clip: Path, conversion: str) -> tuple[dict[str, Any], bytes]:
    answer = hosted.upload(clip, conversion)
    assert answer.status_code == 201, answer.text
    item = hosted.wait(answer.json()["item_id"])
    assert item["status"] == "finished_successful", item
    with hosted.client() as http:
        return item, http.get(f"/api/convert/items/{item['item_id']}/output").content


@pytest.mark.parametrize(("conversion", "codec"), [("mkv-x264", "h264"), ("mkv-x265", "hevc")])
def test_video_to_mkv_keeps_audio_and_subtitles(
    hosted: Hosted, clips: dict[str, Path], tmp_path: Path, conversion: str, codec: str
) -> None:
    _, data = converted(hosted, clips["mp4"], conversion)
    found = streams(data, tmp_path, ".mkv")
    kinds = [(s["codec_type"], s["codec_name"]) for s in found]
    assert kinds == [("video", codec), ("audio", "aac"), ("subtitle", "subrip")]


def test_png_and_jpeg_to_webp(hosted: Hosted, clips: dict[str, Path]) -> None:
    for name in ("png", "jpeg"):
        _, data = converted(hosted, clips[name], "webp")
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "WEBP"
            assert image.size == (120, 90)


def test_animated_gif_to_animated_webp(hosted: Hosted, clips: dict[str, Path]) -> None:
    _, data = converted(hosted, clips["gif"], "webp")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP"
        assert getattr(image, "n_frames", 1) == 6
        assert image.size == (64, 48)


def test_flac_to_opus(hosted: Hosted, clips: dict[str, Path], tmp_path: Path) -> None:
    _, data = converted(hosted, clips["flac"], "opus")
    found = streams(data, tmp_path, ".opus")
    assert [s["codec_name"] for s in found] == ["opus"]
    assert abs(float(found[0]["duration"]) - 1.5) < 0.05
