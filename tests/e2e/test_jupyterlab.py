"""What a person sees in JupyterLab 4 and Notebook 7: a real server, browser and engine.

Each test runs twice: on the lowest JupyterLab mlmagic declares and on the newest.

JupyterLab runs as a child process on 127.0.0.1 (random token, free port) in a folder of
its own, with mlmagic's server extension and labextension as the install left them.
Debian's Chromium, driven headless by Playwright, types the cells: ``%load_ext mlmagic``,
an ``%%environment`` cell and ``%submit --wait`` of a script that prints lines and logs
metrics on the real Docker engine. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.lab import (
    JupyterLab,
    built_labextension,
    chromium,
    chromium_problem,
    install_problem,
    new_notebook,
    run_cell,
)
from tests.e2e.versions import declared_jupyterlab, lowest_lab_python

pytestmark = pytest.mark.timeout(420)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

TRAIN = textwrap.dedent(
    """
    import mlmagic_run as run

    for epoch in range(1, 6):
        print(f"epoch {epoch}: loss {1 / epoch:.3f}", flush=True)
        run.log("loss", 1 / epoch, step=epoch)
    run.log("accuracy", 0.93)
    print("training done")
    """
)
ENVIRONMENT = "%%environment six-env\nsix\n"
SLOW = textwrap.dedent(
    """
    import time

    for tick in range(600):
        print(f"tick {tick}", flush=True)
        time.sleep(0.2)
    """
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", params=["lowest", "newest"])
def lab(
    request: pytest.FixtureRequest, docker_engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterLab]:
    """JupyterLab in a project folder holding train.py; stopped by PID at the end.

    Every test runs on the lowest JupyterLab mlmagic declares (an environment of its own,
    made once) and on the newest (the one installed with the package).
    """
    problem = chromium_problem()
    if problem:
        _unavailable(problem)
    lowest, _ = declared_jupyterlab()
    python: str | Path = sys.executable
    if request.param == "lowest":
        labextension = built_labextension()
        if labextension is None:
            _unavailable("mlmagic's labextension is not built (`pip install -e .` builds it)")
        python = lowest_lab_python(labextension)
    project = tmp_path_factory.mktemp("project")
    (project / "train.py").write_text(TRAIN)
    (project / "slow.py").write_text(SLOW)
    server = JupyterLab(project, tmp_path_factory.mktemp("jupyterlab"), python=python)
    server.start()
    try:
        problem = install_problem(server)
        if problem:
            _unavailable(problem)
        running = server.app_version()
        if request.param == "lowest":
            assert running == lowest, f"asked for JupyterLab {lowest}, got {running}"
        else:
            import jupyterlab

            assert running == jupyterlab.__version__ and running != lowest, running
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab: JupyterLab) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab; when the test fails, a screenshot of it, and the server's log."""
    context = browser.new_context(viewport={"width": 1440, "height": 960})
    page = context.new_page()
    failed = request.session.testsfailed
    try:
        yield page
    finally:
        if request.session.testsfailed > failed:
            _shot(page, f"failed-{request.node.name}.png")
            print(f"--- the end of JupyterLab's log ---\n{lab.log()}")
        context.close()


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _check_run_widget(cell: Any) -> str:
    """The finished run's widget as a person reads it; returns the run's id."""
    from playwright.sync_api import expect

    output = cell.locator(".jp-OutputArea-output").first  # the widget (then the Run's repr)
    expect(output.locator("text=Completed · exit 0")).to_be_visible()
    # The stepper: every stage done, none pending, failed or skipped.
    for stage in ("Queued", "Preparing", "Starting", "Running", "Finalizing"):
        expect(output.locator(".mlmagic-done", has_text=stage)).to_be_visible()
    expect(output.locator(".mlmagic-pending, .mlmagic-failed, .mlmagic-skipped")).to_have_count(0)
    # Log lines, in the log box.
    expect(output.locator("pre", has_text="epoch 5: loss 0.200")).to_be_visible()
    expect(output.locator("pre", has_text="training done")).to_be_visible()
    # Metrics: the latest values, and a sparkline of the series.
    metrics = output.locator("table", has_text="accuracy")
    expect(metrics).to_contain_text("0.93")
    expect(metrics.locator("tr", has_text="loss")).to_contain_text("0.2")
    expect(metrics.locator("tr", has_text="loss").locator("svg polyline")).to_have_count(1)
    run_id = output.locator("input[type=text]").input_value()
    assert re.fullmatch(r"\w+_\d{8}-\d{6}_[0-9a-f]{6}", run_id), run_id
    return str(run_id)


