"""The run's journal: mlmagic's own events (stages, build, end) as JSON lines.

The journal, the script's output log and the metrics file together are the whole history
of a run, so any process (the submitting kernel, a new kernel after a restart, the CLI,
the Jupyter server) can replay and follow it. Each event is one ``os.write`` on an
``O_APPEND`` descriptor, so writers in several processes never interleave mid-line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import stat
from enum import Enum
from pathlib import Path
from typing import Any

from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Stage, Status

__all__ = ["append", "decode", "encode", "note"]

_REPLACED = (
    "the run's journal had been replaced by something that is not a file (a link?); it was "
    "removed, and the events before this line are lost"
)


def encode(event: RunEvent) -> str:
    """One JSON line (without the newline) for ``event``."""
    data: dict[str, Any] = {}
    for item in dataclasses.fields(event):
        value = getattr(event, item.name)
        if value is None or value == "":
            continue
        if isinstance(value, BuildEvent):
            value = {k: _plain(v) for k, v in dataclasses.asdict(value).items() if v is not None}
        data[item.name] = _plain(value)
    return json.dumps(data, separators=(",", ":"))


def decode(line: str) -> RunEvent:
    """The event :func:`encode` wrote."""
    data = json.loads(line)
    data["kind"] = RunEventKind(data["kind"])
    if "stage" in data:
        data["stage"] = Stage(data["stage"])
    if "status" in data:
        data["status"] = Status(data["status"])
    if "build" in data:
        build = data["build"]
        build["kind"] = BuildEventKind(build["kind"])
        data["build"] = BuildEvent(**build)
    return RunEvent(**data)


def append(path: Path, event: RunEvent) -> None:
    """Append ``event`` to the journal at ``path``.

    Whatever stands where the journal belongs and is not a regular file (a symbolic link
    or a FIFO planted by a local-target script) is removed, never what a link points to,
    and the journal starts again with a note saying so.

    Raises
    ------
    OSError
        The journal cannot be written (its folder is gone, the disk is full, a folder
        stands in its place).
    """
    fd, replaced = _open(path)
    try:
        if replaced:
            _write(fd, _note_event(f"mlmagic: {_REPLACED}"))
        _write(fd, event)
    finally:
        os.close(fd)


def note(path: Path, text: str) -> None:
    """Append a line from mlmagic to the run's log stream (a build log event)."""
    append(path, _note_event(text))


def _note_event(text: str) -> RunEvent:
    return RunEvent(RunEventKind.BUILD, build=BuildEvent(BuildEventKind.LOG, message=text))


def _open(path: Path) -> tuple[int, bool]:
    """A descriptor to append to the journal; ``True`` when it had to be made again."""
    # O_NOFOLLOW: never write through a link; O_NONBLOCK: a FIFO fails at once, not hangs.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    replaced = False
    for _ in range(3):
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO):
                raise
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd, replaced
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # removes a link itself, never its target
        replaced = True
    raise OSError(errno.EAGAIN, f"{path} is replaced again and again; {_REPLACED}")


def _write(fd: int, event: RunEvent) -> None:
    os.write(fd, (encode(event) + "\n").encode())


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
