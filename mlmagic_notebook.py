"""The runner of a notebook submitted as a run: executes it headlessly, cell by cell.

mlmagic mounts this module next to ``mlmagic_run.py`` (``/mlmagic/lib`` in a container, the
run's ``lib/`` folder on the local target), and the launcher starts it as the run's
script::

    python -u -m mlmagic_notebook --output OUT.ipynb [--parameters JSON] NOTEBOOK

It imports on any Python from 3.8 with the standard library alone: ``nbclient``,
``nbformat`` and ``ipykernel`` come from the folder named by ``MLMAGIC_NOTEBOOK_DEPS``,
which is put at the *end* of ``sys.path`` (of this process and of the kernel), so the
packages the environment pins win over those mlmagic brings.

What it does, in order:

1. reads the notebook and injects the parameters the papermill way: a new code cell
   tagged ``injected-parameters`` right after the cell tagged ``parameters`` (at the top,
   with a note in the log, when there is none; an ``injected-parameters`` cell left by an
   earlier execution is replaced);
2. starts a kernel of *this* Python (the environment's), in the notebook's folder;
3. runs the code cells in order, printing ``[mlmagic] cell K/N`` as each starts and the
   cell's stdout, stderr and results as they arrive (so they stream into the run's log),
   appending ``{"cell": K, "cells": N}`` to ``MLMAGIC_PROGRESS_FILE`` (the widget's
   "cell K/N"); ``-`` prints it instead as one line starting with :data:`PROGRESS_MARKER`
   (where the log is the only channel back, as on Ray, and the host takes it out);
4. after every cell, and when stopped by a signal, writes the executed notebook to
   ``OUT.ipynb`` (whole, through a rename), so a failed or canceled run keeps every
   output up to where it stopped.

A cell that raises ends the run with exit code 1; the last line printed is
``cell K/N failed: <the exception's line>``, which the launcher keeps as the run's error.
In a distributed run every rank executes the notebook; only rank 0 writes the copy and
the progress.

``K`` counts code cells, the injected one included, so cell ``K`` is the one shown as
``In [K]`` in the executed copy.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any

__all__ = ["PROGRESS_MARKER", "inject_parameters", "main"]

_PREFIX = "[mlmagic]"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PARAMETERS = "parameters"
_INJECTED = "injected-parameters"
#: Starts a progress line printed to stdout when ``MLMAGIC_PROGRESS_FILE`` is ``-``.
PROGRESS_MARKER = "@mlmagic:progress "


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> str:
    """Put a cell assigning ``parameters`` into ``nb`` (a notebook node), papermill's way.

    Parameters
    ----------
    nb
        The notebook (``nbformat.NotebookNode`` or a plain dict of nbformat 4); changed
        in place.
    parameters
        Names and Python literal values.

    Returns
    -------
    str
        A note for the log when the notebook has no cell tagged ``parameters`` (the cell
        then goes first), else ``""``.
    """
    cells = nb["cells"]
    # A copy executed before (by mlmagic or papermill) holds its injected cell: replace it.
    cells[:] = [cell for cell in cells if _INJECTED not in _tags(cell)]
    lines = ["# Parameters"] + [f"{name} = {value!r}" for name, value in parameters.items()]
    cell: Any = {
        "cell_type": "code",
        "execution_count": None,
        "id": "injected-parameters",
        "metadata": {"tags": [_INJECTED]},
        "outputs": [],
        "source": "\n".join(lines) + "\n",
    }
    if nb.get("nbformat_minor", 0) < 5 and nb.get("nbformat", 4) == 4:
        del cell["id"]  # cell ids came with nbformat 4.5
    if hasattr(nb, "cells"):  # a NotebookNode: keep attribute access for nbclient
        import nbformat

        cell = nbformat.from_dict(cell)
    at = next((i for i, c in enumerate(cells) if _PARAMETERS in _tags(c)), None)
    if at is None:
        cells.insert(0, cell)
        return (
            "the notebook has no cell tagged 'parameters': the parameters are set in a new "
            "first cell (tag the cell that holds the defaults 'parameters' to set them after it)"
        )
    cells.insert(at + 1, cell)
    return ""


def _tags(cell: Any) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def main(argv: list[str] | None = None) -> int:
    """Execute the notebook the command line names; the exit code of the run.

    Returns
    -------
    int
        0 when every cell ran, 1 when a cell failed or the kernel died, ``128 + N`` when
        signal ``N`` stopped it.
    """
    parser = argparse.ArgumentParser(prog="mlmagic_notebook", description=__doc__.split("\n")[0])
    parser.add_argument("notebook", help="the notebook to execute (in the working directory)")
    parser.add_argument("--output", required=True, help="where the executed copy goes")
    parser.add_argument("--parameters", default="{}", help="JSON object of parameters")
    args = parser.parse_args(argv)

    deps = os.environ.get("MLMAGIC_NOTEBOOK_DEPS")
    if deps and deps not in sys.path:
        sys.path.append(deps)
    try:
        import nbformat
        from nbclient import NotebookClient

        if importlib.util.find_spec("ipykernel") is None:  # the kernel's, found not loaded
            raise ImportError("No module named 'ipykernel'", name="ipykernel")
    except ImportError as exc:
        # The last line printed is the run's error: one line, the cause, then the fix.
        if deps:
            fix = f"mlmagic puts them in {deps}, which lacks it: build the environment again"
        else:
            # Where mlmagic did not add them (a Ray cluster it did not make).
            fix = "install them where the run executes, e.g. pip install nbclient ipykernel"
        print(
            f"cannot run a notebook: {sys.executable} has no module {exc.name or exc} (it "
            f"needs nbclient, nbformat and ipykernel): {fix}",
            file=sys.stderr,
        )
        return 1

    nb = nbformat.read(args.notebook, as_version=4)
    parameters = json.loads(args.parameters)
    if parameters:
        note = inject_parameters(nb, parameters)
        if note:
            print(f"{_PREFIX} note: {note}", flush=True)
    nb.metadata["mlmagic"] = {
        "run_id": os.environ.get("MLMAGIC_RUN_ID"),
        "input": args.notebook,
        "parameters": parameters,
        "status": "running",
    }
    rank0 = _rank() == 0
    writer = _Writer(nbformat, nb, args.output if rank0 else None)
    progress = os.environ.get("MLMAGIC_PROGRESS_FILE") if rank0 else None
    workdir = os.path.dirname(os.path.abspath(args.notebook))

    with _private_jupyter_dirs(deps) as (kernel_name, folder):
        from traitlets.config import Config

        # IPC sockets: no TCP port is opened (nor needs to be free) in the container. They
        # go in the private folder: by default they would be made in the working directory,
        # which the nodes of a distributed run share.
        sockets = {"transport": "ipc", "ip": os.path.join(folder, "runtime", "kernel")}
        client = _client_class(NotebookClient)(
            nb,
            config=Config({"KernelManager": sockets}),
            kernel_name=kernel_name,
            timeout=None,
            # A kernel starts in seconds, but a loaded machine or a slow disk can take
            # minutes (nbclient's default gives up after one).
            startup_timeout=600,
            allow_errors=False,
            shutdown_kernel="immediate",
            resources={"metadata": {"path": workdir}},
        )
        return _execute(client, nb, writer, progress)


def _execute(client: Any, nb: Any, writer: _Writer, progress: str | None) -> int:
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    total = len(code)

    def stop(signum: int, frame: object) -> None:
        # Canceled: keep what ran (and what the running cell printed so far), end the
        # kernel, and go; the launcher reports the signal.
        writer.finish("canceled", None)
        _kill_kernel(client)
        os._exit(128 + signum)

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), stop)

    writer.write()
    number, failure = 0, ""
    # The kernel is shut down when the block ends, before the last line is printed: a
    # kernel that outlived this process would print after it, and the launcher keeps the
    # last line as the run's error.
    try:
        with client.setup_kernel():
            try:
                for number, (index, cell) in enumerate(code, start=1):
                    print(f"{_PREFIX} cell {number}/{total}", flush=True)
                    _progress(progress, number, total)
                    client.execute_cell(cell, index, execution_count=number)
                    writer.write()
            except CellExecutionError as exc:
                failure = _error_line(nb.cells[code[number - 1][0]], exc)
            except DeadKernelError:
                failure = "the kernel died (it crashed, exited, or was killed for memory)"
    except Exception as exc:
        if number:
            raise
        writer.finish("failed", None)
        why = next((line.strip() for line in str(exc).splitlines() if line.strip()), repr(exc))
        print(f"the notebook's kernel did not start: {why}", file=sys.stderr, flush=True)
        return 1
    if failure:
        writer.finish("failed", number)
        print(f"cell {number}/{total} failed: {failure}", file=sys.stderr, flush=True)
        return 1
    writer.finish("completed", None)
    print(f"{_PREFIX} {total} cells ran", flush=True)
    return 0


def _error_line(cell: Any, exc: Exception) -> str:
    """``Name: value`` of the cell's error output, else the exception's first line."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = str(output.get("evalue", "")).strip().splitlines()
            name = output.get("ename", "Error")
            return f"{name}: {value[0]}" if value else str(name)
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _client_class(base: type) -> type:
    """``NotebookClient`` that echoes every output into the log as it arrives."""

    class _EchoingClient(base):  # type: ignore[misc, valid-type]
        def output(self, outs: list, msg: dict, display_id: str, cell_index: int) -> Any:
            _echo(msg)
            return super().output(outs, msg, display_id, cell_index)

    return _EchoingClient


