"""Replay and follow a run's events from its files: the one event stream of a run.

The stream reads the journal (stages, build, end), the script's output log, the metrics
file and a notebook's progress (one ``PROGRESS`` per cell) from the start, then follows
them while the run is live. Every view (the widget, ``run.wait(show_output=True)``,
``mlmagic run logs --follow``, the REST handler) consumes this iterator, in the
submitting kernel or in any other process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic.events import RunEvent, RunEventKind
from mlmagic.run import journal
from mlmagic.run.paths import RunPaths
from mlmagic.run.untrusted import RefusedFile, read_metrics, read_run_file

if TYPE_CHECKING:
    from mlmagic.workspace import Workspace

__all__ = ["follow"]

_CHUNK = 1 << 20


class _Tail:
    """Complete lines appended to a file of the run since the last read.

    The file is read through :mod:`mlmagic.run.untrusted`: one that is refused (a link
    planted by the script) reads as empty. A line longer than a read is passed on in
    pieces, so a script that prints no newline cannot make the reader hold its output.
    """

    def __init__(self, paths: RunPaths, path: Path) -> None:
        self.paths, self.path = paths, path
        self.offset = 0
        self.pending = b""

    def lines(self) -> list[str]:
        """The complete lines read now, oldest first."""
        text, count = self.block()
        return text.split("\n") if count else []

    def block(self) -> tuple[str, int]:
        """The complete lines read now as one text joined by ``\\n``, and how many.

        The same lines as :meth:`lines` (an empty text can be one empty line), decoded
        once for all of them: a newline never falls inside a UTF-8 sequence, so decoding
        the block replaces exactly what decoding each line would.
        """
        try:
            data = read_run_file(self.paths, self.path, self.offset, _CHUNK)
        except RefusedFile:
            return "", 0
        if not data:
            return "", 0
        self.offset += len(data)
        data = self.pending + data
        cut = data.rfind(b"\n")
        head: bytes | None = None
        count = 0
        if cut >= 0:
            head, self.pending = data[:cut], data[cut + 1 :]
            count = head.count(b"\n") + 1
        else:
            self.pending = data
        if len(self.pending) >= _CHUNK:
            head = self.pending if head is None else head + b"\n" + self.pending
            count += 1
            self.pending = b""
        return ("" if head is None else head.decode("utf-8", errors="replace")), count

    def rest(self) -> list[str]:
        """The last line, when the file ended without a newline."""
        line, self.pending = self.pending, b""
        return [line.decode("utf-8", errors="replace")] if line else []


def _progress(line: str) -> RunEvent | None:
    """The ``PROGRESS`` event of a line the notebook runner wrote; ``None`` for a line
    that is not one (the run could write anything there)."""
    try:
        data = json.loads(line)
        cell, cells = data["cell"], data["cells"]
    except (ValueError, KeyError, TypeError):
        return None
    if not all(type(n) is int for n in (cell, cells)) or not 0 < cell <= cells:
        return None
    return RunEvent(RunEventKind.PROGRESS, step=cell, total=cells, message=f"cell {cell}/{cells}")


def follow(
    ws: Workspace,
    run_id: str,
    *,
    live: bool = True,
    poll: float = 0.05,
    until: float | None = None,
    batch: bool = False,
) -> Iterator[RunEvent]:
    """The run's events from the beginning; with ``live``, until the run ends.

    The ``END`` event comes last, after every log line and metric written before it.
    With ``until`` (a :func:`time.monotonic` time) the stream also stops then, without
    an ``END``, even when the run writes nothing.

    With ``batch``, the log comes as ``LINES`` events instead of one ``LOG`` per line:
    each carries the lines read at once (up to 1 MiB), the same lines in the same order,
    so a consumer that keeps only a tail and a count (the widget) does not pay an event
    per line; a 200,000-line run is then a few dozen events, not 200,000.
    """
    from mlmagic.run.lifecycle import watch

    paths = RunPaths(ws.path("runs", run_id))
    # Runs made before the journal left system/ have it there; a new run always has its
    # own (made at submit), so whatever a script puts in system/ is never taken for one.
    legacy = not os.path.lexists(paths.events) and os.path.lexists(paths.legacy_events)
    events = _Tail(paths, paths.legacy_events if legacy else paths.events)
    output = _Tail(paths, paths.output_log)
    progress = _Tail(paths, paths.progress)
    metrics_offset = 0
    end: RunEvent | None = None
    last_check = 0.0
    closed_at: float | None = None
    while True:
        busy = False
        for line in events.lines():
            try:
                event = journal.decode(line)
            except (ValueError, KeyError, TypeError):
                continue  # not an event mlmagic wrote (a line cut short by a full disk)
            if event.kind is RunEventKind.END:
                end = event
            else:
                yield event
                busy = True
        while True:
            if batch:
                text, count = output.block()
                if not count:
                    break
                busy = True
                yield RunEvent(RunEventKind.LINES, message=text, total=count)
                continue
            lines = output.lines()
            if not lines:
                break
            busy = True
            for line in lines:
                yield RunEvent(RunEventKind.LOG, message=line)
        for line in progress.lines():
            step = _progress(line)
            if step is not None:
                busy = True
                yield step
        while True:
            records, offset = read_metrics(paths, metrics_offset, _CHUNK)
            if offset == metrics_offset:
                break
            metrics_offset = offset
            for record in records:
                busy = True
                yield RunEvent(
                    RunEventKind.METRIC,
                    name=record["name"],
                    step=record["step"],
                    value=record["value"],
                    time=record["time"],
                )
        if end is not None or not live:
            for line in output.rest():
                if batch:
                    yield RunEvent(RunEventKind.LINES, message=line, total=1)
                else:
                    yield RunEvent(RunEventKind.LOG, message=line)
            if end is not None:
                yield end
            return
        if until is not None and time.monotonic() >= until:
            return
        if not busy:
            now = time.monotonic()
            if now - last_check > (0.5 if closed_at else 2):
                # Nobody may be driving the run any more (the kernel restarted).
                last_check = now
                stored = ws.store.run(run_id)
                if stored is None:
                    return
                if not stored.status.is_terminal:
                    watch(ws, run_id)
                elif closed_at is None:
                    closed_at = now
                elif now - closed_at > 1:
                    # Closed, but its journal never got the end (a writer died in between).
                    end = RunEvent(
                        RunEventKind.END,
                        status=stored.status,
                        exit_code=stored.exit_code,
                        message=stored.error or "",
                    )
                    continue
            time.sleep(poll)
