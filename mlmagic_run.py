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
    ``-`` means standard output: each record is printed as one line that starts with
    ``@mlmagic:metric`` (where the log is the only channel back, as on Ray, and the
    host takes those lines out of it).
``MLMAGIC_PARAMS_FILE``
    The JSON file :func:`log_params` merges parameters into. When unset, it prints instead.
    ``-`` prints each call's values as one ``@mlmagic:params`` line (the host merges them).

The metrics file holds one JSON object per line (UTF-8, ``\\n``-terminated)::

    {"name": "accuracy", "step": 0, "value": 0.93, "time": 1700000000.123}

``value`` is a JSON number, except NaN and infinities, which strict JSON cannot hold:
they are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the
convention of protobuf's JSON mapping). :func:`read_metrics` is the one reader of the
format; it turns those strings back into floats and skips lines it cannot read.

The launcher is the command of a run container::

    python /mlmagic/lib/mlmagic_run.py exec --log FILE [--exit-file PATH]
        [--log-max-bytes N] -- COMMAND...

It runs ``COMMAND`` with stdout and stderr merged into one pipe (so their order is kept),
copies every chunk of output to ``FILE`` (up to ``N`` bytes, then it counts what it drops)
and to its own stdout (so ``docker logs`` has it too), forwards SIGTERM, SIGINT and
SIGHUP to the command, and exits with the command's exit code (``128 + N`` when signal
``N`` killed it). The exit file also holds the error the command died of, read from the
end of its output (the last line of its final traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "METRIC_MARKER",
    "PARAMS_MARKER",
    "log",
    "log_params",
    "main",
    "output_dir",
    "read_metrics",
    "run_id",
]

_PREFIX = "[mlmagic_run]"
#: How a metric and a call's params start on standard output (MLMAGIC_*_FILE=-).
METRIC_MARKER = "@mlmagic:metric "
PARAMS_MARKER = "@mlmagic:params "
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_CHUNK = 65536
# Steps fit a 64-bit integer; times are seconds since 1970, before the year 2200 (beyond
# that, times are garbage: log() writes time.time()).
_MAX_STEP = 1 << 63
_MAX_TIME = 7258118400.0
# How much of the end of the output the launcher keeps to find the script's error in.
_TAIL = 65536
# A traceback's first line: a plain one, or the outermost exception group's.
_TRACEBACK = re.compile(r"(?:\s*\+ Exception Group )?Traceback \(most recent call last\):\s*$")
_GROUP_MARGIN = re.compile(r"^\s*\| ?")
# Colour codes (PYTHON_COLORS, FORCE_COLOR) are not part of an error's words.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
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
    if path == "-":
        _print_marked(METRIC_MARKER + line)
        return
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
    if path == "-":
        _print_marked(
            PARAMS_MARKER + json.dumps(values, ensure_ascii=False, allow_nan=False) + "\n"
        )
        return
    current = _read_params(path)
    current.update(values)
    _write_atomically(path, json.dumps(current, indent=1, ensure_ascii=False, allow_nan=False))


# -- the reader of the metrics file (host side) ------------------------------------------


