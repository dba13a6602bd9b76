"""The studio views in a real JupyterLab and browser: run details, comparison, lineage,
environment versions, live charts and the dark theme.

JupyterLab (the newest, installed with the package) serves this checkout's built
labextension (``JUPYTER_PATH`` puts it first) and shows hidden folders, so the workspace's
``.mlmagic/runs/...`` files open in JupyterLab itself. The runs are records and folders
written through the workspace's API the way a run writes them (metrics through
``mlmagic_run.log``), so every view is checked against known values; a live run is a
record whose owner is this test process, and the test logs its metrics while the browser
watches. Charts are JupyterLab's Vega-Lite renderer drawing SVG: each logged value is one
symbol mark, counted here. Screenshots go to ``test-artifacts/screenshots/studio-*.png``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlmagic_run
from mlmagic import Environment, Workspace
from mlmagic.run.paths import RunPaths
from tests.e2e.lab import (
    JupyterLab,
    built_labextension,
    chromium,
    chromium_problem,
    install_problem,
)
from tests.unit.test_server import add_run, add_service

pytestmark = pytest.mark.timeout(300)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DONE = "digits_20240101-120000_aaaaaa"
OTHER = "digits_20240101-120500_cccccc"
LIVE = "digits_20240101-121000_bbbbbb"
PANEL_TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlmagic-panel"]'


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _log(paths: RunPaths, *values: tuple[str, int, float]) -> None:
    """Log ``(name, step, value)`` into the run's metric file, as its script would."""
    previous = os.environ.get("MLMAGIC_METRICS_FILE")
    os.environ["MLMAGIC_METRICS_FILE"] = str(paths.metrics)
    try:
        for name, step, value in values:
            mlmagic_run.log(name, value, step=step)
    finally:
        if previous is None:
            del os.environ["MLMAGIC_METRICS_FILE"]
        else:
            os.environ["MLMAGIC_METRICS_FILE"] = previous


def _finished(ws: Workspace, run_id: str, c: float, losses: list[float]) -> RunPaths:
    now = time.time()
    paths = add_run(ws, run_id, "Completed", started=now - 42, ended=now - 2, exit_code=0,
                    stages=("Queued", "Preparing", "Starting", "Running", "Finalizing"),
                    log=b"epoch 1\nepoch 2\ntraining done\n")  # fmt: skip
    paths.params.write_text(json.dumps({"C": c, "kernel": "rbf"}))
    _log(paths, *[("loss", step, loss) for step, loss in enumerate(losses, start=1)])
    _log(paths, ("accuracy", 1, 0.9 + c / 100))
    return paths


@pytest.fixture(scope="module")
def ws_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, JupyterLab]]:
    """A project with a workspace of runs, a model and a service; JupyterLab on it."""
    problem = chromium_problem()
    if problem:
        _unavailable(problem)
    labextension = built_labextension()
    own = Path(__file__).resolve().parents[2] / "mlmagic" / "labextension"
    if labextension != own.resolve():
        _unavailable("this checkout's labextension is not built (cd labextension && jlpm build)")
    project = tmp_path_factory.mktemp("project")
    ws = Workspace(project / ".mlmagic")
    done = _finished(ws, DONE, 0.5, [1.0, 0.6, 0.4, 0.3, 0.25])
    _finished(ws, OTHER, 2.0, [0.9, 0.5, 0.35])
    (done.outputs / "report.txt").write_text("accuracy 0.905 on the test set\n")
    (done.outputs / "model.pkl").write_bytes(b"\x80weights" * 1000)
    (done.logs / "train.log").write_text("epoch 1\n")
    ws.runs.get(DONE).register_model("digits", "outputs/model.pkl")
    add_service(ws, "digits-svc")  # serves digits:1
    # A second version of the environment, with its resolved packages, to diff with.
    ws.environments.register(Environment.from_text("six-env", "six\nrequests\n"))
    ws.store.update_environment("six-env", 1, packages=["numpy==1.26.0", "six==1.16.0"])
    ws.store.update_environment("six-env", 2, packages=["numpy==1.26.0", "six==1.17.0"])
    # This checkout's labextension first; hidden folders (.mlmagic) in the file browser.
    extra = tmp_path_factory.mktemp("jupyter-path")
    (extra / "labextensions").mkdir()
    (extra / "labextensions" / "mlmagic").symlink_to(labextension, target_is_directory=True)
    config = tmp_path_factory.mktemp("jupyter-config")
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ContentsManager": {"allow_hidden": True}})
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(extra))
        patch.setenv("JUPYTER_CONFIG_DIR", str(config))
        server = JupyterLab(project, tmp_path_factory.mktemp("jupyterlab"))
        server.start()
    try:
        problem = install_problem(server)
        if problem:
            _unavailable(problem)
        yield ws, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(ws_lab: tuple[Workspace, JupyterLab]) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, ws_lab: tuple[Workspace, JupyterLab], request: pytest.FixtureRequest
         ) -> Iterator[Any]:  # fmt: skip
    """JupyterLab afresh with the panel open; a screenshot and the server's log on failure."""
    from playwright.sync_api import expect

    _, lab = ws_lab
    # A machine shared with other work answers slowly: wait longer than Playwright's 5 s.
    expect.set_options(timeout=30_000)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    failed = request.session.testsfailed
    try:
        page.goto(lab.url("/lab?reset"))
        page.locator(PANEL_TAB).click(timeout=60_000)
        yield page
    finally:
        if request.session.testsfailed > failed:
            _shot(page, f"studio-failed-{request.node.name}.png")
            print(f"--- the end of JupyterLab's log ---\n{lab.log()}")
        context.close()
        expect.set_options(timeout=5_000)


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _marks(chart: Any) -> Any:
    """The value marks (one SVG symbol per logged value) of a chart."""
    return chart.locator("g.mark-symbol.role-mark path")


