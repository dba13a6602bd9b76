"""Builds, deployments and runs followed in the terminal, as the widgets follow them.

On a terminal, :class:`BuildProgress` and :class:`RunProgress` draw a live display with
rich's :class:`~rich.live.Live`: the stages with their times, the build steps, the last
values of the metrics and a tail of the log, redrawn at most ten times a second. Piped
(CI logs, ``| tee``) they print plain lines instead, one per step, stage, log line and
metric, so nothing is redrawn and nothing is lost. Both keep their state in the bounded
models the widgets use (:mod:`mlmagic.widgets.model`), fed by the same events.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TypeVar

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from mlmagic.cli.output import status_style
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Stage, Status
from mlmagic.widgets.model import BuildSteps, LogTail, Metrics, StageTimeline, step_label

__all__ = ["BuildProgress", "RunProgress"]

P = TypeVar("P", bound="_Progress")

#: Log lines the live display shows under the steps.
TAIL_LINES = 12
_MARKS = {
    "done": ("✓", "green"),
    "cached": ("✓", "dim"),
    "running": ("▸", "cyan"),
    "current": ("▸", "cyan"),
    "failed": ("✗", "red"),
    "stopped": ("·", "dim"),
    "canceled": ("✗", "yellow"),
    "skipped": ("·", "dim"),
    "pending": ("·", "dim"),
}


class _Progress:
    """Shared machinery: the lock, the live display, the plain printer."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.live = console.is_terminal and not quiet
        self.quiet = quiet
        self._lock = threading.Lock()
        self._log = LogTail(TAIL_LINES)
        self._steps = BuildSteps()
        self._display: Live | None = None
        self._ended = False
        self._raised = False

    def __enter__(self: P) -> P:
        if self.live:
            self._display = Live(
                console=self.console,
                get_renderable=self._render,
                refresh_per_second=10,
                transient=False,
            )
            self._display.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._ended = True
        self._raised = error is not None
        if self._display is not None:
            self._display.refresh()
            self._display.stop()

    def _render(self) -> RenderableType:
        with self._lock:
            return Group(*self._lines(time.time()))

    def _lines(self, now: float) -> list[Text]:
        raise NotImplementedError

    def _print(self, text: str) -> None:
        """A plain line (not a terminal): printed at once, whole, never redrawn."""
        print(text, file=self.console.file, flush=True)

    def _build_event(self, event: BuildEvent) -> None:
        """Record a build event; with plain output, print its line."""
        kind = event.kind
        if kind is BuildEventKind.STEP:
            self._steps.start(step_label(event), event.step_index, event.time)
        elif kind is BuildEventKind.STEP_DONE:
            self._steps.done(
                step_label(event),
                event.step_index,
                cached=event.cached,
                duration=event.duration,
                at=event.time,
            )
        elif kind is BuildEventKind.LOG:
            self._log.append_line(event.message)
        elif kind is BuildEventKind.ERROR:
            self._steps.fail(event.step, event.time)
        if self.live:
            return
        if kind is BuildEventKind.STEP and not self.quiet:
            self._print(f"==> {step_label(event)}")
        elif kind is BuildEventKind.LOG and not self.quiet:
            self._print(f"    {event.message}")
        elif kind is BuildEventKind.STEP_DONE and event.cached and not self.quiet:
            self._print(f"    (cached) {step_label(event)}")
        elif kind is BuildEventKind.DONE:
            how = "cache hit" if event.cached else "built"
            self._print(f"==> {event.image} ({how} in {event.duration or 0:.2f}s)")

    def _step_lines(self, now: float) -> list[Text]:
        lines = []
        for step in self._steps.ordered():
            mark, style = _MARKS.get(step.state, ("·", ""))
            took = step.duration if step.duration is not None else now - step.started
            when = "cached" if step.state == "cached" else f"{took:.1f} s"
            line = Text(f"  {mark} ", style=style)
            line.append(step.label, style="dim" if step.state == "cached" else "")
            line.append(f"  {when}", style="dim")
            lines.append(line)
        return lines

    def _failed(self) -> bool:
        """Whether it ended in failure (the last frame then keeps the log's tail)."""
        return self._raised

    def _tail_lines(self) -> list[Text]:
        if self._ended and not self._failed():
            return []
        return [Text(f"    │ {line}", style="dim", no_wrap=True) for line in self._log.lines()]