def read_metrics(
    source: str | os.PathLike[str] | IO[bytes],
    offset: int = 0,
    *,
    limit: int | None = None,
    on_skip: Callable[[int, str], object] | None = None,
) -> tuple[list[dict], int]:
    """Read the metric records that were completed since ``offset``.

    Call it again with the returned offset to follow a file that is still being written:
    a last line without its ``\\n`` is left for the next call.

    Parameters
    ----------
    source
        The metrics file, or a binary file open on it (mlmagic opens it on the host
        without following links, then passes it here). A path that does not exist yet
        reads as empty.
    offset
        The byte offset to read from (``0``, or what the previous call returned).
    limit
        The most bytes to read in this call; ``None`` reads to the end. A line longer
        than ``limit`` is skipped.
    on_skip
        Called as ``on_skip(byte_offset, reason)`` for each line that is skipped.

    Returns
    -------
    records : list of dict
        ``{"name": str, "step": int, "value": float, "time": float}`` per complete line,
        in file order. NaN and infinities come back as floats; lines that are not a valid
        record (corrupt, hand-edited, written by something else) are skipped.
    offset : int
        The offset just past the last complete line.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as file:
                return read_metrics(file, offset, limit=limit, on_skip=on_skip)
        except FileNotFoundError:
            return [], offset
    source.seek(offset)
    data = source.read() if limit is None else source.read(limit)
    end = data.rfind(b"\n")
    if end < 0:
        if limit is not None and len(data) >= limit:
            # No end of line in a whole read: a line too long to be a record.
            if on_skip is not None:
                on_skip(offset, f"a line longer than {limit} bytes")
            return [], offset + len(data)
        return [], offset
    records = []
    at = offset
    for line in data[:end].split(b"\n"):
        record = _parse_metric(line)
        if isinstance(record, dict):
            records.append(record)
        elif record and on_skip is not None:
            on_skip(at, record)
        at += len(line) + 1
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
        help='where to write {"exit_code": N, "signal": S|null, "ended": T, "error": E} '
        "when it ends (error: the line that says why it failed, from its final traceback)",
    )
    exec_parser.add_argument(
        "--log-max-bytes",
        type=int,
        default=_int_env("MLMAGIC_LOG_MAX_BYTES", 0),
        metavar="N",
        help="keep at most N bytes of output in FILE, then count what is dropped; 0 keeps "
        "all (default: $MLMAGIC_LOG_MAX_BYTES, else 0)",
    )
    exec_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("exec: give the command to run after --")
    if args.log_max_bytes < 0:
        parser.error("exec: --log-max-bytes must be 0 (no limit) or more")
    return _exec(command, _LogFile(args.log, args.log_max_bytes), args.exit_file)


def _exec(command: list[str], log: _LogFile, exit_file: str | None) -> int:
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
        log.write(message)
        _pass_on(out_fd, message)
        log.close()
        _write_exit_file(exit_file, code, None, message.decode().strip())
        return code
    for signum in pending:
        forward(signum, None)

    assert child.stdout is not None
    pipe_fd = child.stdout.fileno()
    # The end of the output, where an uncaught exception's traceback is.
    tail = bytearray()
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
        problem = log.write(chunk)
        if problem:
            _pass_on(out_fd, problem)
        if out_fd is not None and not _pass_on(out_fd, chunk):
            out_fd = None  # nobody reads stdout any more; keep logging to the file
        tail += chunk
        if len(tail) > 2 * _TAIL:
            del tail[:-_TAIL]

    returncode = child.wait()
    child.stdout.close()
    _pass_on(out_fd, log.close())
    killed_by = -returncode if returncode < 0 else None
    code = 128 + killed_by if killed_by is not None else returncode
    error = _script_error(bytes(tail[-_TAIL:]), code) if killed_by is None else ""
    _write_exit_file(exit_file, code, killed_by, error)
    return code


class _LogFile:
    """The run's log file: every byte of output, up to ``max_bytes`` (0: no limit).

    Past the limit, output is counted instead of kept, and the log says so where it
    stops and, at the end, how much was dropped. When the file cannot be written (disk
    full), the run goes on: it matters more than its log.
    """

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.kept = 0
        self.full = False  # the limit was reached: output is counted, not kept
        self.dropped_bytes = self.dropped_lines = 0
        self.at_line_start = True

    def write(self, chunk: bytes) -> bytes:
        """Keep ``chunk`` (or what fits); a message for stdout when the file fails."""
        if self.fd is None:
            return b""  # said once already, on stdout
        if self.full:
            self._drop(chunk)
            return b""
        if self.max_bytes and self.kept + len(chunk) > self.max_bytes:
            room = self.max_bytes - self.kept
            # End the kept part on a whole line when the room holds one.
            cut = chunk.rfind(b"\n", 0, room) + 1 or room
            self.full = True
            self._drop(chunk[cut:])
            ok = self._keep(chunk[:cut]) and self._keep(self._limit_note(), count=False)
        else:
            ok = self._keep(chunk)
        if ok:
            return b""
        self.fd = None
        return f"{_PREFIX} cannot write {self.path}; output goes on here\n".encode()

    def close(self) -> bytes:
        """Say how much was dropped, close the file; the same words, for stdout."""
        message = b""
        if self.full:
            message = (
                f"{_PREFIX} {self.dropped_lines} more lines ({self.dropped_bytes} bytes) of "
                "output were not kept in this log (its limit, MLMagic.run_log_max_bytes, "
                "was reached).\n"
            ).encode()
            self._keep(message, count=False)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return message

    def _limit_note(self) -> bytes:
        start = b"" if self.at_line_start else b"\n"
        return (
            start
            + (
                f"{_PREFIX} the log reached its limit of {self.max_bytes} bytes "
                "(MLMagic.run_log_max_bytes): the script goes on, the rest of its output is "
                "counted, not kept.\n"
            ).encode()
        )

    def _keep(self, data: bytes, count: bool = True) -> bool:
        if not data:
            return True
        if not _pass_on(self.fd, data):
            return False
        if count:
            self.kept += len(data)
        self.at_line_start = data.endswith(b"\n")
        return True

    def _drop(self, data: bytes) -> None:
        if data:
            self.dropped_bytes += len(data)
            self.dropped_lines += data.count(b"\n")


def _script_error(output: bytes, code: int) -> str:
    """The error a command that exited with ``code`` died of, read from its last output.

    The last line of the last traceback (``ValueError: bad C``), which covers chained
    exceptions, whose last traceback is the one that ended the script. Without a
    traceback, exit codes 1 and 2 take the last line printed: what
    ``raise SystemExit("message")`` and argparse's usage errors print.

    Parameters
    ----------
    output
        The end of the command's output (stdout and stderr merged).
    code
        The command's exit code.

    Returns
    -------
    str
        One line, or ``""`` when the command succeeded or nothing says why it failed.
    """
    if code == 0:
        return ""
    lines = _ANSI.sub("", output.decode("utf-8", errors="replace")).splitlines()
    header = None
    for index in range(len(lines) - 1, -1, -1):
        if _TRACEBACK.match(lines[index]):
            header = index
            break
    if header is not None:
        group = lines[header].lstrip().startswith("+")
        for line in lines[header + 1 :]:
            if group:
                line = _GROUP_MARGIN.sub("", line, count=1)
            if line and not line[0].isspace():
                return line.strip()
        return ""
    if code in (1, 2):
        for line in reversed(lines):
            if line.strip():
                return line.strip()
    return ""


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


def _write_exit_file(path: str | None, code: int, killed_by: int | None, error: str) -> None:
    if path:
        record: dict[str, object] = {"exit_code": code, "signal": killed_by, "ended": time.time()}
        if error:
            record["error"] = error
        _write_atomically(path, json.dumps(record))


def _int_env(name: str, fallback: int) -> int:
    try:
        return int(os.environ.get(name) or fallback)
    except ValueError:
        return fallback


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


def _parse_metric(line: bytes) -> dict | str:
    """The record on ``line``, or why it is not one (``""`` for a blank line)."""
    if not line.strip():
        return ""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return "not JSON"
    if not isinstance(record, dict):
        return f"JSON, but a {type(record).__name__}, not an object"
    if "value" not in record:
        return "it has no value"
    name, step, value = record.get("name"), record.get("step"), record["value"]
    stamp = record.get("time", 0.0)
    if not isinstance(name, str) or not name:
        return "its name is not a non-empty string"
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < _MAX_STEP:
        return "its step is not an integer from 0 to 2**63 - 1"
    if value is None:
        value = math.nan
    elif isinstance(value, str) and value in _NONFINITE:
        value = _NONFINITE[value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            return "its value is too large for a float"
    else:
        return "its value is not a number"
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool) or not 0 <= stamp < _MAX_TIME:
        return "its time is not a POSIX time in seconds"
    parsed = {"name": name, "step": step, "value": value, "time": float(stamp)}
    rank = record.get("rank")
    if isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0:
        parsed["rank"] = rank
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


def _print_marked(line: str) -> None:
    # One write of the whole line to the stdout descriptor, behind whatever print() holds.
    sys.stdout.flush()
    _write_all(sys.stdout.fileno(), line.encode("utf-8"))


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