def _open_details(page: Any, run_id: str) -> Any:
    from playwright.sync_api import expect

    row = page.locator(f'#mlmagic-panel .mlmagic-run[data-run-id="{run_id}"]')
    row.click()
    details = page.locator(f'.mlmagic-details[data-run-id="{run_id}"]')
    expect(details).to_be_visible()
    return details


def test_a_finished_run_in_its_details_tab(page: Any) -> None:
    from playwright.sync_api import expect

    details = _open_details(page, DONE)
    header = details.locator(".mlmagic-details-header")
    expect(header).to_contain_text("Completed")
    expect(header).to_contain_text("six-env:1")
    expect(header).to_contain_text("train.py --C 0.5")
    for stage in ("Queued", "Preparing", "Starting", "Running", "Finalizing"):
        expect(details.locator(f'.mlmagic-timeline-stage[data-stage="{stage}"]')).to_be_visible()
    # One chart per metric, one mark per logged value.
    loss = details.locator('.mlmagic-chart[data-metric="loss"]')
    expect(_marks(loss)).to_have_count(5, timeout=30_000)
    expect(_marks(details.locator('.mlmagic-chart[data-metric="accuracy"]'))).to_have_count(1)
    expect(details.locator(".mlmagic-details-params")).to_contain_text("kernel")
    expect(details.locator(".mlmagic-details-params")).to_contain_text("rbf")
    files = details.locator(".mlmagic-details-files")
    expect(files.locator('.mlmagic-file[data-path="outputs/model.pkl"]')).to_contain_text("7.8 KiB")
    expect(files.locator('.mlmagic-file[data-path="logs/train.log"]')).to_contain_text("8 B")
    expect(details.locator('.mlmagic-model[data-model="digits:1"]')).to_contain_text("digits-svc")
    expect(details.locator(".mlmagic-log-text")).to_contain_text("training done")
    details.locator('.mlmagic-chart[data-metric="loss"]').focus()  # keyboard reachable
    _shot(page, "studio-run-details.png")

    # An output file opens in JupyterLab (the workspace is in its file browser here).
    files.locator('.mlmagic-file[data-path="outputs/report.txt"] button').click()
    editor = page.locator(".jp-FileEditor:visible")
    expect(editor).to_contain_text("accuracy 0.905 on the test set")
    _shot(page, "studio-output-file.png")

    # The dark theme: the charts are drawn again in Vega's dark colours.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=DONE).click()
    label = loss.locator("g.role-axis-title text").first
    light = label.get_attribute("fill")
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    page.locator(".lm-Menu-item", has_text="Theme").first.hover()
    page.get_by_role("menuitem", name="JupyterLab Dark", exact=True).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
    expect(label).not_to_have_attribute("fill", light or "", timeout=30_000)
    expect(_marks(loss)).to_have_count(5)
    _shot(page, "studio-run-details-dark.png")
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    page.locator(".lm-Menu-item", has_text="Theme").first.hover()
    page.get_by_role("menuitem", name="JupyterLab Light", exact=True).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "true")


