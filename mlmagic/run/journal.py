"""The run's journal: mlmagic's own events (stages, build, end) as JSON lines.

The journal, the script's output log and the metrics file together are the whole history
of a run, so any process (the submitting kernel, a new kernel after a restart, the CLI,
the Jupyter server) can replay and follow it. Each event is one ``os.write`` on an
``O_APPEND`` descriptor, so writers in several processes never interleave mid-line.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
from enum import Enum
from pathlib import Path
from typing import Any

from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Stage, Status
from mlmagic.exceptions import RunError

__all__ = ["append", "decode", "encode", "note"]


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

    Raises
    ------
    RunError
        ``path`` is a symbolic link (never followed) or not a regular file.
    OSError
        The journal cannot be written (its folder is gone, the disk is full).
    """
    line = (encode(event) + "\n").encode()
    # O_NONBLOCK: a FIFO put in its place fails at once instead of hanging the writer.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise RunError(
            f"The run's journal {path} is a symbolic link, not mlmagic's file: nothing was "
            "written through it. Remove the link to record the run's events again."
        ) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunError(
                f"The run's journal {path} is not a regular file: nothing was written to it. "
                "Remove it to record the run's events again."
            )
        os.write(fd, line)
    finally:
        os.close(fd)


def note(path: Path, text: str) -> None:
    """Append a line from mlmagic to the run's log stream (a build log event)."""
    append(path, RunEvent(RunEventKind.BUILD, build=BuildEvent(BuildEventKind.LOG, message=text)))


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
