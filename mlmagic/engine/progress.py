"""Turn BuildKit's plain progress output into :class:`BuildEvent`s. Pure: no I/O.

BuildKit (``--progress=plain``) prints vertices as ``#N <text>`` lines::

    #5 [2/4] RUN echo hello          a step starts
    #5 0.160 hello                   a line of its output, with seconds since it started
    #5 DONE 0.2s                     it ended
    #4 CACHED                        it came from the cache
    #7 ERROR: executor failed ...    it failed

Internal vertices (``[internal] load ...``) and digests are bookkeeping, not steps.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from mlmagic.events import BuildEvent, BuildEventKind

__all__ = ["ProgressParser"]

_VERTEX = re.compile(r"^#(\d+) (.*)$")
_STEP = re.compile(r"^\[(?:[\w.-]+ )?(\d+)/(\d+)\] (.*)$")
_LOG = re.compile(r"^\d+\.\d+ (.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")


@dataclass
class _Step:
    label: str
    index: int | None
    count: int | None
    tail: deque[str]


class ProgressParser:
    """Feed lines with :meth:`feed`; read the failing step after the build fails.

    Parameters
    ----------
    tail_lines
        How many lines of each step's output are kept for the error message.
    """

    def __init__(self, tail_lines: int = 30) -> None:
        self._steps: dict[str, _Step] = {}
        self._tail_lines = tail_lines
        self.failed_step: str | None = None
        self.failed_tail: list[str] = []
        self.error_lines: list[str] = []

    def feed(self, line: str) -> Iterator[BuildEvent]:
        """Events for one line of output (usually zero or one)."""
        line = line.rstrip("\r\n")
        match = _VERTEX.match(line)
        if not match:
            if line.strip() and not line.startswith("------"):
                self.error_lines.append(line)
            return
        vertex, text = match.groups()
        step = self._steps.get(vertex)
        if step is None:
            started = _STEP.match(text)
            if started:
                index, count, instruction = started.groups()
                label = f"[{index}/{count}] {instruction}"
                tail: deque[str] = deque(maxlen=self._tail_lines)
                step = _Step(label, int(index), int(count), tail)
                self._steps[vertex] = step
                yield BuildEvent(
                    BuildEventKind.STEP,
                    message=instruction,
                    step=step.label,
                    step_index=step.index,
                    step_count=step.count,
                )
            return
        yield from self._step_line(step, text)

    def _step_line(self, step: _Step, text: str) -> Iterator[BuildEvent]:
        if text == "CACHED":
            yield self._done(step, cached=True, duration=0.0)
            return
        done = _DONE.match(text)
        if done:
            yield self._done(step, cached=False, duration=float(done.group(1)))
            return
        if text.startswith("ERROR"):
            message = text.partition(":")[2].strip() or text
            self.failed_step = step.label
            # BuildKit's own line ends the tail: it holds the command's exit code.
            self.failed_tail = [*step.tail, message]
            yield BuildEvent(BuildEventKind.LOG, message=message, step=step.label)
            return
        log = _LOG.match(text)
        if log:
            content = log.group(1)
            step.tail.append(content)
            yield BuildEvent(BuildEventKind.LOG, message=content, step=step.label)

    @staticmethod
    def _done(step: _Step, *, cached: bool, duration: float) -> BuildEvent:
        return BuildEvent(
            BuildEventKind.STEP_DONE,
            step=step.label,
            step_index=step.index,
            step_count=step.count,
            cached=cached,
            duration=duration,
        )
