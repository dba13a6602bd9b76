"""Where a run can go, as the labextension offers it: this machine's targets and the
workspace's computes, under ``{base_url}mlmagic/api/``.

=======  ================  =========================================================
GET      ``computes``      ``{"computes": [{name, kind, address, state, nodes, CPUs,
                           GPUs, environment, storage}]}``, by name; ``state`` is
                           asked of each compute now (``up``, ``unreachable: ...``),
                           as ``%computes`` does
=======  ================  =========================================================

The route only reads: it never attaches, starts or removes a compute. Asking takes as
long as the slowest compute takes to answer (or to time out), so the "Submit as run…"
dialog opens from :func:`run_places` (the stored computes, no network) and shows each
compute's state once this route answers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from mlmagic.config import get_config
from mlmagic.server.handlers import BadRequest, WorkspaceAccess, _Handler, api_errors
from mlmagic.targets import machine_targets
from mlmagic.workspace import Workspace

__all__ = ["check_place", "compute_handlers", "compute_states", "run_places"]

# Each compute is asked over the network; a few at once keep one slow cluster from
# holding up the others' answers.
_ASKING = 8


def run_places(ws: Workspace | None) -> dict[str, Any]:
    """Where a run can go, without asking any compute: ``{"targets": [...],
    "target": the workspace's default or None, "computes": [{name, kind, address}]}``.

    ``target`` is the workspace's setting resolved as a submission resolves it (``auto``
    becomes ``docker`` when an engine answers, else ``local``); ``None`` while there is no
    workspace yet.
    """
    # The targets that run on this machine; the others are reached by choosing a
    # compute, which names its target itself.
    targets = list(machine_targets())
    if ws is None:
        setting = get_config().target
        return {
            "targets": targets,
            "target": setting if setting in targets else None,
            "computes": [],
        }
    return {
        "targets": targets,
        "target": ws.resolve_target(),
        "computes": [
            {"name": c.name, "kind": c.kind, "address": c.address} for c in ws.computes.all()
        ],
    }


def check_place(ws: Workspace, target: str | None, compute: str | None) -> None:
    """Refuse, in one line, a place a run cannot go: a target and a compute both, a
    target that is not one of this machine's (or ``auto``), or a compute the workspace
    does not have.

    Raises
    ------
    BadRequest
        As above; the message names what there is to choose from.
    """
    if target and compute:
        raise BadRequest(
            f"Choose where it runs: the target {target!r} (this machine) or the compute "
            f"{compute!r}, not both."
        )
    targets = machine_targets()
    if target and target not in (*targets, "auto"):
        raise BadRequest(
            f"Unknown target {target!r}: choose {', '.join(targets)} or auto (the "
            "workspace's setting), or a compute."
        )
    if compute:
        known = [c.name for c in ws.computes.all()]
        if compute not in known:
            names = ", ".join(known) if known else "none yet: attach one with %compute attach"
            raise BadRequest(f"No compute named {compute!r} in this workspace (computes: {names}).")


def compute_states(ws: Workspace | None) -> list[dict[str, Any]]:
    """Every compute of ``ws`` with its state asked now, by name (none without a
    workspace)."""
    if ws is None:
        return []
    computes = ws.computes.all()
    if not computes:
        return []
    with ThreadPoolExecutor(min(_ASKING, len(computes))) as pool:
        return list(pool.map(ws.computes.status, computes))


class ComputesHandler(_Handler):
    @web.authenticated
    @authorized
    @api_errors
    async def get(self) -> None:
        rows = await asyncio.to_thread(lambda: compute_states(self.access.get()))
        self.reply({"computes": rows})


def compute_handlers(
    base_url: str, access: WorkspaceAccess
) -> list[tuple[str, type, dict[str, Any]]]:
    """The routes of this module under ``base_url``."""
    api = url_path_join(base_url, "mlmagic", "api")
    return [(url_path_join(api, "computes"), ComputesHandler, {"access": access})]
