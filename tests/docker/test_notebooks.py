"""The demo notebooks of ``notebooks/``, executed headless with nbclient, outputs checked.

Each target (``docker``, ``local``) gets one temporary copy of ``notebooks/``, shared by
its notebooks the way a user's folder is: the outputs and the workspace stay out of the
repository, and names that clash between notebooks would show. The kernel is this
interpreter's (``python -m ipykernel_launcher``), with the target and the base image set
through the environment, as a user would set them.

``gpu-pytorch.ipynb`` installs PyTorch, a download of several GB from PyPI (the CUDA
build, which PyPI serves on CPU-only hosts too): it runs to the end on the local target
when a CPU wheel of PyTorch lies in a ``PIP_FIND_LINKS`` folder (as on this project's
machines), and everywhere with ``MLMAGIC_TEST_TORCH=1``; otherwise its cells before the
PyTorch build run, and every
notebook's cells are checked statically (syntax, and the options of mlmagic's magics).
The kernel inherits this process's environment, so index settings reach the builds: on
the local target ``UV_FIND_LINKS`` and ``UV_CONSTRAINT`` can point uv at a CPU wheel of
PyTorch in a local folder, for example.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from tests.conftest import BASE_IMAGE

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = [
    "quickstart.ipynb",
    "environments.ipynb",
    "gpu-pytorch.ipynb",
    "azureml-migration.ipynb",
    "azureml-deploy.ipynb",
    "distributed.ipynb",
]
#: Seconds one cell may take (an image build with scikit-learn, a service start).
CELL_TIMEOUT = 900
#: A Docker endpoint that nothing answers, so no test of the local target uses Docker.
NO_DOCKER = "unix:///nonexistent/docker.sock"

TARGETS = ["docker", "local"]


# -- running a notebook -----------------------------------------------------------------------


def kernel_env(
    *, python: str | Path, workspace: Path, updates: Mapping[str, str | None]
) -> dict[str, str]:
    """This process's environment for a kernel of ``python`` on ``workspace``.

    The interpreter's ``bin`` folder goes first on ``PATH`` (as when Jupyter is started
    from an activated environment), so ``!mlmagic`` in a cell is that Python's. A value
    of ``None`` in ``updates`` removes the variable.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    env["MLMAGIC_WORKSPACE"] = str(workspace)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    for name, value in updates.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def execute(
    path: Path,
    *,
    python: str | Path,
    env: Mapping[str, str],
    stop_before_tag: str | None = None,
) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` in its folder with a kernel of ``python``.

    ``path`` is in a temporary folder: the kernel's spec and the executed notebook (for a
    look after a failure) go next to that folder, in ``kernels/`` and ``executed/``. With
    ``stop_before_tag`` only the cells before the first cell with that tag run.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        A cell raised; the message has the cell and its traceback.
    """
    nb = nbformat.read(path, as_version=4)
    if stop_before_tag is not None:
        tagged = [i for i, c in enumerate(nb.cells) if stop_before_tag in tags(c)]
        nb.cells = nb.cells[: tagged[0]] if tagged else nb.cells
    kernels = path.parent.parent / "kernels"
    spec = kernels / "mlmagic-test"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python ({python})",
                "language": "python",
            }
        )
    )
    manager = AsyncKernelManager(
        kernel_name="mlmagic-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
    )
    client = NotebookClient(
        nb,
        km=manager,
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    executed = path.parent.parent / "executed"
    executed.mkdir(exist_ok=True)
    try:
        # The client does not own a kernel manager it is given: have it shut the kernel down.
        client.execute(env=dict(env), cleanup_kc=True)
    finally:
        nbformat.write(nb, executed / path.name)
    return nb


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def cell(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    """The one cell tagged ``tag``."""
    found = [c for c in nb.cells if tag in tags(c)]
    assert len(found) == 1, f"{len(found)} cells tagged {tag!r}"
    return found[0]


def text(nb: nbformat.NotebookNode, tag: str) -> str:
    """What the cell tagged ``tag`` printed and showed, as plain text."""
    parts = []
    for output in cell(nb, tag).outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def html_rows(nb: nbformat.NotebookNode, tag: str) -> int:
    """The rows of the DataFrame the cell tagged ``tag`` shows."""
    (result,) = [o for o in cell(nb, tag).outputs if o.output_type == "execute_result"]
    body = result.data["text/html"].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr")


def all_text(nb: nbformat.NotebookNode) -> str:
    """Everything every cell printed (stdout and stderr) and showed as plain text."""
    parts = []
    for c in nb.cells:
        for output in c.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def assert_no_errors(nb: nbformat.NotebookNode) -> None:
    for c in nb.cells:
        for output in c.get("outputs", []):
            assert output.output_type != "error", f"{output.ename}: {output.evalue}"
            if output.output_type == "stream":
                assert "Traceback (most recent call last)" not in output.text, output.text


# -- the checks of each notebook (shared with tests/docker/test_binder.py) ---------------------


def check_quickstart(nb: nbformat.NotebookNode, *, target: str, runs: int = 2) -> None:
    """The whole flow ran: two runs compared, the better model served and called."""
    assert_no_errors(nb)
    assert f"target: {target}" in all_text(nb)
    assert html_rows(nb, "runs-table") == runs
    table = text(nb, "runs-table")
    assert "0.50" in table and "0.05" in table, table
    assert "Completed" in text(nb, "best-run")
    predicted = [line.split() for line in text(nb, "predictions").splitlines()[1:]]
    assert len(predicted) == 5, predicted
    # C=0.5 scores 99.6% on the held-out digits: five of five is expected.
    assert all(p == t for _, p, t in predicted), predicted
    assert "Empty DataFrame" in text(nb, "cleanup")


# -- fixtures ---------------------------------------------------------------------------------


#: What running the notebooks in the repository leaves there, not to be copied.
LEFT_BEHIND = (
    ".mlmagic",
    ".ipynb_checkpoints",
    "score.py",
    "holdout.json",
    "digits-project",
    "deploy-project",
)


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    """``docker`` (skipped without an engine, failed under CI=true) or ``local``."""
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
    return str(request.param)


@pytest.fixture(scope="module")
def folder(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The target's copy of notebooks/; what a failed notebook left running is deleted."""
    folder = tmp_path_factory.mktemp(f"notebooks-{target}") / "notebooks"
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    yield folder
    workspace = folder / ".mlmagic"
    if (workspace / "mlmagic.db").exists():
        from mlmagic import Workspace
        from mlmagic.config import MLMagic

        ws = Workspace(workspace, config=MLMagic(target=target))
        for name in ws.services.list()["name"]:
            with contextlib.suppress(Exception):
                ws.services.get(name).delete()


@pytest.fixture(scope="module")
def run_notebook(
    target: str, folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., nbformat.NotebookNode]:
    """``run_notebook(name, **options)``: execute ``name`` in the target's folder."""
    updates: dict[str, str | None] = {
        "MLMAGIC_TARGET": target,
        "MLMAGIC_CPU_BASE_IMAGE": BASE_IMAGE,
        # The local target's venvs, made once for the module's notebooks.
        "MLMAGIC_VENV_DIR": str(tmp_path_factory.mktemp(f"venvs-{target}")),
    }
    if target == "local":
        updates["DOCKER_HOST"] = NO_DOCKER
    env = kernel_env(python=sys.executable, workspace=folder / ".mlmagic", updates=updates)

    def run(
        name: str, extra_env: Mapping[str, str] | None = None, **options: str
    ) -> nbformat.NotebookNode:
        return execute(
            folder / name, python=sys.executable, env={**env, **(extra_env or {})}, **options
        )

    return run


# -- the notebooks, executed ------------------------------------------------------------------


def test_quickstart_runs_twice_in_the_same_folder(run_notebook, target):  # type: ignore[no-untyped-def]
    first = run_notebook("quickstart.ipynb")
    check_quickstart(first, target=target)
    # Again, as a user would: the environment is a cache hit, the service name was freed.
    second = run_notebook("quickstart.ipynb")
    check_quickstart(second, target=target, runs=4)
    assert text(second, "env-status").strip() == "digits-env:1 cache hit"


def test_environments(run_notebook, target):  # type: ignore[no-untyped-def]
    nb = run_notebook("environments.ipynb")
    assert_no_errors(nb)
    assert f"target: {target}" in all_text(nb)
    for tag in ("pip-env", "conda-env", "yaml-env"):
        assert "ready" in text(nb, tag), text(nb, tag)
    dockerfile = text(nb, "dockerfile-env")
    if target == "docker":
        assert "demo-dockerfile:1 · ready" in dockerfile, dockerfile
    else:
        assert "without a build" in dockerfile, dockerfile
    assert re.search(r"demo-pip:\d+ cache hit: True", text(nb, "cache-hit"))
    shown = text(nb, "envs-show")
    assert "Resolved packages" in shown and re.search(r"(?m)^requests==", shown), shown
    diff = text(nb, "diff")
    assert re.search(r"(?m)^\+tqdm==", diff), diff
    assert not re.search(r"(?m)^-requests==", diff), diff


def test_azureml_migration(run_notebook, target):  # type: ignore[no-untyped-def]
    nb = run_notebook("azureml-migration.ipynb")
    assert_no_errors(nb)
    assert f"target: {target}" in all_text(nb)
    assert "sklearn-pip-env:1" in text(nb, "register") or "Version: 1" in text(nb, "register")
    assert "versions: 1 2" in text(nb, "versions"), text(nb, "versions")
    assert "'sklearn-env', 'sklearn-pip-env'" in text(nb, "versions")
    assert "build: Succeeded" in text(nb, "build")
    assert re.search(r"C=1.0: accuracy 0\.9\d+", text(nb, "submit")), text(nb, "submit")
    metrics = text(nb, "metrics")
    assert metrics.startswith("Completed\n") and re.search(r"'accuracy': 0\.9\d+", metrics)
    assert "'model': 'logistic-regression'" in metrics and "'owner': 'demo'" in metrics
    model = text(nb, "model")
    assert "'outputs/model.pkl'" in model and "digits " in model, model
    assert "HyperDriveConfig needs the Azure ML service" in text(nb, "unsupported")


def test_azureml_deploy(run_notebook, target):  # type: ignore[no-untyped-def]
    nb = run_notebook("azureml-deploy.ipynb")
    assert_no_errors(nb)
    assert "linear-demo linear-demo:1 1" in text(nb, "register")
    deployed = text(nb, "deploy")
    assert "starting the server" in deployed and deployed.rstrip().endswith("Healthy"), deployed
    # 0.5*1 - 2 + 2*3 + 1 and 2*1 + 1, computed on the numpy array inference-schema made.
    assert "prediction: [5.5, 3.0]" in text(nb, "predict")
    assert '"data"' in text(nb, "swagger")
    updated = text(nb, "update")
    assert "after reload: [5.5, 3.0]" in updated and "after update: [6.0, 1.0]" in updated
    assert "['linear-demo:2', 'linear-demo:1']" in updated
    assert "myservice Healthy http://127.0.0.1:" in text(nb, "cli-deploy")
    assert "cli prediction: [5.5, 3.0]" in text(nb, "cli-predict")
    assert text(nb, "cleanup").strip() == "[]"


def local_torch_wheel() -> Path | None:
    """A CPU wheel of PyTorch for this Python in a ``PIP_FIND_LINKS`` folder, if any.

    Machines like this one keep one on disk; with it the local target installs PyTorch
    without the multi-GB CUDA download, through ordinary index settings (uv's find-links).
    """
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        for wheel in sorted(Path(folder).glob(f"torch-*+cpu-{tag}-*.whl")):
            return wheel
    return None


def test_gpu_pytorch(run_notebook, target, tmp_path):  # type: ignore[no-untyped-def]
    extra_env: dict[str, str] = {}
    wheel = local_torch_wheel()
    if target == "local" and wheel is not None:
        constraint = tmp_path / "torch-constraint.txt"
        constraint.write_text(f"torch=={wheel.name.split('-')[1]}\n")
        extra_env = {"UV_FIND_LINKS": str(wheel.parent), "UV_CONSTRAINT": str(constraint)}
    if os.environ.get("MLMAGIC_TEST_TORCH") != "1" and not extra_env:
        # The cells before the PyTorch build: GPU detection and the environment's Dockerfile.
        nb = run_notebook("gpu-pytorch.ipynb", stop_before_tag="torch")
        assert_no_errors(nb)
        assert "NVIDIA GPU on this host:" in all_text(nb)
        shown = text(nb, "define-env")
        assert shown.startswith("torch\nscikit-learn") and "\nFROM " in shown, shown
        return
    nb = run_notebook("gpu-pytorch.ipynb", extra_env=extra_env)
    assert_no_errors(nb)
    curves = text(nb, "curves")
    assert "'device':" in curves
    last = curves.strip().splitlines()[-1].split()
    assert last[0] == "29" and float(last[1]) > 0.9, curves  # step, accuracy


def test_distributed(run_notebook, target, tmp_path):  # type: ignore[no-untyped-def]
    extra_env: dict[str, str] = {}
    wheel = local_torch_wheel()
    if target == "local" and wheel is not None:
        constraint = tmp_path / "torch-constraint.txt"
        constraint.write_text(f"torch=={wheel.name.split('-')[1]}\n")
        extra_env = {"UV_FIND_LINKS": str(wheel.parent), "UV_CONSTRAINT": str(constraint)}
    with_torch = os.environ.get("MLMAGIC_TEST_TORCH") == "1" or bool(extra_env)
    nb = run_notebook(
        "distributed.ipynb",
        extra_env=extra_env,
        **({} if with_torch else {"stop_before_tag": "torch"}),
    )
    assert_no_errors(nb)
    shown = text(nb, "mpi-logs")
    assert shown.startswith("mpi 2 nodes x 1 process · Completed\n"), shown
    assert "\n0 mpirun Exited 0\n" in shown, shown
    for rank in range(2):
        assert f"[rank {rank}] rank {rank} of 2 on " in shown and "allreduce gives 3" in shown
    if with_torch:
        metrics = text(nb, "ddp-metrics")
        assert (
            "rank 1 last loss" in metrics and metrics.count("weights equal on all ranks: True") == 2
        )


# -- the notebooks as files (no kernel) -------------------------------------------------------


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate_notebooks", NOTEBOOKS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebooks_are_what_the_generator_writes():
    generator = _generator()
    assert sorted(generator.NOTEBOOKS) == sorted(NAMES)
    for name in NAMES:
        assert (NOTEBOOKS / name).read_text() == generator.render(name), (
            f"notebooks/{name} differs from notebooks/generate.py: edit the generator and "
            "run `python notebooks/generate.py`"
        )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_valid_has_no_outputs_and_parses(name):
    from IPython.core.inputtransformer2 import TransformerManager

    from mlmagic.magics import MLMagics

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    transformer = TransformerManager()
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        assert c.outputs == [] and c.execution_count is None, f"{name} is saved with outputs"
        ast.parse(transformer.transform_cell(c.source), filename=name)
        first, _, body = c.source.partition("\n")
        for line in c.source.splitlines():
            # `%magic ...`, `%%magic ...` and `x = %magic ...`
            match = re.match(r"^(?:\w+\s*=\s*)?%%?(\w+)\s*(.*)$", line)
            magic = match and getattr(MLMagics, match.group(1), None)
            if magic is None or not hasattr(magic, "parser"):
                continue
            words = shlex.split(match.group(2))
            if "--" in words:
                words = words[: words.index("--")]
            # Raises UsageError on an unknown option or a missing required one.
            magic.parser.parse_argstring(shlex.join(words))
        if first.startswith("%%submit"):
            ast.parse(body, filename=f"{name}: %%submit cell")
