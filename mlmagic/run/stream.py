"""Replay and follow a run's events from its files: the one event stream of a run.

The stream reads the journal (stages, build, end), the script's output log and the
metrics file from the start, then follows them while the run is live. Every view (the
widget, ``run.wait(show_output=True)``, ``mlmagic run logs --follow``, the REST handler)
consumes this iterator, in the submitting kernel or in any other process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlmagic.events import RunEvent, RunEventKind
from mlmagic.run import journal
from mlmagic.run.paths import RunPaths
from mlmagic_run import read_metrics

if TYPE_CHECKING:
    from mlmagic.workspace import Workspace

__all__ = ["follow"]

_CHUNK = 1 << 20


class _Tail:
    """Complete lines appended to a file since the last read."""

    def __init__(self, path: object) -> None:
        self.path = path
        self.offset = 0
        self.pending = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as file:  # type: ignore[call-overload]
                file.seek(self.offset)
                data = file.read(_CHUNK)
        except FileNotFoundError:
            return []
        if not data:
            return []
        self.offset += len(data)
        *complete, self.pending = (self.pending + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete]

    def rest(self) -> list[str]:
        """The last line, when the file ended without a newline."""
        line, self.pending = self.pending, b""
        return [line.decode("utf-8", errors="replace")] if line else []


def follow(
    ws: Workspace,
    run_id: str,
    *,
    live: bool = True,
    poll: float = 0.05,
    until: float | None = None,
) -> Iterator[RunEvent]:
    """The run's events from the beginning; with ``live``, until the run ends.

    The ``END`` event comes last, after every log line and metric written before it.
    With ``until`` (a :func:`time.monotonic` time) the stream also stops then, without
    an ``END``, even when the run writes nothing.
    """
    from mlmagic.run.lifecycle import watch

    paths = RunPaths(ws.path("runs", run_id))
    events, output = _Tail(paths.events), _Tail(paths.output_log)
    metrics_offset = 0
    end: RunEvent | None = None
    last_check = 0.0
    closed_at: float | None = None
    while True:
        busy = False
        for line in events.lines():
            event = journal.decode(line)
            if event.kind is RunEventKind.END:
                end = event
            else:
                yield event
                busy = True
        while True:
            lines = output.lines()
            if not lines:
                break
            busy = True
            for line in lines:
                yield RunEvent(RunEventKind.LOG, message=line)
        records, metrics_offset = read_metrics(paths.metrics, metrics_offset)
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
