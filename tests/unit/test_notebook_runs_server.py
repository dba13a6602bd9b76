"""The routes of "Submit as run…", through a real Jupyter server, submitting a real
notebook run on the local target and reading its executed copy back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from mlmagic import Environment, Workspace
from mlmagic.events import Status
from mlmagic.widgets.render import JUPYTER_BASE_URL_VARIABLE

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for name in ("MLMAGIC_WORKSPACE", JUPYTER_BASE_URL_VARIABLE):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # The local target, with no engine to fall back on.
    monkeypatch.setenv("MLMAGIC_TARGET", "local")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    return {"ServerApp": {"jpserver_extensions": {"mlmagic": True}}}


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


async def _call(jp_fetch: Any, *path: str, **kwargs: Any) -> Any:
    reply = await jp_fetch("mlmagic", "api", *path, **kwargs)
    return reply.code, json.loads(reply.body)


async def _refused(jp_fetch: Any, *path: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("mlmagic", "api", *path, **kwargs)
    response = caught.value.response
    assert response is not None
    message = json.loads(response.body)["error"]
    assert message and "\n" not in message
    return response.code, message


async def test_the_dialog_starts_from_the_parameters_cell(jp_fetch, notebook, jp_root_dir):
    code, reply = await _call(jp_fetch, "notebook-runs", "defaults", params={"path": notebook})
    assert code == 200
    assert reply["parameters"] == {"lr": "0.1", "epochs": "2", "name": "'base'"}
    assert reply["environments"] == []
    assert await _refused(
        jp_fetch, "notebook-runs", "defaults", params={"path": "../outside.ipynb"}
    ) == (400, "'../outside.ipynb' is not a notebook path inside the server's root folder.")
    code, message = await _refused(
        jp_fetch, "notebook-runs", "defaults", params={"path": "work/none.ipynb"}
    )
    assert code == 404 and message.startswith("No notebook work/none.ipynb in ")


async def test_submit_runs_the_notebook_and_serves_its_executed_copy(
    jp_fetch, notebook, jp_root_dir
):
    ws = Workspace(jp_root_dir / ".mlmagic")
    Environment.from_text("nb-env", "six\n").build(ws, show_output=False)

    def post(body: dict[str, Any]) -> dict[str, Any]:
        return {"method": "POST", "body": json.dumps(body)}

    code, message = await _refused(
        jp_fetch,
        "notebook-runs",
        **post({"path": notebook, "environment": "nb-env", "parameters": {"lr": "fast"}}),
    )
    assert code == 400 and "'fast' is not a Python literal" in message
    assert ws.store.runs() == []

    code, row = await _call(
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

    code, model = await _call(jp_fetch, "runs", run.id, "notebook")
    assert code == 200
    assert model["type"] == "notebook" and model["writable"] is False
    assert model["path"] == f"{run.id}/train.ipynb"
    cells = model["content"]["cells"]
    assert cells[1]["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(cells[2]["outputs"][0]["text"]) == "lr is 0.5 name is lab\n"