def test_compare_two_runs(page: Any) -> None:
    from playwright.sync_api import expect

    panel = page.locator("#mlmagic-panel")
    for run_id in (DONE, OTHER):
        panel.locator(f'.mlmagic-run[data-run-id="{run_id}"] input.mlmagic-pick').check()
    # A run row opens from the keyboard too.
    panel.locator(f'.mlmagic-run[data-run-id="{OTHER}"]').press("Enter")
    expect(page.locator(f'.mlmagic-details[data-run-id="{OTHER}"]')).to_be_visible()
    panel.locator("button.mlmagic-compare-button").click()
    compare = page.locator(f'.mlmagic-compare[data-runs="{DONE},{OTHER}"]')
    table = compare.locator(".mlmagic-compare-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    # C differs and is highlighted; the kernel is the same and is not.
    expect(table.locator('th[data-column="param:C"]')).to_have_class(
        "mlmagic-compare-param mlmagic-differs"
    )
    expect(table.locator('th[data-column="param:kernel"]')).to_have_class("mlmagic-compare-param")
    expect(table.locator(f'tr[data-run-id="{OTHER}"] td[data-column="metric:loss"]')).to_have_text(
        "0.35"
    )
    # Sorted by the last loss, the run with the lower loss comes first.
    table.locator('th[data-column="metric:loss"] button').click()
    expect(table.locator("tbody tr").first).to_have_attribute("data-run-id", DONE)
    table.locator('th[data-column="metric:loss"] button').click()
    expect(table.locator("tbody tr").first).to_have_attribute("data-run-id", OTHER)
    # The loss chart overlays both runs: 5 + 3 values.
    loss = compare.locator('.mlmagic-chart[data-metric="loss"]')
    expect(_marks(loss)).to_have_count(8, timeout=30_000)
    _shot(page, "studio-compare.png")


def test_from_a_service_to_its_run_and_environment(page: Any) -> None:
    from playwright.sync_api import expect

    page.locator('#mlmagic-panel .mlmagic-service[data-service="digits-svc"]').click()
    lineage = page.locator('.mlmagic-lineage[data-service="digits-svc"]')
    chain = lineage.locator('.mlmagic-lineage-chain[data-model="digits:1"]')
    expect(chain).to_contain_text("six-env:1")
    _shot(page, "studio-lineage.png")
    chain.locator(f'button[data-run="{DONE}"]').click()
    details = page.locator(f'.mlmagic-details[data-run-id="{DONE}"]')
    expect(details.locator(".mlmagic-details-header")).to_contain_text("Completed")

    # From the run to its environment version, and a diff with nothing else to diff.
    details.locator(".mlmagic-details-header button", has_text="six-env:1").click()
    env = page.locator('.mlmagic-environment-view[data-environment="six-env:1"]')
    expect(env.locator(".mlmagic-dockerfile")).to_contain_text("FROM")
    expect(env.locator(f'.mlmagic-environment-runs button[data-run="{OTHER}"]')).to_be_visible()
    env.locator("select.mlmagic-diff-with").select_option("2")
    packages = env.locator('.mlmagic-diff-text[data-what="packages"]')
    expect(packages.locator(".mlmagic-diff-removed")).to_have_text("-six==1.16.0")
    expect(packages.locator(".mlmagic-diff-added")).to_have_text("+six==1.17.0")
    _shot(page, "studio-environment.png")
    # Back the other way: the models section of the panel links to the run.
    page.locator('#mlmagic-panel .mlmagic-model[data-model="digits:1"] button').first.click()
    expect(page.locator(f'.mlmagic-details[data-run-id="{DONE}"]')).to_be_visible()


def test_a_live_runs_chart_grows(page: Any, ws_lab: tuple[Workspace, JupyterLab]) -> None:
    from playwright.sync_api import expect

    ws, _ = ws_lab
    paths = add_run(ws, LIVE, "Running", started=time.time() - 3,
                    stages=("Queued", "Preparing", "Starting", "Running"))  # fmt: skip
    _log(paths, ("loss", 1, 1.0), ("loss", 2, 0.7))
    details = _open_details(page, LIVE)
    expect(details.locator(".mlmagic-details-header")).to_contain_text("Running")
    loss = details.locator('.mlmagic-chart[data-metric="loss"]')
    expect(_marks(loss)).to_have_count(2, timeout=30_000)
    for step in range(3, 6):
        _log(paths, ("loss", step, 1 / step))
        expect(_marks(loss)).to_have_count(step, timeout=15_000)
    _shot(page, "studio-live-run.png")
    ws.store.update_run(LIVE, status="Completed", ended=time.time(), exit_code=0)
    expect(details.locator(".mlmagic-details-header")).to_contain_text("Completed")


def test_rerun_a_finished_run_from_its_details(
    page: Any, ws_lab: tuple[Workspace, JupyterLab], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from mlmagic.config import MLMagic

    ws, _ = ws_lab
    # A real run on the local target (a venv and a process), made through the API.
    config = MLMagic()
    config.target = "local"
    local = Workspace(ws.root, config=config)
    env = Environment.from_text("rerun-env", "six\n").build(local, show_output=False)
    script = tmp_path / "train.py"
    script.write_text("import sys\nprint('first code', sys.argv[1:])\n")
    first = local.submit(
        "train.py", env, source_dir=tmp_path, experiment="again", args=["--seed", "1"]
    ).wait(timeout=240)
    assert first.status.value == "Completed", first.error
    # The folder changes afterwards: the re-run runs the code that ran.
    script.write_text("print('changed code')\n")

    details = _open_details(page, first.id)
    expect(details.locator(".mlmagic-details-header")).to_contain_text("Completed")
    details.locator("button.mlmagic-rerun").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f"Re-run train.py of {first.id}")
    # Pre-filled with the run's options; a script takes arguments, not parameters.
    expect(dialog.locator("select[name=environment]")).to_have_value(f"rerun-env:{env.version}")
    expect(dialog.locator("input[name=experiment]")).to_have_value("again")
    expect(dialog.locator("select[name=where]")).to_have_value("target:local")
    expect(dialog.locator("textarea[name=parameters]")).to_have_count(0)
    arguments = dialog.locator("input[name=args]")
    expect(arguments).to_have_value("--seed 1")
    arguments.fill("--seed 2")
    _shot(page, "studio-rerun-dialog.png")
    dialog.locator("button", has_text="Submit").click()

    # The new run's details tab opens, and it completes with the first run's code.
    new = page.locator(f'.mlmagic-details:visible:not([data-run-id="{first.id}"])')
    expect(new).to_have_count(1)
    new_id = new.get_attribute("data-run-id")
    assert new_id and new_id.startswith("again_") and new_id != first.id
    expect(new.locator(".mlmagic-details-header")).to_contain_text("Completed", timeout=240_000)
    expect(new.locator(".mlmagic-log-text")).to_contain_text("first code ['--seed', '2']")
    expect(new.locator(".mlmagic-log-text")).not_to_contain_text("changed code")
    assert ws.runs.get(new_id).record.config.args == ("--seed", "2")


def test_the_widgets_run_link_opens_the_details_tab(
    page: Any, ws_lab: tuple[Workspace, JupyterLab]
) -> None:
    from playwright.sync_api import expect

    from mlmagic.widgets.render import JUPYTER_BASE_URL_VARIABLE, run_details_html

    _, lab = ws_lab
    # The widget's link, as a kernel started by this server renders it, clicked in the page:
    # the tab opens here, not in a second JupyterLab.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(JUPYTER_BASE_URL_VARIABLE, "/")
        link = run_details_html(OTHER)
    page.evaluate(
        "html => { const div = document.createElement('div'); div.innerHTML = html;"
        " div.style.cssText = 'position:fixed;top:40%;left:40%;z-index:10000';"
        " document.body.append(div); }",
        link,
    )
    page.locator("a.mlmagic-details-link").click()
    expect(page.locator(f'.mlmagic-details[data-run-id="{OTHER}"]')).to_be_visible()
    assert len(page.context.pages) == 1
    # Opened in a new browser tab, JupyterLab's router opens it there.
    page.goto(lab.url(f"/lab?mlmagic-details={DONE}"))
    expect(page.locator(f'.mlmagic-details[data-run-id="{DONE}"]')).to_be_visible()
