"""Notebooks submitted as runs, executed for real on both targets (containers and venvs).

Each test submits a real notebook, which a real kernel of the environment's Python
executes; the assertions read the executed copy the run wrote and the run's record.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from mlmagic import Environment
from mlmagic.events import RunEventKind, Status


@pytest.fixture
def workspace(target_workspace):
    return target_workspace


@pytest.fixture
def env(workspace):
    return Environment.from_text("nb-env", "six\n").build(workspace, show_output=False)


def _notebook(folder: Path, name: str, *cells: tuple[str, str] | str) -> str:
    """A notebook of code cells; a ``(source, tag)`` pair is a tagged cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    nb.cells.append(nbformat.v4.new_markdown_cell("# A notebook run"))
    for cell in cells:
        source, tag = cell if isinstance(cell, tuple) else (cell, None)
        metadata = {"tags": [tag]} if tag else {}
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))
    nbformat.write(nb, folder / name)
    return name


def _executed(run, name: str) -> nbformat.NotebookNode:
    return nbformat.read(run.paths.outputs / name, as_version=4)


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_parameters_are_injected_and_every_cell_streams_with_metrics(
    workspace, env, tmp_path, target
):
    name = _notebook(
        tmp_path,
        "train.ipynb",
        ("lr = 0.1\nepochs = 1\noptimizer = 'sgd'", "parameters"),
        "import mlmagic_run as run\n"
        "for epoch in range(epochs):\n"
        "    run.log('loss', lr / (epoch + 1))\n"
        "print(f'lr={lr} epochs={epochs} optimizer={optimizer}')",
        "import sys\nprint('to stderr', file=sys.stderr)\n6 * 7",
    )
    run = workspace.submit(
        name, env, source_dir=tmp_path, parameters={"lr": 0.01, "epochs": 3, "optimizer": "adam"}
    )
    events = list(run.events())
    assert run.status is Status.COMPLETED, run.error
    progress = [(e.step, e.total) for e in events if e.kind is RunEventKind.PROGRESS]
    # Four code cells: the parameters, the injected one, and the two that follow.
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    log = run.logs()
    assert "[mlmagic] cell 3/4" in log
    assert "lr=0.01 epochs=3 optimizer=adam" in log
    assert "to stderr" in log and "42" in log

    executed = _executed(run, "train.ipynb")
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata["tags"]
    assert code[1].metadata["tags"] == ["injected-parameters"]
    assert "lr = 0.01" in code[1].source and "optimizer = 'adam'" in code[1].source
    assert _text(code[2]) == "lr=0.01 epochs=3 optimizer=adam\n"
    assert [c.execution_count for c in code] == [1, 2, 3, 4]
    assert executed.metadata["mlmagic"]["status"] == "completed"
    assert executed.metadata["mlmagic"]["parameters"]["epochs"] == 3
    assert list(run.metrics["value"]) == [0.01, 0.005, 0.01 / 3]
    assert run.record.config.parameters == {"lr": 0.01, "epochs": 3, "optimizer": "adam"}


def test_a_failing_cell_fails_the_run_naming_it_and_keeps_the_cells_before(
    workspace, env, tmp_path, target
):
    name = _notebook(
        tmp_path,
        "fails.ipynb",
        "print('first ran')",
        "raise ValueError('lr must be positive')",
        "print('never runs')",
    )
    run = workspace.submit(name, env, source_dir=tmp_path).wait()
    assert run.status is Status.FAILED
    assert "cell 2/3 failed: ValueError: lr must be positive" in run.error
    code = [c for c in _executed(run, "fails.ipynb").cells if c.cell_type == "code"]
    assert _text(code[0]) == "first ran\n"
    assert [o.ename for o in code[1].outputs if o.output_type == "error"] == ["ValueError"]
    assert code[2].outputs == [] and code[2].execution_count is None
    assert _executed(run, "fails.ipynb").metadata["mlmagic"]["failed_cell"] == 2


def test_a_kernel_that_dies_fails_the_run_naming_the_cell(workspace, env, tmp_path, target):
    name = _notebook(tmp_path, "dies.ipynb", "print('alive')", "import os\nos._exit(3)")
    run = workspace.submit(name, env, source_dir=tmp_path).wait()
    assert run.status is Status.FAILED
    assert "cell 2/2 failed: the kernel died" in run.error


def test_cancel_in_the_middle_keeps_the_cells_that_ran(workspace, env, tmp_path, target):
    name = _notebook(
        tmp_path,
        "slow.ipynb",
        "print('first ran')",
        "import time\nprint('second started', flush=True)\ntime.sleep(300)",
        "print('never runs')",
    )
    run = workspace.submit(name, env, source_dir=tmp_path)
    for event in run.events():
        if event.kind is RunEventKind.LOG and "second started" in event.message:
            break
    run.cancel()
    run.wait()
    assert run.status is Status.CANCELED
    executed = _executed(run, "slow.ipynb")
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert _text(code[0]) == "first ran\n"
    assert code[2].outputs == []
    assert executed.metadata["mlmagic"]["status"] == "canceled"


def test_a_notebook_without_a_parameters_cell_gets_them_first_with_a_note(
    workspace, env, tmp_path, target
):
    name = _notebook(tmp_path, "plain.ipynb", "print('seed is', seed)")
    run = workspace.submit(name, env, source_dir=tmp_path, parameters=["seed=7"]).wait()
    assert run.status is Status.COMPLETED, run.error
    assert "no cell tagged 'parameters'" in run.logs()
    code = [c for c in _executed(run, "plain.ipynb").cells if c.cell_type == "code"]
    assert code[0].metadata["tags"] == ["injected-parameters"]
    assert _text(code[1]) == "seed is 7\n"
    # The executed copy is a notebook JupyterLab opens: valid nbformat.
    nbformat.validate(_executed(run, "plain.ipynb"))
    assert json.loads((run.paths.outputs / "plain.ipynb").read_text())["nbformat"] == 4


def test_a_distributed_notebook_runs_on_every_rank_and_keeps_rank_0s_copy(
    workspace, env, tmp_path, target
):
    from mlmagic.distributed.config import distribution

    name = _notebook(
        tmp_path,
        "ranks.ipynb",
        "import os\nrank = os.environ['MLMAGIC_RANK']\nprint('notebook on rank', rank)",
    )
    run = workspace.submit(
        name, env, source_dir=tmp_path, distributed=distribution("pytorch", nodes=2)
    ).wait()
    assert run.status is Status.COMPLETED, run.error
    log = run.logs()
    assert "notebook on rank 0" in log and "notebook on rank 1" in log
    code = [c for c in _executed(run, "ranks.ipynb").cells if c.cell_type == "code"]
    assert _text(code[0]) == "notebook on rank 0\n"
    assert run.files() == ["outputs/ranks.ipynb"]
