"""Reading the files a run's script can write, without trusting them.

The launcher and ``mlmagic_run`` write ``output.log``, ``metrics.jsonl``, ``params.json``
and ``exit.json`` from inside the run, in a folder the script can write too. So the
script can put anything there: a symbolic link to a host file, a FIFO (which hangs a
reader that opens it), a folder, or bytes that are not what the format says. Every read
of those files on the host goes through this module:

- :func:`open_run_file` opens a file of the run's folder one path component at a time,
  never following a link (``O_NOFOLLOW``), never waiting on a FIFO (``O_NONBLOCK``), and
  only when it is a regular file before and after opening (the same inode). Anything else
  is refused with :class:`RefusedFile`, and the run's log says so once.
- :func:`read_json_object`, :func:`read_metrics` and :func:`read_exit` never raise for
  what is in the file: what cannot be read is left out, with one note per run and file
  in the run's log, so one run's data never breaks a listing of every run.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import mlmagic_run
from mlmagic.exceptions import RunError
from mlmagic.run import journal
from mlmagic.run.paths import RunPaths

__all__ = [
    "RefusedFile",
    "note_once",
    "open_run_file",
    "read_exit",
    "read_json_object",
    "read_metrics",
    "read_run_file",
]

#: The largest params or exit file read whole; the launcher writes a few hundred bytes.
_MAX_JSON_BYTES = 16 << 20
#: The longest script error kept from the exit file (one line of the run's details).
_MAX_ERROR = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Notes this process already made, so a reader that polls a run does not reread its
# journal on every poll to find that the note is there.
_noted: set[tuple[str, str]] = set()
_noted_lock = threading.Lock()


class RefusedFile(RunError):
    """A file of the run's folder is not a regular file (a link, a FIFO, a folder)."""