def _open_full_log(page: Any, cell: Any) -> str:
    """Click the widget's "full log" link; the text of the tab it opens."""
    link = cell.locator(".jp-OutputArea-output a", has_text="full log").first
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    text = str(tab.locator("body").inner_text())
    tab.close()
    return text


def _saved_widget_output(page: Any, lab: JupyterLab, path: str, run_id: str) -> dict[str, str]:
    """Save the notebook (Ctrl+S) and return the text fallbacks of the run's widget."""
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=path).click()
    page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first.click()
    page.keyboard.press("Control+s")
    notebook = lab.root / path
    for _ in range(100):
        if run_id in notebook.read_text():
            break
        page.wait_for_timeout(100)
    outputs = [o for c in json.loads(notebook.read_text())["cells"] for o in c.get("outputs", [])]
    widget = "application/vnd.jupyter.widget-view+json"
    # nbformat keeps a text as a list of lines.
    (data,) = [
        {mime: "".join(text) for mime, text in o["data"].items() if mime != widget}
        for o in outputs
        if widget in o.get("data", {}) and run_id in "".join(o["data"]["text/plain"])
    ]
    return data


def test_a_run_in_jupyterlab_widget_and_side_panel(page: Any, lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    path = new_notebook(page, lab)
    run_cell(page, "%load_ext mlmagic")
    build = run_cell(page, ENVIRONMENT, timeout=300)
    expect(build.locator(".jp-OutputArea")).to_contain_text("six-env:1 ready")

    cell = run_cell(page, "%submit train.py --env six-env --experiment e2e --wait", timeout=180)
    run_id = _check_run_widget(cell)
    assert "IOPub message rate exceeded" not in page.content()
    cell.scroll_into_view_if_needed()
    _shot(page, "jupyterlab-run-widget.png")

    log = _open_full_log(page, cell)
    assert "epoch 1: loss 1.000" in log and log.rstrip().endswith("training done")

    # The side panel lists the environment and the run.
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlmagic-panel"]')
    panel = page.locator("#mlmagic-panel")
    tab.click()
    expect(panel).to_be_visible()
    expect(panel.locator(".mlmagic-environment", has_text="six-env")).to_contain_text("v1")
    row = panel.locator(f'.mlmagic-run[data-run-id="{run_id}"]')
    expect(row).to_contain_text("Completed")
    expect(row).to_contain_text("e2e")
    expect(panel.locator(".mlmagic-services")).to_contain_text("No services")
    _shot(page, "jupyterlab-side-panel.png")

    # Selecting the run opens its log in a main-area tab.
    row.click()
    log_view = page.locator(f'.mlmagic-log[data-run-id="{run_id}"]')
    expect(log_view.locator(".mlmagic-log-text")).to_contain_text("epoch 3: loss 0.333")
    expect(log_view.locator(".mlmagic-log-text")).to_contain_text("training done")
    expect(log_view.locator(".mlmagic-log-status")).to_contain_text("Completed")
    _shot(page, "jupyterlab-run-log.png")

    # The panel polls only while it is visible; the log of an ended run is not polled.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/mlmagic/api/" in r.url else None)
    tab.click()
    expect(panel).to_be_hidden()
    page.wait_for_timeout(300)
    requests.clear()
    page.wait_for_timeout(5000)
    assert requests == []
    tab.click()
    expect(panel).to_be_visible()
    page.wait_for_timeout(2500)
    assert any("/mlmagic/api/runs" in url for url in requests)

    # Saved, the notebook reads well without widgets (the state at the end of the run,
    # not at the moment the cell ran) and stays small.
    data = _saved_widget_output(page, lab, path, run_id)
    assert "Completed · exit 0" in data["text/plain"] and "accuracy 0.93" in data["text/plain"]
    assert "Completed · exit 0" in data["text/html"] and "accuracy" in data["text/html"]
    assert (lab.root / path).stat().st_size < 100_000


def test_a_run_in_notebook_7_and_shown_again(page: Any, lab: JupyterLab) -> None:
    notebook = lab.root / "classic.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "cells": [],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    page.goto(lab.url("/notebooks/classic.ipynb"))
    lab.wait_for_kernel("classic.ipynb")
    run_cell(page, "%load_ext mlmagic")
    run_cell(page, ENVIRONMENT, timeout=300)
    submit = "run = %submit train.py --env six-env --experiment nb7 --wait"
    cell = run_cell(page, submit, timeout=180)
    run_id = _check_run_widget(cell)
    _shot(page, "notebook7-run-widget.png")

    log = _open_full_log(page, cell)
    assert "epoch 5: loss 0.200" in log and log.rstrip().endswith("training done")

    # Shown again from the workspace: the same widget, with the whole history.
    again = run_cell(page, "%runs {run.id}")
    assert _check_run_widget(again) == run_id


def test_a_live_run_in_the_side_panel_its_log_tab_and_cancel(page: Any, lab: JupyterLab) -> None:
    from playwright.sync_api import expect

    path = new_notebook(page, lab)
    run_cell(page, "%load_ext mlmagic")
    run_cell(page, ENVIRONMENT, timeout=300)
    cell = run_cell(page, "live = %submit slow.py --env six-env --experiment live")
    widget = cell.locator(".jp-OutputArea-output").first
    expect(widget.locator(".mlmagic-current", has_text="Running")).to_be_visible(timeout=60_000)
    run_id = widget.locator("input[type=text]").input_value()
    # Another cell runs while the widget is fed from its thread.
    run_cell(page, "1 + 1")

    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlmagic-panel"]')
    tab.click()
    row = page.locator(f'#mlmagic-panel .mlmagic-run[data-run-id="{run_id}"]')
    expect(row).to_contain_text("Running")
    # The duration of a live run counts on by itself.
    duration = row.locator(".mlmagic-duration")
    first = duration.inner_text()
    expect(duration).not_to_have_text(first, timeout=5000)

    # Its log tab follows the run as it prints.
    row.click()
    text = page.locator(f'.mlmagic-log[data-run-id="{run_id}"] .mlmagic-log-text')
    expect(text).to_contain_text("tick 2")
    seen = text.inner_text().count("tick")
    expect(text).to_contain_text(f"tick {seen + 3}", timeout=10_000)
    _shot(page, "jupyterlab-live-run.png")

    # Cancel from the panel: the panel, the log tab and the notebook's widget all say so.
    row.locator("button", has_text="Cancel").click()
    expect(row).to_contain_text("Canceled", timeout=30_000)
    expect(row.locator("button")).to_have_count(0)
    log_view = page.locator(f'.mlmagic-log[data-run-id="{run_id}"]')
    expect(log_view.locator(".mlmagic-log-status")).to_contain_text("Canceled", timeout=10_000)
    expect(log_view.locator("button", has_text="Cancel")).to_be_hidden()
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=path).click()
    expect(widget).to_contain_text("Canceled", timeout=10_000)
    # Its final state went to its own cell, not to the cell that ran last.
    data = _saved_widget_output(page, lab, path, run_id)
    assert "Canceled" in data["text/plain"] and "Canceled" in data["text/html"]
