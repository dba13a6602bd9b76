"""REST handlers under ``{base_url}mlmagic/api/``: the labextension's view of a workspace.

=======  ============================  ==================================================
GET      ``workspace``                 ``{"path", "exists", "version"}``
GET      ``environments``              ``{"environments": [{name, version, status, ...}]}``
GET      ``runs?experiment=&limit=``   ``{"runs": [{id, status, ...}], "now", "cursor",
                                       "full"}``, newest first (``limit`` 1 to 1000,
                                       default 100)
GET      ``runs?since=CURSOR``         only the rows changed after an earlier reply's
                                       ``cursor`` (``full`` false): see :func:`list_runs`
GET      ``runs/<id>``                 the run's details (``Run.details`` and ``live``)
GET      ``runs/<id>/log``             the whole log, ``text/plain``
GET      ``runs/<id>/log?offset=N``    ``{"text", "offset", "size", "live", "status"}``
POST     ``runs/<id>/cancel``          the run as listed; ``409`` when it has ended
GET      ``services``                  ``{"services": [{name, state, url, ...}]}``
DELETE   ``services/<name>``           ``{"deleted": name}``
=======  ============================  ==================================================

The log offset protocol lets a viewer follow a live run cheaply: ``text`` is the log from
byte ``N`` (at most ``limit`` bytes, default 1 MiB), cut on a character boundary; the next
request asks from the ``offset`` returned. The log is complete once a reply has ``live``
false and ``offset == size`` (``live`` is read before the file, so no line can follow).

Errors are mapped once, by :func:`api_errors`, by their type (never their text), to
``{"error": message}``: bad input 400, :class:`~mlmagic.exceptions.NotFoundError` 404,
:class:`~mlmagic.exceptions.ConflictError` 409 (also a log that is not a regular file of
the run: a script replaced it with a link or a FIFO, which is never followed), no
container engine 503. Rows come from the workspace's collections (``ws.runs``,
``ws.environments``, ``ws.services``). Every call into mlmagic runs in a worker thread:
listing services asks each container and its health route, and cancelling waits for the
container to stop.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from mlmagic._version import __version__
from mlmagic.exceptions import ConflictError, EngineError, MlmagicError, NotFoundError
from mlmagic.records import RunRecord
from mlmagic.run.run import Run
from mlmagic.run.untrusted import RefusedFile, open_run_file
from mlmagic.workspace import Workspace

__all__ = [
    "MAX_LOG_CHUNK",
    "BadRequest",
    "WorkspaceAccess",
    "api_errors",
    "error_status",
    "handlers",
    "list_runs",
    "read_log",
    "run_row",
]

#: Most bytes of log one reply of the offset protocol carries.
MAX_LOG_CHUNK = 16 << 20
_LOG_CHUNK = 1 << 20
_RUN_ID = re.compile(r"\w[\w.-]{0,199}")
_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class BadRequest(MlmagicError):
    """The request itself is wrong: a malformed id or parameter (400)."""


#: Exception types and their HTTP status, most specific first.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (EngineError, 503),
    (BadRequest, 400),
    (ValueError, 400),
)


def error_status(exc: Exception) -> int:
    """The HTTP status for an exception raised while answering a request (by its type)."""
    if isinstance(exc, web.HTTPError):
        return exc.status_code
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def api_errors(
    method: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """Answer any exception of ``method`` with its status and ``{"error": message}``."""

    @functools.wraps(method)
    async def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except Exception as exc:
            status = error_status(exc)
            if isinstance(exc, web.HTTPError):
                message = exc.log_message or exc.reason or str(exc)
            elif isinstance(exc, MlmagicError):
                message = str(exc)
            else:
                message = f"mlmagic's server extension failed: {exc!r}; see the server's log."
            if status >= 500:
                self.log.error("mlmagic: %s %s: %s", self.request.method, self.request.path, exc)
            if self._headers_written:  # a streamed log broke off: nothing more can be said
                self.finish()
                return
            self.clear()
            self.set_status(status)
            self.finish(json.dumps({"error": message}))

    return wrapper


class WorkspaceAccess:
    """The server's workspace, opened on first use once it exists.

    Looking never creates a workspace: until a notebook (or the CLI) makes one, the lists
    are empty and every run or service is unknown.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._workspace: Workspace | None = None
        self._lock = threading.Lock()

    def get(self) -> Workspace | None:
        """The workspace, or ``None`` while its folder does not exist."""
        with self._lock:
            if self._workspace is None and self.root.is_dir():
                self._workspace = Workspace(self.root)
            return self._workspace

    def run(self, run_id: str, *, watch: bool = True) -> Run:
        """A run by id; with ``watch``, a live one nobody drives any more is watched to its
        end (as ``ws.runs.get`` does)."""
        if not _RUN_ID.fullmatch(run_id):
            raise BadRequest(
                f"{run_id!r} is not a run id: ids look like default_20240101-120000_ab12cd."
            )
        ws = self.get()
        if ws is None:
            raise NotFoundError(f"No run {run_id} in {self.root}: the workspace has no runs yet.")
        return ws.runs.get(run_id) if watch else Run(ws, run_id)


