"""What the views show, as plain Python state: no widgets, no HTML, no I/O.

Every class here is fed from :meth:`handle` of a view, possibly thousands of times a
second and from any thread (the view holds the lock), so each update is O(1) amortised
and each class keeps a bounded amount of state whatever the length of the run.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from mlmagic.events import BuildEvent, BuildEventKind, Stage, Status

__all__ = [
    "BuildSteps",
    "LogTail",
    "MetricSeries",
    "Metrics",
    "StageTimeline",
    "StepState",
    "build_event_line",
    "step_label",
]

# A complete escape sequence: CSI (colours, cursor moves), OSC (titles, links) ended by
# BEL or ST, or a two-character escape.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# The start of an escape sequence that the next chunk of output may complete.
_ANSI_OPEN = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?")
# Control characters a terminal would not print; \t, \n, \r and \b are handled apart.
_STRAY = re.compile(r"[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]")
# Anything that takes a line off the fast path.
_SPECIAL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The same within a block of lines, where \n only separates them.
_SPECIAL_IN_BLOCK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MOVES = re.compile(r"(\r|\n|\x08)")
# Longest unfinished escape sequence kept for the next chunk (OSC titles can be long).
_MAX_CARRY = 512


class LogTail:
    """The last lines of a log, as a terminal would show them.

    ``\\n`` ends a line, ``\\r`` returns to the start of the current line so that what
    follows overwrites it character by character (how tqdm redraws a progress bar, and how
    Jupyter renders a stream), ``\\b`` steps back one character, and ANSI escape sequences
    (colours, cursor moves) are removed, even when split across two chunks.

    Parameters
    ----------
    max_lines
        How many lines are kept; older ones are dropped (the whole log is in the
        workspace, never here).
    max_line_chars
        Longer lines are cut to this many characters and end with ``…``, so that the tail
        stays small whatever the script prints.
    """

    def __init__(self, max_lines: int = 200, *, max_line_chars: int = 2000) -> None:
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, not {max_lines}.")
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        #: Lines ended so far, including those dropped from the tail.
        self.total = 0
        self._lines: deque[tuple[str, str]] = deque(maxlen=max_lines)
        self._partial = ""  # the line being written, not yet ended by \n
        self._partial_tag = ""
        self._cursor = 0  # where the next character goes in ``_partial``
        self._carry = ""  # an escape sequence cut at the end of the last chunk

    @property
    def dropped(self) -> int:
        """How many ended lines are no longer in the tail."""
        return self.total - len(self._lines)

    def append(self, text: str, tag: str = "") -> None:
        """Feed raw output: a line that ``text`` leaves unended waits for the next chunk.

        Parameters
        ----------
        text
            Any chunk of output, possibly several lines or part of one.
        tag
            A class for the lines this chunk ends (the views use it to style build steps).
        """
        self._feed(self._carry + text, tag, chunked=True)

    def append_line(self, line: str, tag: str = "") -> None:
        """Feed one line as an event carries it: a newline is implied.

        A line that ends with ``\\r`` (and not ``\\n``) is a progress bar still being
        redrawn: it stays the current line and the next one overwrites it.

        Parameters
        ----------
        line
            The text of the line, with or without its ending.
        tag
            A class for the line (the views use it to style build steps).
        """
        if not self._partial and not self._carry and not _SPECIAL.search(line):
            # The fast path: almost every line of almost every log.
            if len(line) > self.max_line_chars:
                line = line[: self.max_line_chars] + "…"
            self._lines.append((line, tag))
            self.total += 1
            return
        self._feed(self._carry + line, tag, chunked=False)
        if not line.endswith(("\n", "\r")):
            self._end_line()

    def extend_lines(self, lines: list[str], tag: str = "") -> None:
        """Feed several lines as events carry them: as :meth:`append_line` on each, in
        order, at a fraction of the cost when they are plain text (the usual case).

        Parameters
        ----------
        lines
            The lines, oldest first.
        tag
            A class for the lines.
        """
        if (
            not self._partial
            and not self._carry
            and not _SPECIAL.search("".join(lines))
            and max(map(len, lines), default=0) <= self.max_line_chars
        ):
            # Only the last lines can stay in the tail; the others only count.
            self._lines.extend((line, tag) for line in lines[-self.max_lines :])
            self.total += len(lines)
            return
        for line in lines:
            self.append_line(line, tag)

    def extend_block(self, text: str, tag: str = "") -> None:
        """Feed lines joined by ``\\n`` (a ``LINES`` event's text): as
        :meth:`extend_lines` on ``text.split("\\n")``, without splitting the lines that
        the tail would drop at once, the usual case.

        Parameters
        ----------
        text
            One or more lines, oldest first, joined by ``\\n`` (``""`` is one empty line).
        tag
            A class for the lines.
        """
        if self._partial or self._carry or _SPECIAL_IN_BLOCK.search(text):
            self.extend_lines(text.split("\n"), tag)
            return
        # Only the last max_lines lines can stay in the tail; the others are only counted.
        kept = text.rsplit("\n", self.max_lines)
        count = text.count("\n") + 1
        if len(kept) > self.max_lines:
            del kept[0]
        limit = self.max_line_chars
        self._lines.extend(
            (line if len(line) <= limit else line[:limit] + "…", tag) for line in kept
        )
        self.total += count

    def __len__(self) -> int:
        """How many lines the tail shows, the unended one included."""
        return min(self.max_lines, len(self._lines) + (1 if self._partial else 0))

    def lines(self) -> list[str]:
        """The lines of the tail, oldest first, with the unended line last when there is one."""
        return [text for text, _ in self.tagged()]

    def tagged(self) -> Iterator[tuple[str, str]]:
        """``(text, tag)`` for each line of the tail, oldest first; at most ``max_lines``."""
        lines = iter(self._lines)
        if self._partial:
            if len(self._lines) == self.max_lines:
                next(lines)  # keep the bound with the unended line shown
            yield from lines
            yield self._partial, self._partial_tag
        else:
            yield from lines

    def last(self, count: int) -> list[str]:
        """The last ``count`` lines of the tail (for an error message)."""
        return self.lines()[-count:] if count > 0 else []

    def _feed(self, text: str, tag: str, *, chunked: bool) -> None:
        self._carry = ""
        if "\x1b" in text:
            cut = text.rfind("\x1b")
            if _ANSI.match(text, cut) is None and _ANSI_OPEN.fullmatch(text, cut):
                # An unfinished sequence: the next chunk may finish it; a line cannot.
                if chunked and len(text) - cut <= _MAX_CARRY:
                    self._carry = text[cut:]
                text = text[:cut]
            text = _ANSI.sub("", text)
        text = _STRAY.sub("", text)
        self._partial_tag = tag
        for piece in _MOVES.split(text):
            if piece == "\n":
                self._end_line()
            elif piece == "\r":
                self._cursor = 0
            elif piece == "\x08":
                self._cursor = max(0, self._cursor - 1)
            elif piece:
                self._write(piece)

    def _write(self, piece: str) -> None:
        end = self._cursor + len(piece)
        partial = self._partial
        if self._cursor == len(partial):
            partial += piece
        else:
            partial = partial[: self._cursor] + piece + partial[end:]
        if len(partial) > self.max_line_chars:
            partial = partial[: self.max_line_chars] + "…"
        self._partial = partial
        self._cursor = min(end, len(partial))

    def _end_line(self) -> None:
        self._lines.append((self._partial, self._partial_tag))
        self.total += 1
        self._partial = ""
        self._cursor = 0


class MetricSeries:
    """The values of one metric: the latest, and the last few for a sparkline.

    Parameters
    ----------
    name
        The metric's name.
    max_points
        How many points are kept for the sparkline.
    """

    def __init__(self, name: str, max_points: int = 200) -> None:
        self.name = name
        self.points: deque[tuple[float, float]] = deque(maxlen=max_points)
        self.latest: float | None = None
        self.latest_step: int | None = None
        self.count = 0

    def add(self, value: float, step: int | None = None) -> None:
        """Record ``value`` at ``step`` (or at the next position when there is no step)."""
        self.latest = value
        self.latest_step = step
        x = float(step) if step is not None else float(self.count)
        self.count += 1
        if math.isfinite(value):
            self.points.append((x, value))


class Metrics:
    """The metrics of a run, by name, in the order they first appeared.

    Parameters
    ----------
    max_points
        Points kept per series.
    max_series
        Series kept; values of further names are counted in :attr:`dropped_names`, so a
        script that logs a new name per step cannot grow the view without bound.
    """

    def __init__(self, max_points: int = 200, max_series: int = 50) -> None:
        self.max_points = max_points
        self.max_series = max_series
        self.series: dict[str, MetricSeries] = {}
        self.dropped_names: set[str] = set()

    def add(self, name: str, value: float, step: int | None = None) -> None:
        """Record one value of metric ``name``."""
        series = self.series.get(name)
        if series is None:
            if len(self.series) >= self.max_series:
                if len(self.dropped_names) < 10_000:
                    self.dropped_names.add(name)
                return
            series = self.series[name] = MetricSeries(name, self.max_points)
        series.add(value, step)

    def __len__(self) -> int:
        return len(self.series)


class StageTimeline:
    """When each stage of a run started and ended, and how the run ended."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.current: Stage | None = None
        self.status: Status | None = None
        self._start: dict[Stage, float] = {}
        self._end: dict[Stage, float] = {}

    def touch(self, at: float) -> None:
        """Note that something happened at ``at``; the earliest such time starts the clock."""
        if self.started_at is None or at < self.started_at:
            self.started_at = at

    def enter(self, stage: Stage, at: float) -> None:
        """Stage ``stage`` starts at ``at``; the current one ends there."""
        self.touch(at)
        if stage is self.current:
            return
        if self.current is not None:
            self._end[self.current] = at
        self._start.setdefault(stage, at)
        self._end.pop(stage, None)
        self.current = stage
        self.status = Status(stage.value)

    def end(self, status: Status, at: float) -> None:
        """The run ended with ``status`` at ``at``."""
        self.touch(at)
        if self.current is not None:
            self._end[self.current] = at
        self.status = status
        self.ended_at = at

    @property
    def ended(self) -> bool:
        """``True`` once the run has ended."""
        return self.status is not None and self.status.is_terminal

    def elapsed(self, now: float) -> float:
        """Seconds since the run started, until it ended or ``now``."""
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at)

    def duration(self, stage: Stage, now: float) -> float | None:
        """Seconds ``stage`` took (so far, for the current one); ``None`` if it never started."""
        start = self._start.get(stage)
        if start is None:
            return None
        end = self._end.get(stage)
        if end is None:
            end = now if self.ended_at is None else self.ended_at
        return max(0.0, end - start)

    def state(self, stage: Stage) -> str:
        """One of ``done``, ``current``, ``failed``, ``canceled``, ``skipped``, ``pending``."""
        if stage in self._start:
            if stage is self.current:
                if self.status is Status.FAILED:
                    return "failed"
                if self.status is Status.CANCELED:
                    return "canceled"
                return "done" if self.ended else "current"
            return "done"
        later = list(Stage)[list(Stage).index(stage) + 1 :]
        if self.ended or any(other in self._start for other in later):
            return "skipped"
        return "pending"


