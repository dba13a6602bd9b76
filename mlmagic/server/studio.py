"""REST routes of the studio views (run details, comparison, models, lineage, environments).

Beside :mod:`mlmagic.server.handlers`, under the same ``{base_url}mlmagic/api/``, behind
the same Jupyter server authentication, with errors mapped the same way:

=======  ======================================  ============================================
GET      ``runs/<id>/overview``                  the run's details, ``live``, ``params``,
                                                 the ``models`` registered from it, and its
                                                 ``environment_version`` (status, image)
GET      ``runs/<id>/metrics?since=&limit=``     ``{"metrics": [{name, step, value, time,
                                                 rank}], "cursor", "live", "status"}``
GET      ``runs/<id>/files``                     ``{"files": [{path, size, modified, kind}],
                                                 "truncated", "lab_path"}``
GET      ``runs/<id>/files/<outputs/...>``       the file (``nosniff``; see
                                                 :mod:`~mlmagic.server.run_files`)
GET      ``compare?runs=a,b,...``                ``{"runs": [{row..., params, metrics}]}``
GET      ``models``                              ``{"models": [{ref, run_id, services...}]}``
GET      ``services/<name>/lineage``             service → models → runs → environments
GET      ``environments/<name>/<version>``       format, Dockerfile, packages, size, runs
GET      ``environments/<name>/<version>/diff    unified diffs of packages and Dockerfile
         ?with=<version>``
=======  ======================================  ============================================

Metrics follow a run the way its log does: ``cursor`` is a byte offset in the run's metric
file; asked again with ``since`` set to it, the reply holds only the values logged since.
``live`` is read before the file, so once a reply has ``live`` false and no new values, the
series is complete. Non-finite values (NaN, infinities) come as ``null``.

``lab_path`` is where JupyterLab's file browser reaches the run's folder (relative to the
server's root), or ``null`` when it cannot: outside the root, or in a hidden folder such
as ``.mlmagic`` while the server hides those (``ContentsManager.allow_hidden``); the views
then download the file instead.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from mlmagic.run import untrusted
from mlmagic.run.listing import read_params, summarize
from mlmagic.server.handlers import (
    BadRequest,
    WorkspaceAccess,
    _Handler,
    api_errors,
    run_row,
)
from mlmagic.server.lineage import (
    environment_details,
    environment_diff,
    finite,
    model_rows,
    service_lineage,
)
from mlmagic.server.run_files import list_files, open_download
from mlmagic.workspace import Workspace

__all__ = ["MAX_COMPARED", "MAX_METRICS_CHUNK", "handlers", "lab_path", "read_metric_series"]

#: The most bytes of the metric file one reply reads (about 100,000 values).
MAX_METRICS_CHUNK = 8 << 20
#: The most runs one comparison holds.
MAX_COMPARED = 50
_FILE_CHUNK = 1 << 20


def read_metric_series(run_paths: Any, live: bool, status: str, since: int, limit: int) -> dict:
    """The reply of ``GET runs/<id>/metrics``: the values logged from byte ``since``."""
    records, cursor = untrusted.read_metrics(run_paths, since, limit=limit)
    return {
        "metrics": [
            {
                "name": r["name"],
                "step": r["step"],
                "value": finite(r["value"]),
                "time": r["time"],
                "rank": r.get("rank", 0),
            }
            for r in records
        ],
        "since": since,
        "cursor": cursor,
        "live": live,
        "status": status,
    }


def lab_path(folder: Path, root_dir: Path, allow_hidden: bool) -> str | None:
    """``folder`` relative to the server's root as JupyterLab names it, or ``None`` when
    the file browser cannot open it (outside the root; hidden while hidden files are)."""
    try:
        relative = folder.resolve().relative_to(root_dir.resolve())
    except ValueError:
        return None
    if not allow_hidden and any(part.startswith(".") for part in relative.parts):
        return None
    return relative.as_posix()


class _StudioHandler(_Handler):
    """A handler that also knows the server's root (for ``lab_path``)."""

    def initialize(  # type: ignore[override]
        self, access: WorkspaceAccess, root_dir: Path, allow_hidden: bool
    ) -> None:
        super().initialize(access)
        self.root_dir = root_dir
        self.allow_hidden = allow_hidden

    def workspace(self) -> Workspace | None:
        return self.access.get()


class RunOverviewHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        def overview() -> dict[str, Any]:
            run = self.access.run(run_id)
            ws = self.workspace()
            assert ws is not None
            record = run.record
            env = ws.store.environment(record.env_name or "", record.env_version)
            return {
                **run.details,
                "live": not record.status.is_terminal,
                "cancel_requested": record.cancel_requested,
                "params": {k: finite(v) for k, v in read_params(run.paths).items()},
                "models": model_rows(ws, run_id),
                "environment_version": None
                if env is None
                else {"ref": record.environment, "status": env["status"], "image": env["image"]},
            }

        self.reply(await asyncio.to_thread(overview))


class RunMetricsHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        since = self.int_argument("since", 0, 0, 1 << 62)
        limit = self.int_argument("limit", MAX_METRICS_CHUNK, 1, MAX_METRICS_CHUNK)
        assert since is not None and limit is not None

        def series() -> dict[str, Any]:
            run = self.access.run(run_id)
            status = run.status  # before the file: an ended run has every value written
            return read_metric_series(run.paths, not status.is_terminal, status.value, since, limit)

        self.reply(await asyncio.to_thread(series))


class RunFilesHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        def listing() -> dict[str, Any]:
            run = self.access.run(run_id, watch=False)
            where = lab_path(run.paths.root, self.root_dir, self.allow_hidden)
            return {**list_files(run.paths), "lab_path": where}

        self.reply(await asyncio.to_thread(listing))


class RunFileHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str, name: str) -> None:
        run = await asyncio.to_thread(self.access.run, run_id, watch=False)
        download = await asyncio.to_thread(open_download, run.paths, name)
        try:
            for header, value in download.headers.items():
                self.set_header(header, value)
            self.set_header("Content-Length", str(download.size))
            left = download.size  # what it held when opened: a live run may write more
            while left > 0:
                chunk = await asyncio.to_thread(download.file.read, min(_FILE_CHUNK, left))
                if not chunk:
                    break  # truncated meanwhile: the browser sees a short file
                left -= len(chunk)
                self.write(chunk)
                await self.flush()
        finally:
            download.file.close()
        self.finish(set_content_type=download.headers["Content-Type"])


class CompareHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        ids = [i for i in (self.get_query_argument("runs", "") or "").split(",") if i]
        if not 1 <= len(ids) <= MAX_COMPARED:
            raise BadRequest(f"runs={ids!r}: give 1 to {MAX_COMPARED} run ids, comma-separated.")

        def compare() -> dict[str, Any]:
            now = time.time()
            rows = []
            for run_id in dict.fromkeys(ids):
                run = self.access.run(run_id)
                record = run.record
                columns = summarize(run.paths)
                rows.append(
                    {
                        **run_row(record, now),
                        "params": {
                            k.removeprefix("param."): finite(v)
                            for k, v in columns.items()
                            if k.startswith("param.")
                        },
                        "metrics": {
                            k: finite(v) for k, v in columns.items() if not k.startswith("param.")
                        },
                    }
                )
            return {"runs": rows, "now": now}

        self.reply(await asyncio.to_thread(compare))


class ModelsHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        def listing() -> list[dict[str, Any]]:
            ws = self.workspace()
            return [] if ws is None else model_rows(ws)

        self.reply({"models": await asyncio.to_thread(listing)})


class ServiceLineageHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, name: str) -> None:
        def lineage() -> dict[str, Any]:
            return service_lineage(self._existing(), name)

        self.reply(await asyncio.to_thread(lineage))

    def _existing(self) -> Workspace:
        ws = self.workspace()
        if ws is None:
            raise BadRequest("The workspace has nothing yet: no service to follow.")
        return ws


class EnvironmentHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, name: str, version: str) -> None:
        number = _version(version)

        def details() -> dict[str, Any]:
            ws = self.workspace()
            if ws is None:
                raise BadRequest("The workspace has no environments yet.")
            return environment_details(ws, name, number)

        self.reply(await asyncio.to_thread(details))


class EnvironmentDiffHandler(_StudioHandler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, name: str, version: str) -> None:
        number = _version(version)
        other = _version(self.get_query_argument("with", "") or "")

        def diff() -> dict[str, Any]:
            ws = self.workspace()
            if ws is None:
                raise BadRequest("The workspace has no environments yet.")
            return environment_diff(ws, name, other, number)

        self.reply(await asyncio.to_thread(diff))


def _version(text: str) -> int:
    if not text.isdigit():
        raise BadRequest(f"{text!r} is not an environment version: give a number, like 2.")
    return int(text)


def handlers(
    base_url: str, access: WorkspaceAccess, root_dir: str | Path, allow_hidden: bool = False
) -> list[tuple[str, type, dict[str, Any]]]:
    """The studio's routes under ``base_url``, each handler given ``access``, the server's
    ``root_dir`` and whether its file browser shows hidden files (``allow_hidden``)."""
    api = url_path_join(base_url, "mlmagic", "api")
    run = r"runs/(?P<run_id>[^/]+)"
    routes: list[tuple[str, type]] = [
        (f"{run}/overview", RunOverviewHandler),
        (f"{run}/metrics", RunMetricsHandler),
        (f"{run}/files", RunFilesHandler),
        (f"{run}/files/(?P<name>.+)", RunFileHandler),
        ("compare", CompareHandler),
        ("models", ModelsHandler),
        (r"services/(?P<name>[^/]+)/lineage", ServiceLineageHandler),
        (r"environments/(?P<name>[^/]+)/(?P<version>[^/]+)", EnvironmentHandler),
        (r"environments/(?P<name>[^/]+)/(?P<version>[^/]+)/diff", EnvironmentDiffHandler),
    ]
    settings = {"access": access, "root_dir": Path(root_dir), "allow_hidden": allow_hidden}
    return [(url_path_join(api, path), handler, settings) for path, handler in routes]
