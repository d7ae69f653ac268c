"""The WebSocket control API of seed 002 (LetThatSyncIn): requests in, responses out.

The seed's JSON examples are not valid JSON as written (``"Drives": [ "Test Drive": {...} ]``).
We read them as a list of one-key objects, ``[{"Test Drive": {...}}]``, answer in that
form, and also accept an object (``{"1": {...}}``) or a list of plain drive objects.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from homekeep.backup import runlogs
from homekeep.backup.config import JobSpec, unit_seconds
from homekeep.backup.jobcheck import JobRefused, check_job
from homekeep.backup.roots import PathRefused
from homekeep.backup.service import Service
from homekeep.backup.targets import nearest_existing, resolve
from homekeep.core.errors import HomekeepError

Message = dict[str, Any]
MAX_DRIVES = 100  # per AddDrive request
FIELDS = {"Name", "Source", "Target", "Sleep", "Units", "Method", "Excludes", "Cron"}


class Control(Protocol):
    """What the protocol needs from the daemon."""

    svc: Service

    def start_run(self, name: str) -> bool:
        """Start a run in the background; False if that job is already running."""
        ...

    async def in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run blocking work off the event loop."""
        ...


def failure(response: str, error: str, **extra: Any) -> Message:
    """A Failure response."""
    return {"response": response, "Result": "Failure", "Error": error, **extra}


class BadMessage(Exception):
    """A frame that is not a request; ``answer`` is the response it gets."""

    def __init__(self, answer: Message) -> None:
        super().__init__(answer["Error"])
        self.answer = answer


def parse(text: str | bytes) -> Message:
    """The request object of one frame (it has a string ``request``), or BadMessage."""
    if isinstance(text, bytes):
        raise BadMessage(failure("Error", "Invalid Request"))
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise BadMessage(failure("Error", "Malformed JSON")) from None
    if not isinstance(message, dict) or not isinstance(message.get("request"), str):
        raise BadMessage(failure("Error", "Invalid Request"))
    return message


def drive_entries(value: Any) -> list[tuple[str | None, Any]] | None:
    """The drives of an AddDrive request in any accepted form, as (key, fields) pairs."""
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) for v in value.values()) and not (set(value) & FIELDS):
            return [(str(k), v) for k, v in value.items()]
        return [(None, value)]
    if isinstance(value, list) and value:
        out: list[tuple[str | None, Any]] = []
        for item in value:
            if not isinstance(item, dict):
                return None
            if len(item) == 1 and not (set(item) & FIELDS):
                key, fields = next(iter(item.items()))
                out.append((str(key), fields))
            else:
                out.append((None, item))
        return out
    return None


def drive_view(job: JobSpec, svc: Service) -> dict[str, Any]:
    """A job in the seed's ListDrives shape."""
    try:
        target = resolve(job, svc.config).location
    except HomekeepError:
        target = job.target
    view: dict[str, Any] = {
        "Source": job.source,
        "Target": job.target or target,
        "Sleep": job.every,
        "Units": job.units,
    }
    if job.cron:
        view["Cron"] = job.cron
    return view


class Checked(NamedTuple):
    """A drive of AddDrive or EditDrive: its job, or the seed's Error value and why."""

    job: JobSpec | None
    error: str | None = None
    warning: str | None = None
    message: str | None = None


def build_drive(fields: Any, name: str, svc: Service, base: JobSpec | None = None) -> Checked:
    """Validate one drive, with the seed's Error and Warning values."""
    if not isinstance(fields, dict):
        return Checked(None, "Invalid Drive")
    source = fields.get("Source", base.source if base else None)
    target = fields.get("Target", base.target if base else "")
    sleep, units, warning = _time_warning(fields, base)
    if not isinstance(source, str) or not source.startswith("/"):
        return Checked(None, "Invalid Source Path", warning, "Source must be an absolute path")
    if not isinstance(target, str):
        return Checked(None, "Invalid Target Path", warning, "Target must be a string")
    data: dict[str, Any] = (base.model_dump() if base else {}) | {
        "name": name,
        "source": source,
        "target": target,
        "every": sleep,
        "units": units,
        "cron": "",
    }
    if isinstance(fields.get("Method"), str):
        data["method"] = fields["Method"]
    if isinstance(fields.get("Excludes"), list):
        data["excludes"] = [str(p) for p in fields["Excludes"]]
    if isinstance(fields.get("Cron"), str) and fields["Cron"]:
        data["cron"] = fields["Cron"]
        data["every"] = None
    try:
        job, _ = check_job(data, svc, base=base)
    except JobRefused as exc:
        error = {"name": "Invalid Name", "target": "Invalid Target Path"}.get(
            exc.field, "Invalid Drive"
        )
        return Checked(None, error, warning, exc.message)
    except PathRefused as exc:
        return Checked(None, f"Invalid {exc.side.title()} Path", warning, exc.message)
    return Checked(job, None, warning)


