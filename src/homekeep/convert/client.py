"""The client's side of the API: resumable uploads, item status, downloads that resume."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from homekeep import __version__
from homekeep.core.errors import Unavailable, error_from_response

READ_SIZE = 1 << 20


class Offline(Unavailable):
    """The server did not answer (down, unreachable, or the connection broke)."""


# An upload the server cannot take on now, but will: a cut request it has not noticed
# yet still holds it, or the client's offset is behind. Sent again later, never refused.
_UPLOAD_NOT_NOW = ("upload_busy", "offset_mismatch")


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def sha512_file(path: Path) -> str:
    """The SHA-512 of a file, read in 1 MiB blocks."""
    hasher = hashlib.sha512()
    with path.open("rb") as fh:
        while block := fh.read(READ_SIZE):
            hasher.update(block)
    return hasher.hexdigest()


class ServerClient:
    """One server's convert API, with a token of scope convert."""

    def __init__(
        self, url: str, token: str, *, chunk_bytes: int = 64 << 20, timeout: float = 60
    ) -> None:
        self.url = url.rstrip("/")
        self.chunk_bytes = chunk_bytes
        headers = {"User-Agent": f"homekeep-convert/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=f"{self.url}/api/convert",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Offline(f"{self.url} does not answer: {exc}") from exc
        if response.status_code >= 400:
            error = error_from_response(response, f"{self.url}: {what}")
            if response.status_code == 409 and _error_code(response) in _UPLOAD_NOT_NOW:
                raise Offline(error.message)
            raise error
        return response

    def status(self) -> dict[str, Any]:
        """The server's offer and load."""
        data: dict[str, Any] = self._call("GET", "/server", "status", timeout=10).json()
        return data

    def create_upload(
        self, file_name: str, size: int, sha512: str, conversion: str, client_id: str
    ) -> dict[str, Any]:
        body = {
            "file_name": file_name,
            "file_size": size,
            "sha512_checksum": sha512,
            "conversion": conversion,
            "client_id": client_id,
        }
        data: dict[str, Any] = self._call("POST", "/uploads", "upload", json=body).json()
        return data

    def upload_state(self, upload_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/uploads/{upload_id}", "upload").json()
        return data

    def send(
        self,
        upload_id: str,
        path: Path,
        offset: int,
        size: int,
        on_bytes: Callable[[int], None] = lambda _: None,
    ) -> dict[str, Any]:
        """Send ``path`` from ``offset`` in chunks; return the item once the last byte is in."""
        while True:
            length = min(self.chunk_bytes, size - offset)

            def body(start: int = offset, count: int = length) -> Iterator[bytes]:
                with path.open("rb") as fh:
                    fh.seek(start)
                    left = count
                    while left > 0 and (block := fh.read(min(READ_SIZE, left))):
                        left -= len(block)
                        on_bytes(len(block))
                        yield block

            response = self._call(
                "PATCH",
                f"/uploads/{upload_id}",
                "upload",
                content=body(),
                headers={
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(length),
                },
                timeout=httpx.Timeout(600, connect=10),
            )
            if response.status_code == 201:
                item: dict[str, Any] = response.json()
                return item
            offset = int(response.headers["upload-offset"])
            if offset >= size:
                raise Offline(f"{self.url}: the upload is complete but no item came back")

    def items(self, client_id: str) -> list[dict[str, Any]]:
        """Every item of one client (the server lists at most 1000 a page)."""
        found: list[dict[str, Any]] = []
        for page in range(1000):
            params: dict[str, Any] = {"client_id": client_id, "limit": 1000, "offset": page * 1000}
            batch = self._call("GET", "/items", "status", params=params).json()["items"]
            found.extend(batch)
            if len(batch) < 1000:
                break
        return found

    def item(self, item_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/items/{item_id}", "status").json()
        return data

    def act(self, item_id: str, action: str) -> dict[str, Any]:
        """cancel, retry (POST) or delete (DELETE) one item."""
        if action == "delete":
            data: dict[str, Any] = self._call("DELETE", f"/items/{item_id}", action).json()
        else:
            data = self._call("POST", f"/items/{item_id}/{action}", action).json()
        return data

    def download(self, item_id: str, target: Path, sha512: str | None) -> Path:
        """Fetch an item's output into ``target``, resuming a ``.part`` file with Range."""
        part = target.with_name(target.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.http.stream(
                "GET", f"/items/{item_id}/output", headers=headers, timeout=600
            ) as response:
                if response.status_code == 416:  # the part is already whole
                    response.read()
                elif response.status_code >= 400:
                    response.read()
                    raise error_from_response(response, f"{self.url}: fetch")
                else:
                    mode = "ab" if response.status_code == 206 else "wb"
                    with part.open(mode) as fh:
                        for block in response.iter_bytes(READ_SIZE):
                            fh.write(block)
        except httpx.TransportError as exc:
            raise Offline(f"{self.url}: the download broke off (it resumes): {exc}") from exc
        if sha512 and sha512_file(part) != sha512:
            part.unlink()
            raise Offline(f"{self.url}: the output of {item_id} arrived damaged; fetch again")
        part.replace(target)
        return target