def read_log(run: Run, offset: int, limit: int = _LOG_CHUNK) -> dict[str, Any]:
    """The reply of the log offset protocol: the log of ``run`` from byte ``offset``."""
    status = run.status  # before the file: a run that had ended has its whole log written
    size, data = 0, b""
    file = _open_log(run)
    if file is not None:
        with file:
            size = os.fstat(file.fileno()).st_size
            if offset < size:
                file.seek(offset)
                data = file.read(min(limit, size - offset))
    if offset > size:
        raise BadRequest(f"offset {offset} is past the end of the log ({size} bytes).")
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    last = offset + len(data) >= size and status.is_terminal
    text = decoder.decode(data, final=last)
    # An incomplete character at the end waits for the next request.
    consumed = len(data) - len(decoder.getstate()[0])
    return {
        "text": text,
        "offset": offset + consumed,
        "size": size,
        "live": not status.is_terminal,
        "status": status.value,
    }


def _open_log(run: Run) -> IO[bytes] | None:
    """The run's log, opened without following a link the script may have put there."""
    try:
        return open_run_file(run.paths, run.paths.output_log)
    except RefusedFile as exc:
        raise ConflictError(str(exc)) from exc


def run_row(record: RunRecord, now: float) -> dict[str, Any]:
    """A run as the panel lists it, from its record."""
    started, ended = record.started, record.ended
    return {
        "id": record.id,
        "experiment": record.experiment,
        "name": record.config.name,
        "status": record.status.value,
        "live": not record.status.is_terminal,
        "environment": record.environment,
        "script": record.config.script,
        "target": record.target,
        "created": record.created,
        "started": started,
        "ended": ended,
        "duration": ((ended or now) - started) if started else None,
        "exit_code": record.exit_code,
        "error": record.error,
        "cancel_requested": record.cancel_requested,
    }


def list_runs(
    ws: Workspace, *, experiment: str | None, limit: int, since: int | None
) -> dict[str, Any]:
    """The reply of ``GET runs``: the newest ``limit`` runs, or with ``since`` (a
    ``cursor`` of an earlier reply) only those of them that changed after it.

    ``full`` says whether ``runs`` is the whole listing (no ``since``, or a ``since``
    this workspace never gave: its database was replaced) or only the changed rows to merge
    into the previous listing by id. The cursor is read before the rows, so a change made
    meanwhile comes again in the next reply rather than never. A live run nobody drives
    any more is watched to its end, as ``ws.runs.get`` does.
    """
    cursor = ws.store.run_changes()
    full = since is None or since > cursor
    now = time.time()
    records = ws.store.runs(experiment, limit, changed_after=None if full else since)
    for run_id in ws.store.live_run_ids():
        ws.runs.get(run_id)
    return {"runs": [run_row(r, now) for r in records], "now": now, "cursor": cursor, "full": full}


