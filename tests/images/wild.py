"""Broken images from the wild: the odd and corrupt test files in Pillow's own sdist.

Pillow's source distribution carries about a thousand test images gathered from bug
reports and fuzzers (cut EXIF, bad MPO indexes, junk in JPEG headers, bombs...). The sdist
of the installed Pillow is fetched once with pip into pytest's cache folder and only its
images are kept; nothing of it is committed.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import PIL

from homekeep.images.formats import sniff
from tests.images.corpus import Case

EXTENSIONS = {".png", ".apng", ".jpg", ".jpeg", ".mpo", ".gif", ".webp", ".avif"}
LARGEST = 12_000_000  # files above the corpus server's max_bytes would only test the 413


def fetch(cache: Path) -> Path | str:
    """Return the folder of Pillow's test images, fetching them once; or why it cannot."""
    # Parallel test workers share the cache: one fetches, the others wait and find it done.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_locked(cache)


def _fetch_locked(cache: Path) -> Path | str:
    folder = cache / f"pillow-{PIL.__version__}-images"
    done = folder / ".complete"
    if done.exists():
        return folder
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        try:
            only_source = ["--no-deps", "--no-binary", ":all:", "--quiet", "--dest", tmp]
            got = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    f"pillow=={PIL.__version__}",
                    *only_source,
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "pip download of Pillow's sdist took more than 10 minutes"
        archives = list(Path(tmp).glob("*.tar.gz"))
        if got.returncode != 0 or not archives:
            last = (got.stderr.strip().splitlines() or ["no error output"])[-1]
            return f"pip download of Pillow's sdist failed (offline?): {last}"
        staging = Path(tmp) / "images"
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if len(parts) < 4 or parts[1:3] != ("Tests", "images") or not member.isfile():
                    continue
                if PurePosixPath(member.name).suffix.lower() not in EXTENSIONS:
                    continue
                if member.size > LARGEST:
                    continue
                source = tar.extractfile(member)
                assert source is not None
                target = staging.joinpath(*parts[3:])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())  # no path of the archive is trusted
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    done.touch()
    return folder


def cases(folder: Path) -> list[Case]:
    """One case per image file, declared as its magic bytes say, as `homekeep images upload`
    does (else as application/octet-stream: no type)."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".complete"):
        data = path.read_bytes()
        mime = sniff(data) or "application/octet-stream"
        found.append(Case(f"pillow/{path.relative_to(folder)}", data, mime))
    return found