@dataclass
class StepState:
    """One step of a build.

    Attributes
    ----------
    label
        ``[i/n] instruction``.
    index
        Position of the step, when known.
    state
        ``running``, ``done``, ``cached``, ``failed`` or ``stopped`` (still running when
        another step failed).
    started
        Wall-clock time it started.
    duration
        Seconds it took, once it ended.
    """

    label: str
    index: int | None
    state: str
    started: float
    duration: float | None = None


class BuildSteps:
    """The steps of a build, in order, with their states."""

    def __init__(self) -> None:
        self._steps: dict[str, StepState] = {}

    def start(self, label: str, index: int | None, at: float) -> None:
        """Step ``label`` starts at ``at``."""
        self._steps[label] = StepState(label, index, "running", at)

    def done(
        self, label: str, index: int | None, *, cached: bool, duration: float | None, at: float
    ) -> None:
        """Step ``label`` ended; a step never seen to start is added."""
        step = self._steps.get(label)
        if step is None:
            step = self._steps[label] = StepState(label, index, "running", at)
        step.state = "cached" if cached else "done"
        step.duration = duration if duration is not None else max(0.0, at - step.started)

    def fail(self, label: str | None, at: float) -> None:
        """The build failed in step ``label`` (when known; else every running step)."""
        for step in self._steps.values():
            if step.state != "running":
                continue
            step.duration = max(0.0, at - step.started)
            step.state = "failed" if label is None or step.label == label else "stopped"
        if label is not None and label not in self._steps:
            self._steps[label] = StepState(label, None, "failed", at, 0.0)
        elif label is not None:
            self._steps[label].state = "failed"

    def ordered(self) -> list[StepState]:
        """The steps by position (steps without one after, in the order they started)."""
        steps = list(self._steps.values())
        return sorted(steps, key=lambda step: step.index if step.index is not None else 1 << 30)

    def failed(self) -> StepState | None:
        """The first failed step, if any."""
        return next((step for step in self.ordered() if step.state == "failed"), None)

    def __len__(self) -> int:
        return len(self._steps)