def _echo(msg: dict) -> None:
    kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
    content = msg.get("content", {})
    if kind == "stream":
        stream = sys.stderr if content.get("name") == "stderr" else sys.stdout
        stream.write(content.get("text", ""))
        stream.flush()
    elif kind == "error":
        text = "\n".join(content.get("traceback", []))
        sys.stderr.write(_ANSI.sub("", text) + "\n")
        sys.stderr.flush()
    elif kind in ("execute_result", "display_data"):
        text = content.get("data", {}).get("text/plain")
        if text:
            sys.stdout.write(str(text) + "\n")
            sys.stdout.flush()


def _kill_kernel(client: Any) -> None:
    # The kernel runs in its own session, so a signal to the run does not reach it.
    with contextlib.suppress(Exception):
        pid = client.km.provisioner.process.pid
        os.kill(pid, signal.SIGKILL)


def _progress(path: str | None, number: int, total: int) -> None:
    if not path:
        return
    line = json.dumps({"cell": number, "cells": total, "time": time.time()}) + "\n"
    if path == "-":
        # One write of the whole line, behind what print() holds, so it starts a line.
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), (PROGRESS_MARKER + line).encode())
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _rank() -> int:
    """This process's rank in a distributed run (0 when it is the only one)."""
    rank = os.environ.get("MLMAGIC_RANK") or (
        os.environ.get("RANK") if os.environ.get("MLMAGIC_NODE") else None
    )
    return int(rank) if rank and rank.isdigit() else 0


