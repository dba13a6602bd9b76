""" "Submit as run…" in a real JupyterLab and browser: submit the open notebook from its
toolbar with a changed parameter, see the run complete in the side panel, and open the
executed copy the run wrote. The dialog's Where offers this machine's targets and the
workspace's computes, each compute's state asked of it once the dialog is open (the one
stored here is a Ray cluster's address where nothing listens: no cluster is started).

The server runs this checkout's labextension build (put first on ``JUPYTER_PATH``) and
server extension, on the lowest JupyterLab mlmagic declares and on the newest; the run
goes to the local target (a uv venv and a real kernel of its Python), so no image is
built here.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from mlmagic import Environment, Workspace
from tests.e2e.lab import JupyterLab, built_labextension, chromium, chromium_problem
from tests.e2e.versions import lowest_lab_python

pytestmark = pytest.mark.timeout(600)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Training"),
        nbformat.v4.new_code_cell("lr = 0.1\nepochs = 2", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import mlmagic_run as run\n"
            "for epoch in range(epochs):\n"
            "    run.log('loss', lr / (epoch + 1))\n"
            "print(f'trained with lr={lr} for {epochs} epochs')"
        ),
    ]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def silent_address() -> Iterator[str]:
    """A Jobs API address that refuses connections: a port bound here, never listened on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture(scope="module", params=["lowest", "newest"])
def lab(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    silent_address: str,
) -> Iterator[JupyterLab]:
    """JupyterLab on the lowest JupyterLab mlmagic declares and on the newest."""
    problem = chromium_problem()
    if problem:
        _unavailable(problem)
    labextension = built_labextension()
    if labextension is None or not str(labextension).startswith(str(Path.cwd())):
        _unavailable("this checkout's labextension is not built (cd labextension && jlpm build)")
    jupyter_path = tmp_path_factory.mktemp("jupyter-path")
    (jupyter_path / "labextensions").mkdir()
    (jupyter_path / "labextensions" / "mlmagic").symlink_to(labextension)
    project = tmp_path_factory.mktemp("project")
    _write_notebook(project / "train.ipynb")
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "MLMAGIC_TARGET", "MLMAGIC_VENV_DIR")}
    os.environ.update(
        JUPYTER_PATH=str(jupyter_path),
        MLMAGIC_TARGET="local",
        MLMAGIC_VENV_DIR=str(tmp_path_factory.mktemp("venvs")),
    )
    python = lowest_lab_python(labextension) if request.param == "lowest" else sys.executable
    server = JupyterLab(project, tmp_path_factory.mktemp("jupyterlab"), python=python)
    try:
        # The environment and the compute the dialog offers, made as a notebook would.
        ws = Workspace(project / ".mlmagic")
        Environment.from_text("six-env", "six\n").build(ws, show_output=False)
        ws.computes.attach("far", ray_address=silent_address, check=False)
        server.start()
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def page(lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Any]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 960})
        page = context.new_page()
        failed = request.session.testsfailed
        try:
            yield page
        finally:
            if request.session.testsfailed > failed:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / f"failed-{request.node.name}.png"))
                print(f"--- the end of JupyterLab's log ---\n{lab.log()}")
            context.close()


def test_submit_the_open_notebook_from_its_toolbar_and_open_the_executed_copy(
    page: Any, lab: JupyterLab
) -> None:
    from playwright.sync_api import expect

    page.goto(lab.url("/lab/tree/train.ipynb"))
    button = page.locator(".jp-NotebookPanel:visible .mlmagic-submit-button")
    button.click(timeout=60_000)

    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Submit train.ipynb as a run")
    parameters = dialog.locator("textarea[name=parameters]")
    # Pre-filled from the cell tagged "parameters".
    expect(parameters).to_have_value("lr = 0.1\nepochs = 2")
    expect(dialog.locator("select[name=environment]")).to_have_value("six-env")
    # Where: this machine's targets, the workspace's default chosen, then the computes,
    # each with its state once the dialog has asked.
    where = dialog.locator("select[name=where]")
    expect(where).to_have_value("target:local")
    assert where.locator("option").evaluate_all("os => os.map(o => o.value)") == [
        "target:docker",
        "target:local",
        "compute:far",
    ]
    far = where.locator('option[value="compute:far"]')
    expect(far).to_have_text("far (ray: unreachable)", timeout=30_000)
    expect(far).to_have_attribute("title", re.compile(r"does not answer"))
    parameters.fill("lr = 0.5\nepochs = 3")
    dialog.locator("input[name=experiment]").fill("from-lab")
    dialog.locator("button", has_text="Submit").click()

    # The run shows in the side panel, and completes there.
    row = page.locator("#mlmagic-panel .mlmagic-run").first
    expect(row).to_contain_text("Completed", timeout=240_000)
    run_id = row.get_attribute("data-run-id")
    assert run_id and run_id.startswith("from-lab_")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-notebook-run.png"))

    # The executed copy opens from the panel as a notebook, with the injected values and
    # their output.
    row.locator("button", has_text="Notebook").click()
    executed = page.locator(".jp-NotebookPanel:visible")
    expect(executed).to_contain_text("trained with lr=0.5 for 3 epochs", timeout=60_000)
    expect(executed).to_contain_text("# Parameters")
    # A copy in a run, not in the server's folder: it has no Submit button of its own.
    expect(executed.locator(".mlmagic-submit-button")).to_have_count(0)
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")).to_contain_text(
        "train.ipynb"
    )

    # And as the run widget's "open executed notebook" link opens it.
    page.goto(lab.url(f"/lab?mlmagic-run={run_id}/train.ipynb"))
    executed = page.locator(".jp-NotebookPanel:visible")
    expect(executed).to_contain_text("trained with lr=0.5 for 3 epochs", timeout=60_000)

    # Sent to the compute instead, the run goes there, as a Ray job, and fails: the
    # cluster does not answer (or, on a server Python without Ray's client, that is missing).
    page.goto(lab.url("/lab/tree/train.ipynb"))
    page.locator(".jp-NotebookPanel:visible .mlmagic-submit-button").click(timeout=60_000)
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select[name=where]").select_option("compute:far")
    dialog.locator("input[name=experiment]").fill("to-far")
    dialog.locator("button", has_text="Submit").click()
    row = page.locator("#mlmagic-panel .mlmagic-run").first
    expect(row).to_have_attribute("data-run-id", re.compile(r"^to-far_"), timeout=60_000)
    expect(row).to_contain_text("Failed", timeout=120_000)
    failed = Workspace(lab.root / ".mlmagic").runs.get(str(row.get_attribute("data-run-id")))
    assert (failed.record.config.compute, failed.record.target) == ("far", "ray")
    assert re.search(r"compute 'far'.*does not answer|Ray's client", failed.error or "")

    # Its Re-run starts where it ran, the compute; choosing this machine moves it off it.
    row.click()
    details = page.locator(f'.mlmagic-details[data-run-id="{failed.id}"]')
    expect(details).to_be_visible()
    details.locator("button.mlmagic-rerun").click()
    dialog = page.locator(".jp-Dialog")
    where = dialog.locator("select[name=where]")
    expect(where).to_have_value("compute:far")
    where.select_option("target:local")
    dialog.locator("button", has_text="Submit").click()
    new = page.locator(f'.mlmagic-details:visible:not([data-run-id="{failed.id}"])')
    expect(new).to_have_count(1)
    expect(new.locator(".mlmagic-details-header")).to_contain_text("Completed", timeout=240_000)
    again = Workspace(lab.root / ".mlmagic").runs.get(str(new.get_attribute("data-run-id")))
    assert (again.record.target, again.record.config.compute) == ("local", None)
