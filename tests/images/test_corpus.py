"""The broken-image corpus through every upload path of a real server: 201 or a 4xx.

Each file goes up as base64 JSON, as multipart and as a raw body. All three must give the
same answer: 201 (then the image is served, has a thumbnail, and no location is left in
it for a viewer to find) or a 4xx in the one error shape that leaves no file, no temp file
and no row. The server must stay up and print no traceback.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import ExifTags, Image

from tests.images import corpus, makers, wild
from tests.images.conftest import FAST, Hosted, start

LIMITS = {
    **FAST,
    "HOMEKEEP_IMAGES_MAX_BYTES": str(wild.LARGEST),
    "HOMEKEEP_IMAGES_MAX_PIXELS": "4000000",
    "HOMEKEEP_IMAGES_MAX_TOTAL_PIXELS": "40000000",
    "HOMEKEEP_IMAGES_MAX_FRAMES": str(makers.MAX_FRAMES),
}
WORKERS = 3  # uploads at once: the server's two decode slots stay busy
AS_IS = {**LIMITS, "HOMEKEEP_IMAGES_STRIP_GPS": "false", "HOMEKEEP_IMAGES_APPLY_ORIENTATION": "0"}


class Watched:
    """A server, and everything it has printed on stderr so far (read as it comes, so a
    full pipe never blocks it)."""

    def __init__(self, hosted: Hosted) -> None:
        self.hosted = hosted
        self.printed: list[str] = []
        stream = hosted.server.process.stderr
        assert stream is not None
        self._reader = threading.Thread(target=self.printed.extend, args=(stream,), daemon=True)
        self._reader.start()

    def check_alive(self) -> None:
        assert self.hosted.server.process.poll() is None, "the server died"
        assert httpx.get(f"{self.hosted.server.url}/healthz", timeout=10).status_code == 200
        tracebacks = [line for line in self.printed if "Traceback" in line]
        assert not tracebacks, f"{len(tracebacks)} tracebacks; the first:\n" + "".join(
            self.printed[:60]
        )


def watched(tmp: Path, env: dict[str, str]) -> Iterator[Watched]:
    for hosted in start(tmp, env):
        yield Watched(hosted)


@pytest.fixture(scope="module")
def cleaning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    """A server that strips locations and turns images upright (the defaults)."""
    yield from watched(tmp_path_factory.mktemp("corpus"), LIMITS)


@pytest.fixture(scope="module")
def keeping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    """A server that stores the bytes as they came (strip_gps and apply_orientation off)."""
    yield from watched(tmp_path_factory.mktemp("corpus-as-is"), AS_IS)


@pytest.fixture(scope="module")
def pillow_images(request: pytest.FixtureRequest) -> list[corpus.Case]:
    folder = wild.fetch(request.config.cache.mkdir("homekeep-images-wild"))
    if isinstance(folder, str):
        pytest.skip(f"no images from the wild: {folder}")
    return wild.cases(folder)


def send(client: httpx.Client, how: str, case: corpus.Case) -> httpx.Response:
    """Upload one case in one of the three forms."""
    name = case.name.rsplit("/", 1)[-1]
    if how == "json":
        data = base64.b64encode(case.data).decode()
        return client.post(
            "/api/images", json={"file_name": name, "mime_type": case.mime, "data": data}
        )
    if how == "multipart":
        return client.post("/api/images", files={"file": (name, case.data, case.mime)})
    return client.post(
        "/api/images", content=case.data, headers={"Content-Type": case.mime, "X-File-Name": name}
    )


def locations(data: bytes) -> list[str]:
    """Where a viewer could still find a location: Pillow's reading of every frame, and XMP
    anywhere in the bytes."""
    found = []
    with Image.open(io.BytesIO(data)) as im:  # any error here fails the test: it was stored
        for frame in range(getattr(im, "n_frames", 1)):
            im.seek(frame)
            exif = im.getexif()
            if ExifTags.IFD.GPSInfo in exif or exif.get_ifd(ExifTags.IFD.GPSInfo):
                found.append(f"EXIF GPS in frame {frame}")
            if "Raw profile type exif" in im.info:
                found.append("an ImageMagick EXIF copy")
    for mark in (b"exif:GPS", "exif:GPS".encode("utf-16-le")):
        if mark in data:
            found.append(f"XMP {mark!r}")
    return found


def judge(client: httpx.Client, case: corpus.Case, forms: list[str], *, cleaned: bool) -> list[str]:
    """Upload ``case`` in each form; return what went wrong, if anything."""
    problems: list[str] = []
    verdicts, stored = set(), set()
    for how in forms:
        response = send(client, how, case)
        where = f"{case.name} ({how}, {response.status_code})"
        if response.status_code >= 500 or response.status_code in (200, 202):
            problems.append(f"{where}: {response.text[:200]}")
            continue
        if response.status_code != 201:
            body = response.json()
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            shaped = set(body) == {"error"} and set(body["error"]) == {"code", "message"}
            if not shaped or not body["error"]["message"]:
                problems.append(f"{where}: not the error shape: {response.text[:200]}")
            verdicts.add(code)
            continue
        verdicts.add("stored")
        body = response.json()
        if body["sha256"] not in stored:  # the same bytes stored again need no second look
            problems += [f"{where}: {p}" for p in _check_stored(client, case, body, cleaned)]
        stored.add(body["sha256"])
        gone = client.delete(f"/api/images/{body['id']}")
        if gone.status_code != 200:
            problems.append(f"{where}: delete answers {gone.status_code}")
    if len(stored) > 1:
        problems.append(f"{case.name}: the forms stored different bytes")
    if len(verdicts) > 1:
        problems.append(f"{case.name}: the forms disagree: {sorted(map(str, verdicts))}")
    if case.expect and verdicts and verdicts != {case.expect}:
        problems.append(f"{case.name}: expected {case.expect}, got {sorted(map(str, verdicts))}")
    return problems


def _check_stored(
    client: httpx.Client, case: corpus.Case, body: dict[str, str], cleaned: bool
) -> list[str]:
    problems = []
    served = client.get(body["url"])
    if served.status_code != 200:
        problems.append(f"the link answers {served.status_code}")
    elif not cleaned and served.content != case.data:
        problems.append("stored bytes differ though nothing was to be cleaned")
    elif cleaned and (left := locations(served.content)):
        problems.append(f"a location is left: {left}")
    thumbnail = client.get(body["thumbnail_url"])
    if thumbnail.status_code != 200:
        problems.append(f"the thumbnail answers {thumbnail.status_code}: {thumbnail.text[:200]}")
    return problems


def run(watch: Watched, cases: list[corpus.Case], forms: list[str], *, cleaned: bool) -> None:
    """Send every case from a few threads at once, then look for anything left behind.

    Every accepted image is deleted once checked, so whatever remains at the end (a file,
    a temp file, a thumbnail, a row) was left by a refusal.
    """
    hosted = watch.hosted
    mine = threading.local()  # one client per thread: each keeps its own connections
    clients: list[httpx.Client] = []

    def one(case: corpus.Case) -> list[str]:
        if not hasattr(mine, "client"):
            mine.client = hosted.server.client(hosted.token)
            clients.append(mine.client)
        return judge(mine.client, case, forms, cleaned=cleaned)

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            problems = [problem for found in pool.map(one, cases) for problem in found]
    finally:
        for client in clients:
            client.close()
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    watch.check_alive()
    thumbs = hosted.data_dir / "images" / "thumbs"
    left = sorted(p.name for p in thumbs.iterdir()) if thumbs.exists() else []
    assert hosted.state() == ([], []), "refusals left files or rows behind"
    assert left == [], "thumbnails outlived their images"


ALL_FORMS = ["json", "multipart", "raw"]


def test_made_corpus_through_every_upload_path(cleaning: Watched) -> None:
    run(cleaning, corpus.generated(), ALL_FORMS, cleaned=True)


# The first to run may fetch Pillow's sdist (tens of MB) on a cold cache: minutes on a slow link.
@pytest.mark.timeout(900)
def test_pillow_test_images_through_every_upload_path(
    cleaning: Watched, pillow_images: list[corpus.Case]
) -> None:
    run(cleaning, pillow_images, ALL_FORMS, cleaned=True)


def test_made_corpus_stored_as_it_came(keeping: Watched) -> None:
    """With nothing to clean, an accepted file is stored byte for byte and still previews."""
    run(keeping, corpus.generated(), ["raw"], cleaned=False)


@pytest.mark.timeout(900)
def test_pillow_test_images_stored_as_they_came(
    keeping: Watched, pillow_images: list[corpus.Case]
) -> None:
    run(keeping, pillow_images, ["raw"], cleaned=False)