class BuildProgress(_Progress):
    """An environment build, or a deployment, in the terminal.

    Parameters
    ----------
    title
        What is built, e.g. ``"digits-env"`` or ``"service digits-svc"``.
    console
        Where to draw (a terminal gets the live display).
    quiet
        Print only the outcome.
    """

    def __init__(self, title: str, console: Console, *, quiet: bool = False) -> None:
        super().__init__(console, quiet=quiet)
        self.title = title
        self._started = time.time()

    def handle(self, event: BuildEvent) -> None:
        """Show one event of the build."""
        with self._lock:
            self._build_event(event)

    def _lines(self, now: float) -> list[Text]:
        state = "failed" if self._failed() else "built" if self._ended else "building"
        head = Text(f"{state} {self.title}", style="bold red" if self._failed() else "bold")
        head.append(f"  {now - self._started:.1f} s", style="dim")
        return [head, *self._step_lines(now), *self._tail_lines()]


class RunProgress(_Progress):
    """A run in the terminal: stages, the environment's build, metrics and the log.

    Parameters
    ----------
    run_id
        The run's id (the display's title).
    console
        Where to draw (a terminal gets the live display).
    """

    def __init__(self, run_id: str, console: Console) -> None:
        super().__init__(console)
        self.run_id = run_id
        self._stages = StageTimeline()
        self._metrics = Metrics()
        self._end: RunEvent | None = None
        self._progress = ""  # how far Running is: a notebook's "cell 3/8"

    def handle(self, event: RunEvent) -> None:
        """Show one event of the run."""
        with self._lock:
            self._stages.touch(event.time)
            if event.kind is RunEventKind.STAGE and event.stage:
                self._stages.enter(event.stage, event.time)
            elif event.kind is RunEventKind.BUILD and event.build:
                self._build_event(event.build)
            elif event.kind is RunEventKind.LOG:
                self._log.append_line(event.message)
            elif event.kind is RunEventKind.METRIC and event.name and event.value is not None:
                self._metrics.add(event.name, event.value, event.step)
            elif event.kind is RunEventKind.END and event.status:
                self._stages.end(event.status, event.time)
                self._end = event
            elif event.kind is RunEventKind.PROGRESS:
                self._progress = event.message
            if not self.live and event.kind is not RunEventKind.BUILD:
                self._print_plain(event)

    def _failed(self) -> bool:
        return self._raised or (self._end is not None and self._end.status is Status.FAILED)

    def _print_plain(self, event: RunEvent) -> None:
        if event.kind is RunEventKind.STAGE and event.stage:
            self._print(f"==> {event.stage.value}")
        elif event.kind is RunEventKind.LOG:
            self._print(event.message)
        elif event.kind is RunEventKind.METRIC:
            self._print(f"    [metric] {event.name}={event.value} (step {event.step})")
        elif event.kind is RunEventKind.END and event.status:
            self._print(_outcome(event))

    def _lines(self, now: float) -> list[Text]:
        status = self._stages.status or Status.QUEUED
        head = Text(f"run {self.run_id}  ", style="bold")
        head.append(status.value, style=_status_colour(status))
        head.append(f"  {self._stages.elapsed(now):.1f} s", style="dim")
        stages = Text("  ")
        for index, stage in enumerate(Stage):
            state = self._stages.state(stage)
            mark, style = _MARKS.get(state, ("·", ""))
            took = self._stages.duration(stage, now)
            stages.append(" · " if index else "", style="dim")
            stages.append(f"{mark} {stage.value}", style=style)
            if stage is Stage.RUNNING and self._progress:
                stages.append(f" {self._progress}", style=style)
            if took is not None:
                stages.append(f" {took:.1f} s", style="dim")
        lines = [head, stages]
        if self._stages.current is Stage.PREPARING:
            lines += self._step_lines(now)  # the environment's build, while it runs
        if self._metrics.series:
            shown = "  ".join(
                f"{s.name}={s.latest:.4g}"
                for s in self._metrics.series.values()
                if s.latest is not None
            )
            lines.append(Text(f"  metrics  {shown}"))
        lines += self._tail_lines()
        if self._ended and self._end is not None:
            lines.append(Text(_outcome(self._end), style=_status_colour(self._end.status)))
        return lines


def _status_colour(status: Status | None) -> str:
    return status_style(status.value if status else "")


def _outcome(event: RunEvent) -> str:
    """``==> Failed, exit code 1: ValueError: ...``: how a run ended, in one line."""
    assert event.status is not None
    code = f", exit code {event.exit_code}" if event.exit_code is not None else ""
    why = f": {event.message}" if event.message else ""
    return f"==> {event.status.value}{code}{why}"
