"""The convert server at run time: items, uploads, leases, and the job queue.

``open_service(ctx)`` is what the API, the CLI and the workers on this machine open.
Every method is blocking (SQLite, files, ffprobe); async callers run it on a thread.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homekeep.convert import profiles
from homekeep.convert.config import ConvertConfig
from homekeep.convert.jobs import Job, settings_of
from homekeep.convert.probing import MediaInfo, check_limits, probe
from homekeep.convert.queue import JobQueue
from homekeep.convert.store import (
    CANCELLED,
    FAILED,
    IN_PROGRESS,
    MIGRATIONS,
    SUCCESS,
    TO_DO,
    Item,
    Store,
    Upload,
)
from homekeep.convert.uploads import Uploads, check_file_name
from homekeep.core.area import AreaContext
from homekeep.core.errors import Conflict, HomekeepError, NotFound
from homekeep.core.processes import pid_alive

log = logging.getLogger("homekeep.convert")
HOST = socket.gethostname()


@dataclass
class Service:
    """What the API, the CLI and local workers share."""

    config: ConvertConfig
    folder: Path
    store: Store
    uploads: Uploads
    queue: JobQueue

    @property
    def inputs(self) -> Path:
        return self.folder / "inputs"

    @property
    def outputs(self) -> Path:
        return self.folder / "outputs"

    @property
    def work(self) -> Path:
        return self.folder / "work"

    def input_path(self, item_id: str) -> Path:
        return self.inputs / item_id

    def output_path(self, item: Item) -> Path:
        return self.outputs / f"{item.item_id}.{profiles.CONVERSIONS[item.conversion].extension}"

    def view(self, item: Item) -> dict[str, Any]:
        return item.to_json(self.config.max_attempts)

    # items

    def accept(self, upload: Upload) -> Item:
        """Check a fully arrived upload (checksum, ffprobe) and queue it, or refuse it."""
        path = self.uploads.path(upload.upload_id)
        try:
            digest = self.uploads.sha512(upload)
            if upload.sha512 is not None and digest != upload.sha512:
                raise Conflict(
                    "the SHA-512 of what arrived differs from the declared one; "
                    "the upload is dropped: send the file again",
                    code="checksum_mismatch",
                )
            info = probe(path, timeout=self.config.tool_timeout_seconds)
            check_limits(
                info,
                max_pixels=self.config.max_pixels,
                max_duration=self.config.max_duration_seconds,
            )
            conversion = profiles.get(upload.conversion, self.config)
            profiles.check_fits(conversion, info)
        except HomekeepError as exc:
            self.uploads.discard(upload.upload_id)
            self.store.end_upload(upload.upload_id, "refused", code=exc.code, error=exc.message)
            raise
        item_id = upload.upload_id
        self.inputs.mkdir(parents=True, exist_ok=True)
        with self.store.db.transaction():
            self.store.add_item(
                {
                    "item_id": item_id,
                    "client_id": upload.client_id,
                    "owner": upload.owner,
                    "file_name": upload.file_name,
                    "conversion": conversion.name,
                    "media_type": conversion.media_type,
                    "sha512": digest,
                    "file_size": upload.file_size,
                    "probe": info.to_json(),
                }
            )
            self.store.end_upload(upload.upload_id, "done", item_id=item_id)
            path.replace(self.input_path(item_id))
        self.uploads.discard(upload.upload_id)
        self._put(item_id)
        return self.store.item(item_id)

    def add_local(
        self, source: Path, conversion: str, *, client_id: str, owner: str | None = None
    ) -> Item:
        """Queue a file of this machine (copied in, checked as an upload would be)."""
        size = source.stat().st_size
        upload = self.uploads.create(
            client_id=client_id,
            owner=owner,
            file_name=check_file_name(source.name),
            conversion=conversion,
            file_size=size,
            sha512=None,
        )
        try:
            appender = self.uploads.begin(upload.upload_id, 0, size)
            try:
                with source.open("rb") as fh:
                    while block := fh.read(1 << 20):
                        appender.write([block])
            finally:
                appender.close()
        except BaseException:
            self.uploads.discard(upload.upload_id)
            self.store.end_upload(upload.upload_id, "refused", error="not copied")
            raise
        return self.accept(self.store.upload(upload.upload_id))

    def _put(self, item_id: str) -> None:
        try:
            self.queue.put(item_id)
        except HomekeepError as exc:  # the item waits; the reaper sends it again
            log.warning("item %s waits for the queue: %s", item_id, exc.message)

    def cancel(self, item_id: str) -> Item:
        """Cancel a waiting or running item (a running worker stops at its next heartbeat)."""
        return self.store.set_status(item_id, CANCELLED, allowed_from=(TO_DO, IN_PROGRESS))

    def retry(self, item_id: str) -> Item:
        """Queue a failed or cancelled item again, with its attempts counted afresh."""
        item = self.store.set_status(item_id, TO_DO, allowed_from=(FAILED, CANCELLED))
        if not self.input_path(item_id).is_file():
            self.store.set_status(item_id, FAILED, allowed_from=(TO_DO,))
            raise Conflict(f"item {item_id} has lost its input; add the file again")
        self._put(item_id)
        return item

    def delete(self, item_id: str) -> Item:
        """Delete an item, its input and its output (a running one is cancelled first)."""
        item = self.store.delete_item(item_id)
        self.input_path(item_id).unlink(missing_ok=True)
        self.output_path(item).unlink(missing_ok=True)
        return item

    def output(self, item_id: str) -> tuple[Item, Path]:
        item = self.store.item(item_id)
        if item.status != SUCCESS:
            raise Conflict(f"item {item_id} is {item.status}; its output exists once finished")
        path = self.output_path(item)
        if not path.is_file():
            raise NotFound(f"the output of item {item_id} is gone")
        return item, path

    # jobs: the lease protocol every worker follows, here or over HTTP

    def claim(self, item_id: str, worker_id: str, *, remote: bool, pid: int = 0) -> Job | None:
        """Give a waiting item to a worker, with a fresh lease; None if it is not waiting."""
        token = secrets.token_hex(16)
        if not self.store.claim(item_id, worker_id, token, self.config.lease_seconds):
            return None
        item = self.store.item(item_id)
        self.store.seen_worker(worker_id, _host_of(worker_id), pid, remote=remote, item_id=item_id)
        conversion = profiles.CONVERSIONS[item.conversion]
        return Job(
            item_id=item.item_id,
            lease_token=token,
            attempt=item.attempts,
            conversion=item.conversion,
            extension=conversion.extension,
            file_name=item.file_name,
            file_size=item.file_size,
            sha512=item.sha512,
            info=MediaInfo.from_json(item.probe),
            settings=settings_of(self.config),
        )

    def held(self, item_id: str, lease_token: str) -> Item:
        """The item while ``lease_token`` holds it; 409 once cancelled, lost or deleted."""
        item = self.store.holder(item_id, lease_token)
        if item is None:
            raise Conflict(f"the lease on item {item_id} is no longer held", code="lease_lost")
        return item

    def heartbeat(
        self, item_id: str, lease_token: str, worker_id: str, progress: dict[str, Any]
    ) -> str:
        """Extend a lease and record progress: ``ok``, or ``cancelled`` / ``lost`` to stop."""
        if self.store.heartbeat(item_id, lease_token, self.config.lease_seconds, progress):
            self.store.seen_worker(worker_id, _host_of(worker_id), 0, remote=False, item_id=item_id)
            return "ok"
        try:
            item = self.store.item(item_id)
        except NotFound:
            return "cancelled"
        return "cancelled" if item.status == CANCELLED else "lost"

    def finish(self, item_id: str, lease_token: str, produced: Path, sha512: str) -> bool:
        """Take a checked output into place and mark the item done; False if the lease is gone."""
        item = self.store.holder(item_id, lease_token)
        if item is None:
            produced.unlink(missing_ok=True)
            return False
        target = self.output_path(item)
        self.outputs.mkdir(parents=True, exist_ok=True)
        size = produced.stat().st_size
        with self.store.db.transaction():
            if not self.store.finish(
                item_id, lease_token, SUCCESS, output_size=size, output_sha512=sha512
            ):
                produced.unlink(missing_ok=True)
                return False
            produced.replace(target)
        log.info("item %s (%s) finished: %d bytes", item_id, item.file_name, size)
        return True

    def fail(self, item_id: str, lease_token: str, errors: Sequence[str]) -> bool:
        """Mark a held item finished_with_errors."""
        done = self.store.finish(item_id, lease_token, FAILED, errors=errors)
        if done:
            log.warning("item %s failed: %s", item_id, "; ".join(errors))
        return done

    def release(self, item_id: str, lease_token: str) -> bool:
        """Give a held item back (a worker stopping): to_do again, the attempt not counted."""
        done = self.store.finish(item_id, lease_token, TO_DO, count_attempt=False)
        if done:
            self._put(item_id)
        return done

    def worker_gone(self, worker_id: str) -> None:
        self.store.gone_worker(worker_id)

    # upkeep: lease expiry, expired uploads, lost messages, crash leftovers

    def reap(self) -> None:
        """Requeue (or fail, past max_attempts) jobs whose worker went silent; drop old uploads."""
        for item in self.store.expired_leases(time.time()):
            self._lost(item, "its worker stopped answering (killed, crashed or cut off)")
        self.uploads.expire()
        self.store.forget_workers(time.time() - 10 * self.config.lease_seconds)

    def _lost(self, item: Item, why: str) -> None:
        assert item.lease_token is not None
        if item.attempts >= self.config.max_attempts:
            errors = [f"{why}, {item.attempts} times; giving up ([convert] max_attempts)"]
            if self.store.finish(item.item_id, item.lease_token, FAILED, errors=errors):
                log.warning("item %s failed: %s", item.item_id, errors[0])
            return
        if self.store.finish(item.item_id, item.lease_token, TO_DO):
            log.warning(
                "item %s back in the queue: %s (worker %s)", item.item_id, why, item.worker_id
            )
            self._put(item.item_id)

    def reconcile(self) -> int:
        """Send again the jobs of waiting items whose messages are missing (a lost queue)."""
        try:
            waiting = self.queue.pending()
        except Exception as exc:
            log.warning("cannot read the job queue (%s): %s", self.queue.where, exc)
            return 0
        missing = [i for i in self.store.to_do_ids() if i not in waiting]
        for item_id in missing:
            self._put(item_id)
        return len(missing)

    def recover(self) -> None:
        """At start: requeue jobs of dead workers of this machine, remove crash leftovers."""
        dead = [
            w["worker_id"]
            for w in self.store.workers()
            if w["host"] == HOST and w["pid"] and not pid_alive(int(w["pid"]))
        ]
        for item in self.store.held_by(dead):
            self._lost(item, "its worker died (found at start-up)")
        for worker_id in dead:
            self.store.gone_worker(worker_id)
        for name in self.uploads.tidy():
            log.warning("removed %s: a partial upload nobody can resume", name)
        incoming = self.folder / "incoming"  # outputs being handed in over HTTP
        if incoming.is_dir():
            for path in incoming.iterdir():
                if path.stat().st_mtime < time.time() - 3600:  # surely not still arriving
                    path.unlink(missing_ok=True)
        live = self.store.live_item_ids()
        for folder in (self.inputs, self.outputs):
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.name.partition(".")[0] not in live or path.name.endswith(".part"):
                        path.unlink(missing_ok=True)
                        log.warning("removed %s: a file no item owns (left by a crash)", path)
        missing = self.reconcile()
        if missing:
            log.info("sent %d waiting jobs to the queue again", missing)

    def status(self) -> dict[str, Any]:
        """The server's offer and load, for clients choosing where to send."""
        counts = self.store.counts()
        return {
            "media_types": list(self.config.media_types),
            "conversions": [c.to_json() for c in profiles.offered(self.config).values()],
            "counts": counts,
            "load": counts[TO_DO] + counts[IN_PROGRESS],
            "broker": self.queue.where,
            "max_input_bytes": self.config.max_input_bytes,
        }

    def close(self) -> None:
        self.uploads.close()
        self.queue.close()
        self.store.db.close()


def _host_of(worker_id: str) -> str:
    return worker_id.partition("/")[0]


def open_service(ctx: AreaContext) -> Service:
    """Open the area's database, folders and job queue."""
    config = ctx.config(ConvertConfig)
    folder = ctx.dir
    store = Store(ctx.database(MIGRATIONS))
    uploads = Uploads(store, folder / "uploads", config)
    return Service(config, folder, store, uploads, JobQueue(config.broker, folder))
