"""Notebooks on a Ray compute, without a cluster: the progress channel through the job's
log, the runner's line when the node lacks nbclient, and a made cluster too old to run
notebooks. (Real runs on a real cluster: ``tests/docker/test_ray.py``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

import mlmagic_notebook
from mlmagic import Environment
from mlmagic.computes.record import Compute
from mlmagic.events import Status
from mlmagic.run.paths import RunPaths
from mlmagic.targets.relayed import write_lines
from mlmagic.workspace import Workspace

_ROOT = Path(mlmagic_notebook.__file__).resolve().parent


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("print('hi')"))
    nbformat.write(nb, folder / "a.ipynb")
    return folder / "a.ipynb"


def test_the_runner_prints_progress_as_marker_lines_that_the_relay_takes_out(tmp_path):
    code = "import mlmagic_notebook as m; print('before'); m._progress('-', 2, 5)"
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("before\n@mlmagic:progress ")
    paths = RunPaths(tmp_path / "run")
    paths.create()
    write_lines(paths, [*out.splitlines(), "after"])
    assert paths.output_log.read_text() == "before\nafter\n"
    progress = json.loads(paths.progress.read_text())
    assert (progress["cell"], progress["cells"]) == (2, 5)


def test_a_python_without_nbclient_fails_in_one_line_saying_what_to_install(tmp_path):
    notebook = _notebook(tmp_path)
    # -S: no site-packages, as on a node where nothing was installed for notebooks.
    env = {k: v for k, v in os.environ.items() if k != "MLMAGIC_NOTEBOOK_DEPS"}
    out = subprocess.run(
        [sys.executable, "-S", "-m", "mlmagic_notebook", "--output", "o.ipynb", notebook.name],
        env={**env, "PYTHONPATH": str(_ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"cannot run a notebook: {sys.executable} has no module nb")
    assert lines[0].endswith("pip install nbclient ipykernel")
    assert not (tmp_path / "o.ipynb").exists()


def test_a_made_cluster_without_the_notebook_layer_fails_the_run_in_preparing(tmp_path):
    ws = Workspace(tmp_path / ".mlmagic")
    # As a cluster made before the notebook layer was added is stored: no `notebooks`.
    old = Compute(
        name="old", kind="ray", address="http://127.0.0.1:1", network="n", environment="e:1"
    )
    options = {k: v for k, v in old.options().items() if k != "notebooks"}
    ws.store.insert_compute(old.name, old.kind, old.address, options)
    notebook = _notebook(tmp_path)
    run = ws.submit(
        notebook.name, Environment.from_text("e", "six\n"), compute="old", source_dir=tmp_path
    ).wait()
    assert run.status is Status.FAILED
    assert "the compute 'old' was started by an mlmagic that did not add nbclient" in (
        run.error or ""
    )
    assert "%compute down old, then %compute up old --env e:1" in (run.error or "")