class _Handler(APIHandler):
    """JSON over the workspace; every method runs its work in a thread."""

    auth_resource = "mlmagic"

    def initialize(self, access: WorkspaceAccess) -> None:
        self.access = access

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))

    def int_argument(self, name: str, default: int | None, low: int, high: int) -> int | None:
        """An integer query parameter within ``[low, high]``, else :class:`BadRequest`."""
        text = self.get_query_argument(name, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise BadRequest(f"{name}={text!r}: give a whole number.") from None
        if not low <= value <= high:
            raise BadRequest(f"{name}={value}: give a number from {low} to {high}.")
        return value


class WorkspaceHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        self.reply(
            {
                "path": str(self.access.root),
                "exists": self.access.root.is_dir(),
                "version": __version__,
            }
        )


class EnvironmentsHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        def listing() -> list[dict[str, Any]]:
            ws = self.access.get()
            return [] if ws is None else ws.environments.rows()

        self.reply({"environments": await asyncio.to_thread(listing)})


class RunsHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        experiment = self.get_query_argument("experiment", None) or None
        limit = self.int_argument("limit", 100, 1, 1000)
        since = self.int_argument("since", None, 0, 1 << 62)
        assert limit is not None

        def listing() -> dict[str, Any]:
            ws = self.access.get()
            if ws is None:
                return {"runs": [], "now": time.time(), "cursor": 0, "full": True}
            return list_runs(ws, experiment=experiment, limit=limit, since=since)

        self.reply(await asyncio.to_thread(listing))


class RunHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        def details() -> dict[str, Any]:
            run = self.access.run(run_id)
            return {**run.details, "live": not run.status.is_terminal}

        self.reply(await asyncio.to_thread(details))


class RunLogHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        offset = self.int_argument("offset", None, 0, 1 << 62)
        limit = self.int_argument("limit", _LOG_CHUNK, 1, MAX_LOG_CHUNK)
        run = await asyncio.to_thread(self.access.run, run_id)
        if offset is not None:
            assert limit is not None
            self.reply(await asyncio.to_thread(read_log, run, offset, limit))
            return
        text_plain = "text/plain; charset=utf-8"
        self.set_header("Content-Type", text_plain)
        # Log text must never be taken for HTML by a browser that opens the link.
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Disposition", f"inline; filename*=UTF-8''{quote(run.id)}.log")
        self.set_header("Cache-Control", "no-store")
        file = await asyncio.to_thread(_open_log, run)
        if file is None:
            self.finish(b"", set_content_type=text_plain)
            return
        try:
            while chunk := file.read(_LOG_CHUNK):
                self.write(chunk)
                await self.flush()
        finally:
            file.close()
        self.finish(set_content_type=text_plain)


class RunCancelHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def post(self, run_id: str) -> None:
        def cancel() -> dict[str, Any]:
            # Not watched: cancelling closes a run whose kernel is gone as Canceled.
            run = self.access.run(run_id, watch=False)
            status = run.status
            if status.is_terminal:
                raise ConflictError(
                    f"Run {run_id} has already ended ({status.value}): nothing to cancel."
                )
            run.cancel()
            return run_row(run.record, time.time())

        self.reply(await asyncio.to_thread(cancel))


class ServicesHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        def listing() -> list[dict[str, Any]]:
            ws = self.access.get()
            return [] if ws is None else ws.services.rows()

        self.reply({"services": await asyncio.to_thread(listing)})


class ServiceHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def delete(self, name: str) -> None:
        if not _SERVICE_NAME.fullmatch(name):
            raise BadRequest(f"{name!r} is not a service name: lowercase letters, digits and '-'.")

        def delete() -> None:
            ws = self.access.get()
            if ws is None:
                raise NotFoundError(f"No service {name}: the workspace has no services yet.")
            ws.services.get(name).delete()

        await asyncio.to_thread(delete)
        self.reply({"deleted": name})


def handlers(base_url: str, access: WorkspaceAccess) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of the API under ``base_url``, each handler given ``access``."""
    api = url_path_join(base_url, "mlmagic", "api")
    routes: list[tuple[str, type]] = [
        ("workspace", WorkspaceHandler),
        ("environments", EnvironmentsHandler),
        ("runs", RunsHandler),
        (r"runs/(?P<run_id>[^/]+)", RunHandler),
        (r"runs/(?P<run_id>[^/]+)/log", RunLogHandler),
        (r"runs/(?P<run_id>[^/]+)/cancel", RunCancelHandler),
        ("services", ServicesHandler),
        (r"services/(?P<name>[^/]+)", ServiceHandler),
    ]
    return [(url_path_join(api, path), handler, {"access": access}) for path, handler in routes]