class _Writer:
    """Writes the executed copy whole (a temporary file, then a rename)."""

    def __init__(self, nbformat: Any, nb: Any, path: str | None) -> None:
        self.nbformat, self.nb, self.path = nbformat, nb, path
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def finish(self, status: str, failed_cell: int | None) -> None:
        self.nb.metadata["mlmagic"]["status"] = status
        if failed_cell is not None:
            self.nb.metadata["mlmagic"]["failed_cell"] = failed_cell
        self.write()

    def write(self) -> None:
        if not self.path:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".ipynb")
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                self.nbformat.write(self.nb, file)
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except (OSError, ValueError) as exc:
            print(f"{_PREFIX} cannot write {self.path}: {exc}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _private_jupyter_dirs(deps: str | None) -> Any:
    """A kernel spec of this Python, and Jupyter's and IPython's folders, in a temporary
    folder: the image's user may have no writable home, and the user's own Jupyter
    settings must not change how the notebook runs."""
    name = "mlmagic-python"
    boot = "import sys; "
    if deps:
        # After site-packages, as in this process: the environment's pins win.
        boot += f"sys.path.append({deps!r}); "
    boot += "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
    with tempfile.TemporaryDirectory(prefix="mlmagic-notebook-") as folder:
        spec = os.path.join(folder, "data", "kernels", name)
        os.makedirs(spec)
        with open(os.path.join(spec, "kernel.json"), "w", encoding="utf-8") as file:
            json.dump(
                {
                    "argv": [sys.executable, "-c", boot, "-f", "{connection_file}"],
                    "display_name": "Python (mlmagic run)",
                    "language": "python",
                },
                file,
            )
        os.environ.update(
            {
                "JUPYTER_PATH": os.path.join(folder, "data"),
                "JUPYTER_DATA_DIR": os.path.join(folder, "data"),
                "JUPYTER_RUNTIME_DIR": os.path.join(folder, "runtime"),
                "JUPYTER_CONFIG_DIR": os.path.join(folder, "config"),
                "IPYTHONDIR": os.path.join(folder, "ipython"),
                "JUPYTER_PLATFORM_DIRS": "1",
            }
        )
        os.makedirs(os.path.join(folder, "runtime"))
        yield name, folder


if __name__ == "__main__":
    sys.exit(main())
