"""The pool's client side: ask the dispatcher for a seat, join the server, ping, come back.

``Dispatch`` talks HTTP to the dispatcher; ``RoomClient`` holds one seat: it allocates,
says hello with the ticket, pings every interval, hands incoming lines to the caller,
and when its server goes away (killed, hung, restarted) allocates again with a new
ticket. Both belong to the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from homekeep.core.errors import HomekeepError, Unavailable, UsageError, error_from_response
from homekeep.pool.lines import LineSplitter, encode
from homekeep.pool.seats import Seat

REJOIN_ATTEMPTS = 8
REJOIN_BACKOFF_SECONDS = 0.2
INBOX_LIMIT = 10_000
MAX_IN_FLIGHT = 16
CLOSING = "server closing"


def tls_context(ca: Path | None) -> ssl.SSLContext:
    """A client TLS context trusting the system's CAs, or only ``ca`` when given."""
    return ssl.create_default_context(cafile=str(ca) if ca else None)


class Dispatch:
    """HTTP calls to a running dispatcher (``homekeep serve`` or ``homekeep pool serve``)."""

    def __init__(self, url: str, token: str, *, ca: Path | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(
                f"dispatcher URL {url!r} must start with http:// or https://; fix --url "
                "or [pool] url"
            )
        self.url = url.rstrip("/")
        self.ca = ca
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            verify=tls_context(ca) if self.url.startswith("https://") else True,
            timeout=httpx.Timeout(30, connect=5),
            trust_env=False,
        )
        # Callers past this wait here: httpx's own queue slows down with hundreds waiting.
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self._in_flight:
                response = await self._http.request(method, f"/api/pool{path}", **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"no dispatcher answers at {self.url} ({exc}); start one with "
                "'homekeep serve' or 'homekeep pool serve', or give --url"
            ) from exc
        if response.status_code >= 400:
            error = error_from_response(response, "pool")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                error.code = str(response.json()["error"]["code"])  # e.g. pool_full
            raise error
        return response.json()

    async def allocate(self, name: str | None = None) -> Seat:
        """A seat on some server, with its ticket."""
        body = {"name": name} if name else {}
        return Seat.from_json(await self._call("POST", "/allocate", json=body))

    async def servers(self) -> dict[str, Any]:
        """The pool and its servers' properties."""
        result: dict[str, Any] = await self._call("GET", "/servers")
        return result

    async def events(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest pool events."""
        result: list[dict[str, Any]] = await self._call("GET", "/events", params={"limit": limit})
        return result

    async def aclose(self) -> None:
        await self._http.aclose()


class RoomClient:
    """One client in the pool: joined through the dispatcher, alive, and rejoining."""

    def __init__(
        self,
        dispatch: Dispatch,
        name: str | None = None,
        *,
        rejoin: bool = True,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self.dispatch = dispatch
        self.name = name
        self.rejoin = rejoin
        self.seat: Seat | None = None
        self.welcome: dict[str, Any] = {}
        self.joins = 0
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(INBOX_LIMIT)
        self.closed_reason = ""
        self._max_line_bytes = max_line_bytes
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()
        self._stopping = False

    @property
    def client(self) -> str:
        return str(self.welcome.get("client", ""))

    async def join(self, timeout: float = 30) -> dict[str, Any]:
        """Allocate, connect and say hello; then keep the seat in the background."""
        reader = await asyncio.wait_for(self._connect(), timeout)
        self._task = asyncio.create_task(self._keep(reader))
        return self.welcome

    async def _connect(self) -> asyncio.StreamReader:
        seat = await self.dispatch.allocate(self.name)
        context = tls_context(self.dispatch.ca) if seat.tls else None
        reader, writer = await asyncio.open_connection(
            seat.host, seat.port, ssl=context, limit=self._max_line_bytes + 1
        )
        writer.write(encode({"type": "hello", "ticket": seat.ticket}))
        try:  # a hung server accepts (the kernel does) but never answers
            first = await asyncio.wait_for(reader.readline(), 2 * seat.ping_interval_seconds)
        except TimeoutError:
            writer.close()
            raise Unavailable(f"server {seat.server} did not answer the hello") from None
        answer = json.loads(first or b"{}")
        if answer.get("type") != "welcome":
            writer.close()
            raise Unavailable(f"server {seat.server} refused the ticket: {answer.get('message')}")
        self.seat, self.welcome, self._writer = seat, answer, writer
        self.joins += 1
        self._joined.set()
        return reader

    async def _keep(self, reader: asyncio.StreamReader) -> None:
        """Read lines and ping; on a lost server, allocate again (bounded)."""
        while not self._stopping:
            reason = await self._session(reader)
            self._joined.clear()
            if self._writer is not None:
                self._writer.close()
            # A server that says it is closing is drained on purpose (the pool shuts
            # down): only a server lost without a word is worth a new seat.
            if self._stopping or not self.rejoin or reason.startswith(CLOSING):
                self.closed_reason = reason
                break
            rejoined = await self._rejoin()
            if rejoined is None:
                self.closed_reason = reason
                break
            reader = rejoined
        while self.inbox.full():  # the end is told even to a caller that stopped reading
            self.inbox.get_nowait()
        self._offer({"type": "ended", "reason": self.closed_reason})
        self._joined.set()  # wake anyone waiting: the client is done

    async def _rejoin(self) -> asyncio.StreamReader | None:
        delay = REJOIN_BACKOFF_SECONDS
        for _ in range(REJOIN_ATTEMPTS):
            if self._stopping:
                return None
            try:
                reader = await asyncio.wait_for(self._connect(), 30)
            except (HomekeepError, OSError, ValueError, TimeoutError) as exc:
                if isinstance(exc, Unavailable) and exc.code == "shutting_down":
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._offer({"type": "rejoined", "server": self.welcome.get("server")})
            return reader
        return None

    async def _session(self, reader: asyncio.StreamReader) -> str:
        """Serve one connection until it ends; return why it ended."""
        interval = float(self.welcome.get("ping_interval_seconds", 10))
        pinger = asyncio.create_task(self._ping(interval))
        splitter = LineSplitter(self._max_line_bytes)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 2 * interval)
                except TimeoutError:
                    return "server silent for two ping intervals"
                except (ConnectionError, ssl.SSLError) as exc:
                    return f"connection lost: {exc}"
                if not data:
                    return "server closed the connection"
                for line in splitter.feed(data):
                    if not isinstance(line, bytes):
                        continue
                    with contextlib.suppress(ValueError):
                        message = json.loads(line)
                        if isinstance(message, dict) and message.get("type") != "pong":
                            self._offer(message)
                            if message.get("type") == "closing":
                                return f"{CLOSING}: {message.get('reason')}"
        finally:
            pinger.cancel()

    def _offer(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a caller that never reads loses lines
            self.inbox.put_nowait(message)

    async def _ping(self, interval: float) -> None:
        while self._writer is not None and not self._writer.is_closing():
            self._writer.write(b'{"type":"ping"}\n')
            await asyncio.sleep(interval)

    async def send(self, text: str) -> None:
        """Say ``text`` to the others in the room (waits while the client rejoins)."""
        await self._joined.wait()
        if self._writer is None or self._writer.is_closing():
            raise Unavailable(f"not connected: {self.closed_reason or 'connection closed'}")
        self._writer.write(encode({"type": "message", "text": text}))
        await self._writer.drain()

    async def receive(self, timeout: float) -> dict[str, Any]:
        """The next line from the server (pongs left out)."""
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def wait_for(self, kind: str, timeout: float) -> dict[str, Any]:
        """Skip lines until one of type ``kind`` arrives."""

        async def scan() -> dict[str, Any]:
            while True:
                message = await self.inbox.get()
                if message.get("type") == kind:
                    return message

        return await asyncio.wait_for(scan(), timeout)

    async def close(self) -> None:
        """Leave the room (and stop any rejoining under way)."""
        self._stopping = True
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
