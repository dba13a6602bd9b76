"""The routes of the run details' "Re-run…", through a real Jupyter server, re-running a
real notebook run on the local target."""

from __future__ import annotations

import nbformat

from mlmagic import Environment, Workspace
from mlmagic.events import Status
from tests.unit import local_server
from tests.unit.local_server import call, post, refused

pytest_plugins = ["pytest_jupyter.jupyter_server"]

jp_server_config = local_server.jp_server_config


async def test_a_rerun_carries_the_options_and_runs_the_snapshot(jp_fetch, jp_root_dir):
    folder = jp_root_dir / "work"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("lr = 0.1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('first code, lr', lr)"),
    ]
    nbformat.write(nb, folder / "train.ipynb")
    ws = Workspace(jp_root_dir / ".mlmagic")
    env = Environment.from_text("re-env", "six\n").build(ws, show_output=False)
    first = ws.submit(
        "train.ipynb", env, source_dir=folder, experiment="lab", parameters={"lr": 0.5}
    ).wait()
    assert first.status is Status.COMPLETED, first.error
    nb.cells[1].source = "print('changed code')"
    nbformat.write(nb, folder / "train.ipynb")

    code, defaults = await call(jp_fetch, "runs", first.id, "rerun")
    assert code == 200
    assert defaults["script"] == "train.ipynb" and defaults["notebook"] is True
    assert defaults["environment"] == f"re-env:{env.version}"
    assert (defaults["experiment"], defaults["parameters"]) == ("lab", {"lr": "0.5"})
    assert [e["name"] for e in defaults["environments"]] == ["re-env"]

    code, message = await refused(
        jp_fetch, "runs", first.id, "rerun", **post({"parameters": {"lr": "fast"}})
    )
    assert code == 400 and "'fast' is not a Python literal" in message
    code, message = await refused(
        jp_fetch, "runs", first.id, "rerun", **post({"script": "other.py"})
    )
    assert code == 400 and "Unknown fields ['script']" in message
    code, _ = await refused(jp_fetch, "runs", "default_20240101-120000_abcdef", "rerun")
    assert code == 404
    assert len(ws.store.runs()) == 1

    code, row = await call(
        jp_fetch, "runs", first.id, "rerun", **post({"parameters": {"lr": "0.25"}})
    )
    assert code == 201
    assert row["id"] != first.id and row["experiment"] == "lab"
    second = ws.runs.get(row["id"]).wait()
    assert second.status is Status.COMPLETED, second.error
    executed = nbformat.reads((second.paths.outputs / "train.ipynb").read_text(), 4)
    assert "first code, lr 0.25" in "".join(executed.cells[-1].outputs[0]["text"])