def _time_warning(fields: dict[str, Any], base: JobSpec | None) -> tuple[int, str, str | None]:
    sleep = fields.get("Sleep", base.every if base and base.every else 1)
    units = fields.get("Units", base.units if base else "Days")
    if isinstance(sleep, float) and sleep.is_integer():
        sleep = int(sleep)
    if not isinstance(sleep, int) or isinstance(sleep, bool) or sleep < 1:
        return 1, "Days", "Invalid Time"
    if not isinstance(units, str) or unit_seconds(units) is None:
        return 1, "Days", "Invalid Units"
    return sleep, units, None


def _result(response: str, checked: Checked) -> Message:
    out: Message = {"response": response, "Result": "Failure" if checked.error else "Success"}
    if checked.error:
        out["Error"] = checked.error
    if checked.warning:
        out["Warning"] = checked.warning
    if checked.message:
        out["Message"] = checked.message
    return out


class Commands:
    """Answers one request at a time for a daemon."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.svc = control.svc
        self.handlers: dict[str, Callable[[Message], Awaitable[Message]]] = {
            "ListDrives": self.list_drives,
            "AddDrive": self.add_drive,
            "RemoveDrive": self.remove_drive,
            "EditDrive": self.edit_drive,
            "RunDrive": self.run_drive,
            "DriveStats": self.drive_stats,
            "GetHistory": self.get_history,
            "GetLogs": self.get_logs,
        }

    async def answer(self, text: str | bytes) -> Message:
        """The response to one frame; never raises for bad input."""
        try:
            message = parse(text)
        except BadMessage as exc:
            return exc.answer
        return await self.handle(message)

    async def handle(self, message: Message) -> Message:
        """The response to one parsed request."""
        name = message["request"]
        handler = self.handlers.get(name)
        if handler is None:
            return failure(name[:100], "Unknown Request")
        try:
            return await handler(message)
        except HomekeepError as exc:
            return failure(name, "Request Failed", Message=exc.message)

    async def list_drives(self, message: Message) -> Message:
        jobs = await self.control.in_thread(self.svc.jobs.all)
        return {
            "response": "ListDrives",
            "Drives": [{job.name: drive_view(job, self.svc)} for job in jobs],
        }

    async def add_drive(self, message: Message) -> Message:
        entries = drive_entries(message.get("Drives"))
        if entries is None:
            return failure("AddDrive", "Invalid Drives")
        if len(entries) > MAX_DRIVES:
            return failure("AddDrive", "Too Many Drives")
        existing = await self.control.in_thread(self.svc.jobs.all)
        names = {j.name for j in existing}
        jobs: list[JobSpec] = []
        warning: str | None = None
        for position, (key, fields) in enumerate(entries, start=len(existing) + 1):
            name = fields.get("Name") if isinstance(fields, dict) else None
            if name is None:
                name = key if key is not None else str(position)
            if not isinstance(name, str):
                return _result("AddDrive", Checked(None, "Invalid Name", warning))
            checked = build_drive(fields, name, self.svc)
            warning = warning or checked.warning
            if checked.job is not None and checked.job.name in names:
                checked = Checked(None, "Duplicate Name")
            if checked.job is None:
                return _result("AddDrive", checked._replace(warning=warning))
            names.add(checked.job.name)
            jobs.append(checked.job)
        await self.control.in_thread(functools.partial(self.svc.jobs.add, *jobs))
        return _result("AddDrive", Checked(None, warning=warning))

    async def edit_drive(self, message: Message) -> Message:
        name = message.get("Name")
        fields = message.get("Drive")
        if not isinstance(name, str):
            return failure("EditDrive", "Missing Name")
        current = {j.name: j for j in await self.control.in_thread(self.svc.jobs.all)}
        if name not in current:
            return failure("EditDrive", "Unknown Drive")
        if not isinstance(fields, dict):
            return failure("EditDrive", "Invalid Drive")
        new_name = fields.get("Name", name)
        if not isinstance(new_name, str):
            return _result("EditDrive", Checked(None, "Invalid Name"))
        checked = build_drive(fields, new_name, self.svc, base=current[name])
        if checked.job is not None and new_name != name and new_name in current:
            checked = Checked(None, "Duplicate Name", checked.warning)
        job = checked.job
        if job is None:
            return _result("EditDrive", checked)
        await self.control.in_thread(lambda: self.svc.jobs.replace(name, job))
        return _result("EditDrive", checked)

    async def remove_drive(self, message: Message) -> Message:
        name = message.get("Name")
        if not isinstance(name, str):
            return failure("RemoveDrive", "Missing Name")
        if name not in {j.name for j in await self.control.in_thread(self.svc.jobs.all)}:
            return failure("RemoveDrive", "Unknown Drive")
        await self.control.in_thread(lambda: self.svc.jobs.remove(name))
        return {"response": "RemoveDrive", "Result": "Success"}

    async def _job(self, response: str, message: Message) -> JobSpec | Message:
        name = message.get("Name")
        if not isinstance(name, str):
            return failure(response, "Missing Name")
        jobs: list[JobSpec] = await self.control.in_thread(self.svc.jobs.all)
        for job in jobs:
            if job.name == name:
                return job
        return failure(response, "Unknown Drive")

    async def run_drive(self, message: Message) -> Message:
        job = await self._job("RunDrive", message)
        if isinstance(job, dict):
            return job
        if not self.control.start_run(job.name):
            return failure("RunDrive", "Already Running", Name=job.name)
        return {"response": "RunDrive", "Result": "Success", "Name": job.name}

    async def drive_stats(self, message: Message) -> Message:
        from homekeep.backup import diskstats

        job = await self._job("DriveStats", message)
        if isinstance(job, dict):
            return job
        out: Message = {"response": "DriveStats", "Result": "Success", "Name": job.name}
        out["Source"] = await self.control.in_thread(lambda: diskstats.usage(Path(job.source)))
        target = resolve(job, self.svc.config)
        out["Target"] = None
        probe = nearest_existing(target.path) if target.is_local else None
        if probe is not None:
            out["Target"] = await self.control.in_thread(lambda: diskstats.usage(probe))
            if message.get("SpeedTest") is True:
                out["Speed"] = await self.control.in_thread(
                    lambda: diskstats.speed_test(probe, 16 * diskstats.CHUNK)
                )
        elif target.tool == "rclone":
            out["Target"] = await self.control.in_thread(
                lambda: diskstats.rclone_about(target, self.svc.config)
            )
        last = await self.control.in_thread(lambda: self.svc.backups.store.last(job.name))
        out["LastRun"] = last.to_json() if last else None
        return out

    async def get_history(self, message: Message) -> Message:
        job = await self._job("GetHistory", message)
        if isinstance(job, dict):
            return job
        limit = message.get("Limit", 20)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            return failure("GetHistory", "Invalid Limit")
        runs = await self.control.in_thread(lambda: self.svc.backups.store.history(job.name, limit))
        return {
            "response": "GetHistory",
            "Result": "Success",
            "Name": job.name,
            "Runs": [r.to_json() for r in runs],
        }

    async def get_logs(self, message: Message) -> Message:
        job = await self._job("GetLogs", message)
        if isinstance(job, dict):
            return job
        lines = message.get("Lines", 200)
        if not isinstance(lines, int) or isinstance(lines, bool) or not 1 <= lines <= 10000:
            return failure("GetLogs", "Invalid Lines")
        store = self.svc.backups.store
        run_id = message.get("Run")
        if run_id is not None:
            run = (
                await self.control.in_thread(lambda: store.get(run_id))
                if isinstance(run_id, int) and not isinstance(run_id, bool)
                else None
            )
            if run is None or run.job != job.name:
                return failure("GetLogs", "Unknown Run")
        else:
            run = await self.control.in_thread(lambda: store.last(job.name))
            if run is None:
                return failure("GetLogs", "No Runs")
        return {
            "response": "GetLogs",
            "Result": "Success",
            "Name": job.name,
            "Run": run.id,
            "Lines": await self.control.in_thread(lambda: runlogs.tail(run.log_file, lines)),
        }