class _NotAFile(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def open_run_file(paths: RunPaths, path: Path) -> IO[bytes] | None:
    """Open a file of the run's folder for reading, refusing anything but a regular file.

    Parameters
    ----------
    paths
        The run's paths; ``path`` must be inside ``paths.root``.
    path
        The file, e.g. ``paths.output_log``.

    Returns
    -------
    binary file or None
        The open file (the caller closes it), or ``None`` when it does not exist.

    Raises
    ------
    RefusedFile
        ``path``, or a folder on the way to it, is a symbolic link, a FIFO, a device, a
        socket or a folder. The run's log notes it (once).
    """
    relative = path.relative_to(paths.root)
    try:
        fd = _open_inside(paths.root, relative.parts)
    except FileNotFoundError:
        return None
    except _NotAFile as refused:
        name = relative.as_posix()
        message = (
            f"{name} of run {paths.root.name} is {refused.what}, not a file the run wrote: "
            "mlmagic does not read it (a script may have put it there to reach a file "
            f"outside the run). Look at {path} yourself to see what it is."
        )
        note_once(paths, f"mlmagic: not reading {name}", f"mlmagic: not reading {message}")
        raise RefusedFile(message) from None
    return os.fdopen(fd, "rb")


def read_run_file(paths: RunPaths, path: Path, offset: int = 0, limit: int | None = None) -> bytes:
    """The bytes of a run's file from ``offset`` (at most ``limit``); ``b""`` when missing.

    Raises
    ------
    RefusedFile
        As :func:`open_run_file`.
    """
    file = open_run_file(paths, path)
    if file is None:
        return b""
    with file:
        file.seek(offset)
        return file.read() if limit is None else file.read(limit)


def read_json_object(paths: RunPaths, path: Path) -> dict[str, Any]:
    """The JSON object in a run's file; ``{}`` when it is missing or not one (noted once)."""
    name = path.relative_to(paths.root).as_posix()
    try:
        file = open_run_file(paths, path)
    except RefusedFile:
        return {}
    if file is None:
        return {}
    with file:
        data = file.read(_MAX_JSON_BYTES + 1)
    problem = None
    value: Any = None
    if len(data) > _MAX_JSON_BYTES:
        problem = f"larger than {_MAX_JSON_BYTES >> 20} MiB"
    else:
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            problem = "not JSON"
        else:
            if not isinstance(value, dict):
                problem = f"JSON, but a {type(value).__name__}, not an object"
    if problem is not None:
        note_once(
            paths,
            f"mlmagic: {name} cannot be read",
            f"mlmagic: {name} cannot be read: it is {problem}, so it is left out of the "
            "run's details (mlmagic_run writes it; a script that writes it itself must "
            "write one JSON object).",
        )
        return {}
    return value  # type: ignore[no-any-return]


def read_metrics(
    paths: RunPaths, offset: int = 0, limit: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The metric records of a run from ``offset``, as :func:`mlmagic_run.read_metrics`.

    Lines that are not metric records are skipped, and the run's log says so once.
    A metrics file that is refused reads as empty.
    """
    try:
        file = open_run_file(paths, paths.metrics)
    except RefusedFile:
        return [], offset
    if file is None:
        return [], offset
    skipped: list[tuple[int, str]] = []
    with file:
        records, end = mlmagic_run.read_metrics(
            file, offset, limit=limit, on_skip=lambda at, why: skipped.append((at, why))
        )
    if skipped:
        at, why = skipped[0]
        name = paths.metrics.relative_to(paths.root).as_posix()
        note_once(
            paths,
            f"mlmagic: skipped lines of {name}",
            f"mlmagic: skipped lines of {name} that are not metric records (the first at "
            f"byte {at}: {why}); the other metrics are kept. Log metrics with "
            "mlmagic_run.log().",
        )
    return records, end


def read_exit(paths: RunPaths) -> tuple[int | None, str]:
    """The exit code and the script's error (``""`` if none) the launcher wrote."""
    record = read_json_object(paths, paths.exit_file)
    code = record.get("exit_code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = None
    error = record.get("error")
    if not isinstance(error, str):
        return code, ""
    # One line of the run's details, whatever the script printed.
    line = _CONTROL.sub(" ", error.strip().splitlines()[0] if error.strip() else "")
    if len(line) > _MAX_ERROR:
        line = line[: _MAX_ERROR - 1] + "…"
    return code, line


def note_once(paths: RunPaths, key: str, text: str) -> None:
    """Note ``text`` in the run's log unless a note holding ``key`` is there already.

    ``text`` must contain ``key``. Readers that poll a run (the stream, every kernel, the
    server, ``ws.runs.list()``) call this for what they find wrong with its files, and
    the run's log says it once. Nothing is noted for a run without a journal of its own
    (made before the journal moved out of ``system/``), and a journal that cannot be
    written is left as it is: a note is only a note.
    """
    marker = (str(paths.root), key)
    needle = json.dumps(key)[1:-1].encode()  # the key as it appears in a JSON line
    with _noted_lock:  # one note at a time in this process: no two threads say it twice
        if marker in _noted:
            return
        try:
            fd = _open_inside(paths.root, paths.events.relative_to(paths.root).parts)
            with os.fdopen(fd, "rb") as file:
                if not any(needle in line for line in file):
                    journal.note(paths.events, text)
        except (OSError, _NotAFile):
            return  # no journal to note in now: a later reader tries again
        _noted.add(marker)


def _open_inside(root: Path, parts: tuple[str, ...]) -> int:
    """A read-only descriptor of ``root/parts...``, following no link below ``root``."""
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            following = _open_no_link(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, directory, stat.S_ISDIR
            )
            os.close(directory)
            directory = following
        return _open_no_link(
            parts[-1], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, directory, stat.S_ISREG
        )
    finally:
        os.close(directory)


def _open_no_link(name: str, flags: int, directory: int, wanted: Callable[[int], bool]) -> int:
    # Look before opening, so that a FIFO or a device is never opened at all; then check
    # that what was opened is what was looked at (not swapped in between).
    before = os.stat(name, dir_fd=directory, follow_symlinks=False)
    if not wanted(before.st_mode):
        raise _NotAFile(_kind(before.st_mode))
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW, dir_fd=directory)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
            raise _NotAFile("not a regular file") from None
        raise
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or not wanted(after.st_mode):
        os.close(fd)
        raise _NotAFile("a file that was replaced while mlmagic opened it")
    return fd


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISREG, "a file where a folder belongs"),
    ):
        if test(mode):
            return what
    return "not a regular file"
