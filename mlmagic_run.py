"""Helper for training scripts run by mlmagic, and the launcher of run containers.

This module is stdlib only and imports on any Python from 3.8. mlmagic mounts it into
every run container at ``/mlmagic/lib/mlmagic_run.py`` (on ``PYTHONPATH``); it also ships
in mlmagic's wheel, so a script that uses it runs unchanged outside mlmagic.

In a training script::

    import mlmagic_run as run

    run.log_params(C=0.5, max_iter=200)
    run.log("accuracy", 0.93)  # step 0; the next "accuracy" is step 1
    run.log("loss", 0.12, step=10)
    model_path = run.output_dir() / "model.pkl"

Environment variables, set by mlmagic's executors:

``MLMAGIC_RUN_ID``
    The run's id (:func:`run_id`).
``MLMAGIC_OUTPUT_DIR``
    Where the script saves what it makes (:func:`output_dir`); ``./outputs`` when unset.
``MLMAGIC_METRICS_FILE``
    The file :func:`log` appends metrics to. When unset, :func:`log` prints instead.
``MLMAGIC_PARAMS_FILE``
    The JSON file :func:`log_params` merges parameters into. When unset, it prints instead.

The metrics file holds one JSON object per line (UTF-8, ``\\n``-terminated)::

    {"name": "accuracy", "step": 0, "value": 0.93, "time": 1700000000.123}

``value`` is a JSON number, except NaN and infinities, which strict JSON cannot hold:
they are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the
convention of protobuf's JSON mapping). :func:`read_metrics` is the one reader of the
format; it turns those strings back into floats and skips lines it cannot read.

The launcher is the command of a run container::

    python /mlmagic/lib/mlmagic_run.py exec --log FILE [--exit-file PATH] -- COMMAND...

It runs ``COMMAND`` with stdout and stderr merged into one pipe (so their order is kept),
copies every chunk of output to ``FILE`` and to its own stdout (so ``docker logs`` has it
too), forwards SIGTERM, SIGINT and SIGHUP to the command, and exits with the command's
exit code (``128 + N`` when signal ``N`` killed it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["log", "log_params", "main", "output_dir", "read_metrics", "run_id"]

_PREFIX = "[mlmagic_run]"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_CHUNK = 65536
# Signals a container or a terminal sends to stop a run; the launcher passes them on.
_FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP")

_steps: dict[str, int] = {}
_steps_lock = threading.Lock()


# -- the API of training scripts ---------------------------------------------------------


def run_id() -> str | None:
    """The id of the mlmagic run this process belongs to.

    Returns
    -------
    str or None
        ``MLMAGIC_RUN_ID``, or ``None`` outside mlmagic.
    """
    return os.environ.get("MLMAGIC_RUN_ID") or None


def output_dir() -> Path:
    """The folder where the script should save models and other results.

    mlmagic keeps what is saved there with the run, and models are registered from it.

    Returns
    -------
    pathlib.Path
        ``MLMAGIC_OUTPUT_DIR``, else ``./outputs`` (made absolute); created if missing.
    """
    path = Path(os.environ.get("MLMAGIC_OUTPUT_DIR") or "outputs").absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(name: str, value: Any, step: int | None = None) -> None:
    """Record one value of a metric.

    Safe to call from several threads and processes (data loader workers) at once: each
    value is appended to the metrics file as one whole line with a single ``write``.

    Parameters
    ----------
    name
        The metric's name, a non-empty string. Values with the same name form a series.
    value
        A number: ``int``, ``float``, ``bool``, or anything with ``__float__`` (numpy
        scalars, one-element tensors). It is stored as a float; NaN and infinities are kept.
    step
        The value's position in the series, a non-negative integer. When omitted, it is one
        more than the last step of ``name`` logged by this process (``0`` for the first).

    Raises
    ------
    TypeError
        ``name`` is not a string, ``value`` is not a number, or ``step`` is not an integer.
    ValueError
        ``name`` is empty, or ``step`` is negative.
    """
    _check_name(name, "log")
    number = _to_float(name, value)
    with _steps_lock:
        step = _steps.get(name, 0) if step is None else _check_step(name, step)
        _steps[name] = step + 1

    path = os.environ.get("MLMAGIC_METRICS_FILE")
    if not path:
        print(f"{_PREFIX} {name}={number!r} (step {step})", flush=True)
        return
    record = {"name": name, "step": step, "value": _json_float(number), "time": time.time()}
    # The rank of a process of a distributed run (torchrun's workers have only RANK).
    rank = os.environ.get("MLMAGIC_RANK") or (
        os.environ.get("RANK") if os.environ.get("MLMAGIC_NODE") else None
    )
    if rank and rank.isdigit():
        record["rank"] = int(rank)
    line = json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
    _append(path, line.encode("utf-8"))


def log_params(params: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Record the run's parameters (hyperparameters, settings).

    Calls merge: a later value of a name replaces the earlier one. The params file is
    rewritten whole (written to a temporary file, then renamed), so a reader sees either
    the old or the new file. Concurrent calls from several processes may lose updates;
    log parameters from the main process.

    Parameters
    ----------
    params
        A mapping of names to values.
    **kwargs
        More names and values; they win over ``params``.

    Values that JSON cannot hold are converted: numpy scalars and arrays to numbers and
    lists, NaN and infinities to ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, anything else
    to its ``str()``.

    Raises
    ------
    TypeError
        ``params`` is not a mapping, or a name is not a string.
    ValueError
        A name is empty.
    """
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(
            f"mlmagic_run.log_params: pass a dict or keyword arguments, not {type(params).__name__}"
        )
    merged: dict[str, Any] = dict(params or {})
    merged.update(kwargs)
    for name in merged:
        _check_name(name, "log_params")
    values = {name: _jsonable(value) for name, value in merged.items()}

    path = os.environ.get("MLMAGIC_PARAMS_FILE")
    if not path:
        shown = ", ".join(f"{name}={value!r}" for name, value in merged.items())
        print(f"{_PREFIX} params: {shown}", flush=True)
        return
    current = _read_params(path)
    current.update(values)
    _write_atomically(path, json.dumps(current, indent=1, ensure_ascii=False, allow_nan=False))


