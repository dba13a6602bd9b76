"""The routes of "Submit as run…", through a real Jupyter server, submitting a real
notebook run on the local target and reading its executed copy back."""

from __future__ import annotations

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
def notebook(jp_root_dir: Path) -> str:
    folder = jp_root_dir / "work"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "lr = 0.1  # learning rate\nepochs: int = 2\nname = 'base'",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell("print('lr is', lr, 'name is', name)"),
    ]
    nbformat.write(nb, folder / "train.ipynb")
    return "work/train.ipynb"


async def test_the_dialog_starts_from_the_parameters_cell(jp_fetch, notebook, jp_root_dir):
    code, reply = await call(jp_fetch, "notebook-runs", "defaults", params={"path": notebook})
    assert code == 200
    assert reply["parameters"] == {"lr": "0.1", "epochs": "2", "name": "'base'"}
    assert reply["environments"] == []
    assert await refused(
        jp_fetch, "notebook-runs", "defaults", params={"path": "../outside.ipynb"}
    ) == (400, "'../outside.ipynb' is not a notebook path inside the server's root folder.")
    code, message = await refused(
        jp_fetch, "notebook-runs", "defaults", params={"path": "work/none.ipynb"}
    )
    assert code == 404 and message.startswith("No notebook work/none.ipynb in ")


async def test_submit_runs_the_notebook_and_serves_its_executed_copy(
    jp_fetch, notebook, jp_root_dir
):
    ws = Workspace(jp_root_dir / ".mlmagic")
    Environment.from_text("nb-env", "six\n").build(ws, show_output=False)

    code, message = await refused(
        jp_fetch,
        "notebook-runs",
        **post({"path": notebook, "environment": "nb-env", "parameters": {"lr": "fast"}}),
    )
    assert code == 400 and "'fast' is not a Python literal" in message
    assert ws.store.runs() == []

    code, row = await call(
        jp_fetch,
        "notebook-runs",
        **post(
            {
                "path": notebook,
                "environment": "nb-env",
                "experiment": "from-lab",
                "parameters": {"lr": "0.5", "name": "'lab'"},
            }
        ),
    )
    assert code == 201
    assert row["experiment"] == "from-lab" and row["script"] == "train.ipynb"
    run = ws.runs.get(row["id"]).wait()
    assert run.status is Status.COMPLETED, run.error

    code, model = await call(jp_fetch, "runs", run.id, "notebook")
    assert code == 200
    assert model["type"] == "notebook" and model["writable"] is False
    assert model["path"] == f"{run.id}/train.ipynb"
    cells = model["content"]["cells"]
    assert cells[1]["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(cells[2]["outputs"][0]["text"]) == "lr is 0.5 name is lab\n"
