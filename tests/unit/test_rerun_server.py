"""The routes of the run details' "Re-run…", through a real Jupyter server, re-running a
real notebook run on the local target."""

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
    monkeypatch.setenv("MLMAGIC_TARGET", "local")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    return {"ServerApp": {"jpserver_extensions": {"mlmagic": True}}}


async def _refused(jp_fetch: Any, *path: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("mlmagic", "api", *path, **kwargs)
    response = caught.value.response
    assert response is not None
    message = json.loads(response.body)["error"]
    assert message and "\n" not in message
    return response.code, message


def _post(body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps(body)}


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

    reply = await jp_fetch("mlmagic", "api", "runs", first.id, "rerun")
    defaults = json.loads(reply.body)
    assert defaults["script"] == "train.ipynb" and defaults["notebook"] is True
    assert defaults["environment"] == f"re-env:{env.version}"
    assert (defaults["experiment"], defaults["parameters"]) == ("lab", {"lr": "0.5"})
    assert [e["name"] for e in defaults["environments"]] == ["re-env"]

    code, message = await _refused(
        jp_fetch, "runs", first.id, "rerun", **_post({"parameters": {"lr": "fast"}})
    )
    assert code == 400 and "'fast' is not a Python literal" in message
    code, message = await _refused(
        jp_fetch, "runs", first.id, "rerun", **_post({"script": "other.py"})
    )
    assert code == 400 and "Unknown fields ['script']" in message
    code, _ = await _refused(jp_fetch, "runs", "default_20240101-120000_abcdef", "rerun")
    assert code == 404
    assert len(ws.store.runs()) == 1

    reply = await jp_fetch(
        "mlmagic", "api", "runs", first.id, "rerun", **_post({"parameters": {"lr": "0.25"}})
    )
    assert reply.code == 201
    row = json.loads(reply.body)
    assert row["id"] != first.id and row["experiment"] == "lab"
    second = ws.runs.get(row["id"]).wait()
    assert second.status is Status.COMPLETED, second.error
    executed = nbformat.reads((second.paths.outputs / "train.ipynb").read_text(), 4)
    assert "first code, lr 0.25" in "".join(executed.cells[-1].outputs[0]["text"])
