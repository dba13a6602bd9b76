"""REST routes for notebooks as runs, under ``{base_url}mlmagic/api/``: the labextension's
"Submit as run…" dialog and the executed copy of a notebook run.

=======  =====================================  ============================================
GET      ``notebook-runs/defaults?path=P``      ``{"path", "parameters": {name: source} |
                                                null, "environments": [...], "targets",
                                                "target", "computes": [{name, kind,
                                                address}]}``: what the dialog starts from
                                                (where it can run: see
                                                :func:`~mlmagic.server.computes.run_places`)
POST     ``notebook-runs``                      submit the notebook ``path``; the body is
                                                ``{"path", "environment", "experiment",
                                                "parameters": {name: literal source},
                                                "gpus", "target" | "compute"}``; replies
                                                ``201`` with the run as the panel lists it
GET      ``runs/<id>/notebook``                 the executed copy as a Jupyter contents
                                                model (``type`` notebook, read-only)
=======  =====================================  ============================================

``path`` is relative to the server's root folder, as JupyterLab names files, and must stay
inside it. A submitted notebook's source folder is its own folder. Parameters come as the
text of a Python literal, as ``-p`` takes them, and the same refusals apply. A run goes to
one of this machine's targets (``target``) or to a compute of the workspace (``compute``),
not both; an unknown one is bad input. Errors map as in :mod:`mlmagic.server.handlers`
(bad input 400, unknown notebook, environment or run 404).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from mlmagic.exceptions import NotFoundError, RunError
from mlmagic.run.notebook import default_parameters, executed_copy, is_notebook
from mlmagic.run.run import Run
from mlmagic.run.untrusted import RefusedFile, read_run_file
from mlmagic.server.computes import check_place, run_places
from mlmagic.server.handlers import BadRequest, WorkspaceAccess, _Handler, api_errors, run_row
from mlmagic.workspace import Workspace

__all__ = ["notebook_handlers", "notebook_model", "submit_notebook"]

_TEXT_FIELDS = ("environment", "experiment", "gpus", "target", "compute")
_FIELDS = {"path", "parameters", *_TEXT_FIELDS}


def _notebook_path(root: Path, path: object) -> Path:
    """``path`` (relative to the server's root, POSIX) as a file inside ``root``."""
    if not isinstance(path, str) or not path.strip():
        raise BadRequest("Give the notebook's path (relative to the server's root folder).")
    relative = PurePosixPath(path.strip().lstrip("/"))
    if ".." in relative.parts or not is_notebook(str(relative)):
        raise BadRequest(f"{path!r} is not a notebook path inside the server's root folder.")
    full = root.joinpath(*relative.parts)
    if not full.is_file():
        raise NotFoundError(f"No notebook {path} in {root}.")
    return full


def submit_notebook(ws: Workspace, root: Path, body: dict[str, Any]) -> dict[str, Any]:
    """Submit the notebook ``body["path"]`` as a run; the run as the panel lists it.

    Raises
    ------
    BadRequest
        A field is missing or of the wrong kind, or not one this route takes; a target
        and a compute both, or one that is not there (:func:`.computes.check_place`); or
        ``Workspace.submit`` refused the input (a parameter that is not a literal, a
        notebook that is not valid JSON).
    mlmagic.exceptions.NotFoundError
        The notebook or the environment does not exist.
    """
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(f"Unknown fields {unknown}: this route takes {sorted(_FIELDS)}.")
    for name in _TEXT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name}: give text, not {type(value).__name__}.")
    notebook = _notebook_path(root, body.get("path"))
    environment = (body.get("environment") or "").strip()
    if not environment:
        raise BadRequest("Choose the environment the notebook runs in.")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise BadRequest('parameters: give {"name": "literal text"}, like {"lr": "0.01"}.')
    options: dict[str, Any] = {"experiment": (body.get("experiment") or "").strip() or "default"}
    for name in ("gpus", "target", "compute"):
        value = (body.get(name) or "").strip()
        if value:  # an empty field: the workspace's default
            options[name] = value
    check_place(ws, options.get("target"), options.get("compute"))
    try:
        run = ws.submit(
            notebook.name,
            environment,
            source_dir=notebook.parent,
            parameters=[f"{name}={text}" for name, text in parameters.items()],
            **options,
        )
    except RunError as exc:  # the user's input, as the magic would refuse it: 400
        raise BadRequest(str(exc)) from exc
    return run_row(run.record, time.time())


def notebook_model(run: Run) -> dict[str, Any]:
    """The executed copy of a notebook run as a Jupyter contents model (read-only)."""
    run_id = run.id
    script = run.record.config.script
    if not is_notebook(script):
        raise NotFoundError(f"Run {run_id} ran the script {script}, not a notebook.")
    relative = executed_copy(script)
    path = run.paths.root / relative
    try:
        data = read_run_file(run.paths, path)
    except RefusedFile as exc:
        raise NotFoundError(str(exc)) from exc
    if not data:
        raise NotFoundError(
            f"Run {run_id} has no executed copy yet ({relative}): it is written as the first "
            "cell runs."
        )
    try:
        content = json.loads(data)
    except ValueError as exc:
        raise NotFoundError(f"The executed copy of run {run_id} is not a notebook: {exc}") from exc
    stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat()
    name = PurePosixPath(relative).name
    return {
        "name": name,
        "path": f"{run_id}/{name}",
        "type": "notebook",
        "format": "json",
        "mimetype": None,
        "content": content,
        "writable": False,
        "created": stamp,
        "last_modified": stamp,
        "size": len(data),
    }


class NotebookDefaultsHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        path = self.get_query_argument("path", "")

        def defaults() -> dict[str, Any]:
            notebook = _notebook_path(self.root_dir, path)
            ws = self.access.get()
            environments = [] if ws is None else ws.environments.rows()
            return {
                "path": path,
                "parameters": default_parameters(notebook),
                "environments": environments,
                **run_places(ws),
            }

        self.reply(await asyncio.to_thread(defaults))

    def initialize(self, access: WorkspaceAccess, root_dir: Path) -> None:  # type: ignore[override]
        super().initialize(access)
        self.root_dir = root_dir


class NotebookSubmitHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadRequest("The request's body is not JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The request's body must be a JSON object.")

        def submit() -> dict[str, Any]:
            ws = self.access.get()
            if ws is None:
                # Submitting is what makes a workspace, as in a notebook.
                ws = Workspace(self.access.root)
            return submit_notebook(ws, self.root_dir, body)

        self.reply(await asyncio.to_thread(submit), status=201)

    def initialize(self, access: WorkspaceAccess, root_dir: Path) -> None:  # type: ignore[override]
        super().initialize(access)
        self.root_dir = root_dir


class ExecutedNotebookHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        self.reply(await asyncio.to_thread(lambda: notebook_model(self.access.run(run_id))))


def notebook_handlers(
    base_url: str, access: WorkspaceAccess, root_dir: str | Path
) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of this module under ``base_url``; ``root_dir`` is the server's root."""
    api = url_path_join(base_url, "mlmagic", "api")
    both = {"access": access, "root_dir": Path(root_dir).expanduser().resolve()}
    return [
        (url_path_join(api, "notebook-runs/defaults"), NotebookDefaultsHandler, both),
        (url_path_join(api, "notebook-runs"), NotebookSubmitHandler, both),
        (
            url_path_join(api, r"runs/(?P<run_id>[^/]+)/notebook"),
            ExecutedNotebookHandler,
            {"access": access},
        ),
    ]