def step_label(event: BuildEvent) -> str:
    """The ``[i/n] instruction`` label of a step event, adding the position when it is known."""
    label = event.step or event.message or "step"
    if event.step_index is not None and not label.startswith("["):
        count = event.step_count if event.step_count is not None else "?"
        label = f"[{event.step_index}/{count}] {label}"
    return label


def _step_prefix(event: BuildEvent) -> str:
    """``[i/n]`` of the step an event belongs to, or ``""``."""
    if event.step_index is not None:
        return f"[{event.step_index}/{event.step_count or '?'}]"
    if event.step and event.step.startswith("[") and "]" in event.step:
        return event.step[: event.step.index("]") + 1]
    return ""


def build_event_line(event: BuildEvent) -> tuple[str, str] | None:
    """The log line and tag for a build event, or ``None`` when it adds no line.

    Tags: ``log`` (output of a step), ``step`` (a step starts or ends), ``done`` (the image
    is ready) and ``error`` (the build failed).
    """
    kind = event.kind
    if kind is BuildEventKind.LOG:
        prefix = _step_prefix(event)
        return (f"{prefix} {event.message}" if prefix else event.message), "log"
    if kind is BuildEventKind.STEP:
        return f"▸ {step_label(event)}", "step"
    if kind is BuildEventKind.STEP_DONE:
        took = "cached" if event.cached else f"{event.duration or 0.0:.1f} s"
        return f"✓ {step_label(event)} ({took})", "step"
    if kind is BuildEventKind.START:
        return f"▸ {event.message or 'building ' + (event.image or 'the environment')}", "step"
    if kind is BuildEventKind.DONE:
        image = f" {event.image}" if event.image else ""
        return f"✓ environment{image} {'cache hit' if event.cached else 'built'}", "done"
    if kind is BuildEventKind.ERROR:
        return f"✗ build failed: {event.message}", "error"
    return None
