"""REST routes of the run details' "Re-run…", under ``{base_url}mlmagic/api/``.

=======  ======================  ===================================================
GET      ``runs/<id>/rerun``     what the dialog starts from: ``{"script", "notebook",
                                 "environment", "experiment", "parameters": {name:
                                 literal source}, "args": text, "gpus", "target",
                                 "compute", "tags": {key: value}, "environments",
                                 "targets", "computes"}`` (the last two: where a run
                                 can go, as :func:`.computes.run_places` says)
POST     ``runs/<id>/rerun``     a new run of the run's snapshot; the body holds the
                                 fields to change (those of ``GET``, less ``script``,
                                 ``notebook``, ``environments``, ``targets`` and
                                 ``computes``); replies ``201`` with the new run as
                                 the panel lists it
=======  ======================  ===================================================

``args`` is one line of text split as a shell would (``shlex``). A ``target`` or a
``compute`` moves the re-run (a target alone leaves the run's compute), not both; an unknown
one is bad input. Errors map as in :mod:`mlmagic.server.handlers` (bad input 400, unknown
run 404).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from mlmagic.exceptions import RunError
from mlmagic.run.notebook import is_notebook
from mlmagic.run.rerun import rerun_options
from mlmagic.run.run import Run
from mlmagic.server.computes import check_place, run_places
from mlmagic.server.handlers import BadRequest, WorkspaceAccess, _Handler, api_errors, run_row
from mlmagic.workspace import Workspace

__all__ = ["rerun_defaults", "rerun_handlers", "rerun_run"]

_TEXT_FIELDS = ("environment", "experiment", "gpus", "target", "compute")
_FIELDS = {*_TEXT_FIELDS, "parameters", "args", "tags"}


def rerun_defaults(ws: Workspace, run: Run) -> dict[str, Any]:
    """The run's options as the dialog shows them, with the workspace's environments
    and the places a run can go."""
    record = run.record
    places = run_places(ws)
    options = rerun_options(record)
    return {
        "script": record.config.script,
        "notebook": is_notebook(record.config.script),
        "environment": options["environment"],
        "experiment": options["experiment"],
        # As -p takes them: the text of a Python literal.
        "parameters": {name: repr(value) for name, value in options["parameters"].items()},
        "args": shlex.join(options["args"]),
        "gpus": options["gpus"],
        "target": options["target"],
        "compute": options["compute"],
        "tags": options["tags"],
        "environments": ws.environments.rows(),
        "targets": places["targets"],
        "computes": places["computes"],
    }


def _text_map(body: dict[str, Any], name: str) -> dict[str, str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f'{name}: give {{"name": "text"}}, like {{"lr": "0.01"}}.')
    return value


def rerun_run(ws: Workspace, run: Run, body: dict[str, Any]) -> dict[str, Any]:
    """Submit a re-run of ``run`` (of ``ws``) with the changes in ``body``; the new run's
    row.

    Raises
    ------
    BadRequest
        A field is not one this route takes or of the wrong kind, ``args`` is not
        shell-like text, a target and a compute both or one that is not there
        (:func:`.computes.check_place`), or the re-run refused the options.
    mlmagic.exceptions.NotFoundError
        The environment does not exist.
    """
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(f"Unknown fields {unknown}: this route takes {sorted(_FIELDS)}.")
    changes: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name}: give text, not {type(value).__name__}.")
        if value:  # an empty field keeps the run's value
            changes[name] = value.strip()
    check_place(ws, changes.get("target"), changes.get("compute"))
    parameters = _text_map(body, "parameters")
    if parameters is not None:
        changes["parameters"] = [f"{name}={text}" for name, text in parameters.items()]
    tags = _text_map(body, "tags")
    if tags is not None:
        changes["tags"] = tags
    args = body.get("args")
    if args is not None:
        if not isinstance(args, str):
            raise BadRequest("args: give the arguments as one line of text.")
        try:
            changes["args"] = shlex.split(args)
        except ValueError as exc:
            raise BadRequest(f"args: {exc}: close the quote, or escape it.") from exc
    try:
        new = run.rerun(**changes)
    except RunError as exc:  # the user's input, as the magic would refuse it: 400
        raise BadRequest(str(exc)) from exc
    return run_row(new.record, time.time())


class RerunHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self, run_id: str) -> None:
        def defaults() -> dict[str, Any]:
            run = self.access.run(run_id, watch=False)
            ws = self.access.get()
            assert ws is not None  # it holds the run
            return rerun_defaults(ws, run)

        self.reply(await asyncio.to_thread(defaults))

    @web.authenticated
    @authorized
    @api_errors
    async def post(self, run_id: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadRequest("The request's body is not JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The request's body must be a JSON object.")
        run = await asyncio.to_thread(self.access.run, run_id, watch=False)
        ws = self.access.get()
        assert ws is not None  # it holds the run
        self.reply(await asyncio.to_thread(rerun_run, ws, run, body), status=201)


def rerun_handlers(
    base_url: str, access: WorkspaceAccess
) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of this module under ``base_url``."""
    api = url_path_join(base_url, "mlmagic", "api")
    return [(url_path_join(api, r"runs/(?P<run_id>[^/]+)/rerun"), RerunHandler, {"access": access})]
