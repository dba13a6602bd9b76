"""Where "Submit as run…" sends a notebook, through a real Jupyter server: the places the
dialog offers (this machine's targets, the workspace's computes and their state), the
refusals of a place that is not there, and a compute passed through to the run.

The compute is a Ray cluster recorded in the workspace at an address where nothing
listens (a port held bound but not listening), so the run that reaches it fails with the
line that names the compute: proof the choice went all the way to the run, with no
cluster started here.
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from mlmagic import Environment, Workspace
from mlmagic.events import Status
from tests.unit import local_server
from tests.unit.local_server import call, post, refused

pytest_plugins = ["pytest_jupyter.jupyter_server"]


jp_server_config = local_server.jp_server_config


@pytest.fixture
def silent_address() -> Iterator[str]:
    """A Jobs API address that refuses connections: a port bound here, never listened on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture
def ws(jp_root_dir: Path, silent_address: str) -> Workspace:
    """The server's workspace, with an environment and the compute ``far`` recorded."""
    ws = Workspace(jp_root_dir / ".mlmagic")
    Environment.from_text("nb-env", "six\n").register(ws)
    ws.computes.attach("far", ray_address=silent_address, check=False)
    return ws


@pytest.fixture
def notebook(jp_root_dir: Path) -> str:
    folder = jp_root_dir / "work"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('hello')")]
    nbformat.write(nb, folder / "train.ipynb")
    return "work/train.ipynb"


async def test_the_dialog_offers_this_machines_targets_and_the_computes(
    jp_fetch, notebook, ws, silent_address
):
    code, reply = await call(jp_fetch, "notebook-runs", "defaults", params={"path": notebook})
    assert code == 200
    assert reply["targets"] == ["docker", "local"]
    assert reply["target"] == "local"  # the workspace's setting (MLMAGIC_TARGET)
    assert reply["computes"] == [{"name": "far", "kind": "ray", "address": silent_address}]


async def test_the_computes_route_says_how_each_compute_is(jp_fetch, ws, silent_address):
    code, reply = await call(jp_fetch, "computes")
    assert code == 200
    [row] = reply["computes"]
    assert (row["name"], row["kind"], row["address"]) == ("far", "ray", silent_address)
    assert row["state"].startswith("unreachable: the Ray cluster of the compute 'far'")
    assert "\n" not in row["state"] and row["nodes"] is None


async def test_no_workspace_lists_no_computes_and_makes_none(jp_fetch, jp_root_dir):
    code, reply = await call(jp_fetch, "computes")
    assert (code, reply) == (200, {"computes": []})
    assert not (jp_root_dir / ".mlmagic").exists()


async def test_a_place_that_is_not_there_is_refused_in_one_line(jp_fetch, notebook, ws):
    base = {"path": notebook, "environment": "nb-env"}
    assert await refused(jp_fetch, "notebook-runs", **post({**base, "compute": "near"})) == (
        400,
        "No compute named 'near' in this workspace (computes: far).",
    )
    assert await refused(
        jp_fetch, "notebook-runs", **post({**base, "target": "local", "compute": "far"})
    ) == (
        400,
        "Choose where it runs: the target 'local' (this machine) or the compute 'far', not both.",
    )
    assert await refused(jp_fetch, "notebook-runs", **post({**base, "target": "moon"})) == (
        400,
        "Unknown target 'moon': choose docker, local or auto (the workspace's setting), "
        "or a compute.",
    )
    assert await refused(jp_fetch, "notebook-runs", **post({**base, "compute": 3})) == (
        400,
        "compute: give text, not int.",
    )
    assert ws.store.runs() == []


async def test_the_chosen_compute_reaches_the_run(jp_fetch, notebook, ws):
    code, row = await call(
        jp_fetch,
        "notebook-runs",
        **post({"path": notebook, "environment": "nb-env", "target": "", "compute": "far"}),
    )
    assert code == 201
    assert row["target"] == "ray" and row["script"] == "train.ipynb"
    run = ws.runs.get(row["id"]).wait()
    assert run.record.config.compute == "far"
    assert run.status is Status.FAILED
    # The Ray target took it: it says the cluster does not answer, or, where this
    # Python has no Ray client (the fast tier's other Pythons), that it needs one.
    if importlib.util.find_spec("ray") is not None:
        assert "the Ray cluster of the compute 'far'" in (run.error or "")
        assert "does not answer" in (run.error or "")
    else:
        assert "Ray computes need Ray's client" in (run.error or ""), run.error


async def test_a_rerun_offers_the_places_and_can_leave_the_compute(
    jp_fetch, notebook, ws, silent_address
):
    code, row = await call(
        jp_fetch,
        "notebook-runs",
        **post({"path": notebook, "environment": "nb-env", "compute": "far"}),
    )
    assert code == 201
    first = ws.runs.get(row["id"]).wait()
    assert first.status is Status.FAILED

    code, defaults = await call(jp_fetch, "runs", first.id, "rerun")
    assert code == 200
    assert (defaults["target"], defaults["compute"]) == ("ray", "far")
    assert defaults["targets"] == ["docker", "local"]
    assert defaults["computes"] == [{"name": "far", "kind": "ray", "address": silent_address}]

    assert await refused(jp_fetch, "runs", first.id, "rerun", **post({"compute": "near"})) == (
        400,
        "No compute named 'near' in this workspace (computes: far).",
    )
    # Choosing one of this machine's targets leaves the compute: the re-run runs here.
    Environment.from_text("nb-env", "six\n").build(ws, show_output=False, target="local")
    code, row = await call(jp_fetch, "runs", first.id, "rerun", **post({"target": "local"}))
    assert code == 201 and row["target"] == "local"
    again = ws.runs.get(row["id"]).wait()
    assert again.record.config.compute is None
    assert again.status is Status.COMPLETED, again.error