# -- the reader of the metrics file (host side) ------------------------------------------


def read_metrics(path: str | os.PathLike[str], offset: int = 0) -> tuple[list[dict], int]:
    """Read the metric records that were completed since ``offset``.

    Call it again with the returned offset to follow a file that is still being written:
    a last line without its ``\\n`` is left for the next call.

    Parameters
    ----------
    path
        The metrics file. A file that does not exist yet reads as empty.
    offset
        The byte offset to read from (``0``, or what the previous call returned).

    Returns
    -------
    records : list of dict
        ``{"name": str, "step": int, "value": float, "time": float}`` per complete line,
        in file order. NaN and infinities come back as floats; lines that are not a valid
        record (corrupt, hand-edited) are skipped.
    offset : int
        The offset just past the last complete line.
    """
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    records = []
    for line in data[:end].split(b"\n"):
        record = _parse_metric(line)
        if record is not None:
            records.append(record)
    return records, offset + end + 1


# -- the launcher ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher's command line.

    Parameters
    ----------
    argv
        The arguments after the program name; ``sys.argv[1:]`` when ``None``.

    Returns
    -------
    int
        The exit code: the command's own, ``128 + N`` when signal ``N`` killed it,
        ``127`` when it could not be found and ``126`` when it could not be started.
    """
    parser = argparse.ArgumentParser(
        prog="mlmagic_run.py", description="Launcher of mlmagic run containers."
    )
    commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    commands.required = True
    exec_parser = commands.add_parser(
        "exec",
        help="run a command, copying its output to a log file and to stdout",
        description="Run COMMAND with stdout and stderr merged, copy every byte of its "
        "output to FILE and to stdout, forward SIGTERM/SIGINT/SIGHUP to it, and exit with "
        "its exit code (128+N when signal N killed it).",
    )
    exec_parser.add_argument("--log", required=True, metavar="FILE", help="file to append to")
    exec_parser.add_argument(
        "--exit-file",
        metavar="PATH",
        help='where to write {"exit_code": N, "signal": S|null, "ended": T} when it ends',
    )
    exec_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("exec: give the command to run after --")
    return _exec(command, args.log, args.exit_file)


def _exec(command: list[str], log_path: str, exit_file: str | None) -> int:
    log_dir = os.path.dirname(log_path)
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    out_fd: int | None = sys.stdout.fileno()

    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        # A signal that arrives before the child exists is passed on once it does.
        if child is None:
            pending.append(signum)
        elif child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    for name in _FORWARDED:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), forward)

    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        message = f"{_PREFIX} cannot start {command[0]!r}: {exc}\n".encode()
        _pass_on(log_fd, message)
        _pass_on(out_fd, message)
        os.close(log_fd)
        _write_exit_file(exit_file, code, None)
        return code
    for signum in pending:
        forward(signum, None)

    assert child.stdout is not None
    pipe_fd = child.stdout.fileno()
    file_fd: int | None = log_fd
    while True:
        # Wait with a timeout, so that when the command has ended but something it started
        # still holds the pipe open, the launcher ends too (as a container would).
        ready, _, _ = select.select([pipe_fd], [], [], 0.5)
        if not ready:
            if child.poll() is not None:
                break
            continue
        chunk = os.read(pipe_fd, _CHUNK)
        if not chunk:
            break
        # The log file first: it must hold every byte even if the container dies next.
        if file_fd is not None and not _pass_on(file_fd, chunk):
            _pass_on(out_fd, f"{_PREFIX} cannot write {log_path}; output goes on here\n".encode())
            file_fd = None  # the run matters more than its log file (disk full)
        if out_fd is not None and not _pass_on(out_fd, chunk):
            out_fd = None  # nobody reads stdout any more; keep logging to the file

    returncode = child.wait()
    child.stdout.close()
    os.close(log_fd)
    killed_by = -returncode if returncode < 0 else None
    code = 128 + killed_by if killed_by is not None else returncode
    _write_exit_file(exit_file, code, killed_by)
    return code


def _pass_on(fd: int | None, data: bytes) -> bool:
    """Write all of ``data`` to ``fd``; ``False`` when that fails (reader gone, disk full)."""
    if fd is None:
        return False
    try:
        _write_all(fd, data)
    except OSError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_exit_file(path: str | None, code: int, killed_by: int | None) -> None:
    if path:
        record = {"exit_code": code, "signal": killed_by, "ended": time.time()}
        _write_atomically(path, json.dumps(record))


# -- helpers -----------------------------------------------------------------------------


def _check_name(name: object, function: str) -> None:
    if not isinstance(name, str):
        raise TypeError(
            f"mlmagic_run.{function}: a name must be a string, not {type(name).__name__} ({name!r})"
        )
    if not name:
        raise ValueError(f"mlmagic_run.{function}: a name must not be empty")


def _check_step(name: str, step: Any) -> int:
    if isinstance(step, bool):
        raise TypeError(f"mlmagic_run.log: step of {name!r} must be an integer, not bool")
    try:
        number = operator.index(step)
    except TypeError:
        raise TypeError(
            f"mlmagic_run.log: step of {name!r} must be an integer, not {type(step).__name__}"
        ) from None
    if number < 0:
        raise ValueError(f"mlmagic_run.log: step of {name!r} must be >= 0, not {number}")
    return number


def _to_float(name: str, value: object) -> float:
    if isinstance(value, (str, bytes)) or not hasattr(type(value), "__float__"):
        raise TypeError(
            f"mlmagic_run.log: the value of {name!r} must be a number (int, float, bool, "
            f"or a numpy/torch scalar), not {type(value).__name__}"
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        # e.g. a tensor or array with more than one element
        raise TypeError(
            f"mlmagic_run.log: the value of {name!r} must be a single number: {exc}"
        ) from None


def _json_float(number: float) -> float | str:
    if math.isfinite(number):
        return number
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item) for item in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        with contextlib.suppress(Exception):
            return _jsonable(value.tolist())
    return str(value)


def _parse_metric(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
        name, step, value = record["name"], record["step"], record["value"]
        stamp = float(record.get("time", 0.0))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(name, str) or not isinstance(step, int) or isinstance(step, bool):
        return None
    if value is None:
        value = math.nan
    elif isinstance(value, str):
        if value not in _NONFINITE:
            return None
        value = _NONFINITE[value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    else:
        return None
    parsed = {"name": name, "step": step, "value": value, "time": stamp}
    if isinstance(record.get("rank"), int):
        parsed["rank"] = record["rank"]
    return parsed


def _append(path: str, data: bytes) -> None:
    # One write() on an O_APPEND descriptor: the kernel puts the whole line at the end of
    # the file, so lines of concurrent writers never interleave and a reader never sees
    # half a line (for lines below the file system's atomic size, which metrics are).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _read_params(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            current = json.load(file)
    except (FileNotFoundError, ValueError):
        return {}
    return current if isinstance(current, dict) else {}


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


if __name__ == "__main__":
    sys.exit(main())
