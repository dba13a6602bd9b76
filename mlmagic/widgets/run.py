"""The view of a run: stages, status, metrics and the tail of the log, fed by :class:`RunEvent`."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import ipywidgets

from mlmagic.events import RunEvent, RunEventKind, Stage, Status
from mlmagic.widgets.base import FLUSH_INTERVAL, View
from mlmagic.widgets.model import LogTail, Metrics, StageTimeline, build_event_line
from mlmagic.widgets.render import (
    STYLE,
    badge,
    executed_notebook_html,
    format_duration,
    full_log_html,
    lines_box,
    log_box,
    run_details_html,
    sparkline_svg,
)

__all__ = ["FAST_LOG_INTERVAL", "HEADER_INTERVAL", "RunView"]

#: Lines of the log repeated under the status of a failed run.
FAILURE_LINES = 15
#: Least seconds between two redraws of the stepper while no stage changes.
HEADER_INTERVAL = 1.0
#: Least seconds between two redraws of a log box whose every line is new each time.
FAST_LOG_INTERVAL = 0.5
#: Most log lines held between two flushes before they go into the tail unrendered.
_MAX_UNREAD = 10_000
_monotonic = time.monotonic
_LOG = RunEventKind.LOG


class RunView(View):
    """Shows a run (or a deployment) as its events arrive.

    Parameters
    ----------
    title
        What runs, in the user's words: ``"train.py on digits-env:2"``.
    on_cancel
        Called (with no argument, from the kernel's thread) when the user presses
        Cancel; without it there is no Cancel button.
    tail_lines
        How many lines of the log are shown.
    run_id
        Shown in a small text field, ready to be copied, next to a link to the run's whole
        log when the kernel was started by a Jupyter server with mlmagic's extension.
    notebook
        For a notebook run, the file name of its executed copy: a link opens it.

    Notes
    -----
    :meth:`handle` may be called from any thread, thousands of times a second: it updates
    plain models and renders the widgets at most every 0.1 s (and at once on ``END``).
    The notebook feeds it ``follow(..., batch=True)``: a ``LINES`` event brings every
    line of one read of the log, and the tail keeps its last lines and counts the others
    without splitting them, so a run printing 200,000 lines is a few dozen events. Fed
    one ``LOG`` event per line instead, a line costs one append to a list; the lines go
    into the tail together, in order, when the view next needs them (a flush, another
    kind of event, :attr:`tail`).
    There is no timer: call :meth:`finish` when the events stop, so the last state shows.
    """

    def __init__(
        self,
        title: str,
        *,
        on_cancel: Callable[[], None] | None = None,
        tail_lines: int = 200,
        run_id: str | None = None,
        notebook: str | None = None,
    ) -> None:
        super().__init__(title)
        self._tail = LogTail(tail_lines)
        self._unread: list[str] = []  # log lines not yet in the tail, oldest first
        self._log_at = float("-inf")  # when the log box was last drawn
        self._header_at = float("-inf")  # when the stepper was last drawn, and its stages
        self._header_stages: tuple[Any, ...] = ()
        self._log_shown = 0  # the tail's total then
        self.timeline = StageTimeline()
        self._started = False  # whether the timeline has started (lines then take the fast path)
        self.metrics = Metrics()
        self.exit_code: int | None = None
        self.message = ""
        #: How far the Running stage is, in words (``cell 7/23``; ``""`` when unknown).
        self.progress = ""
        self._on_cancel = on_cancel
        self._log_dirty = True
        self._metrics_dirty = True
        self._header = ipywidgets.HTML()
        self._metrics_html = ipywidgets.HTML()
        self._nodes_html = ipywidgets.HTML()
        self.nodes: list[dict[str, Any]] = []
        self._log_html = ipywidgets.HTML()
        self.cancel_button = ipywidgets.Button(
            description="Cancel",
            icon="stop",
            tooltip="Stop the run's container",
            layout=ipywidgets.Layout(width="auto", display="" if on_cancel else "none"),
        )
        self.cancel_button.on_click(self._cancel_clicked)
        self.run_id_field = ipywidgets.Text(
            value=run_id or "",
            description="Run id",
            tooltip="Select and copy",
            layout=ipywidgets.Layout(width="28em", display="" if run_id else "none"),
        )
        # The field is there to be copied from; an edit in the browser is put back.
        self.run_id_field.observe(self._keep_run_id, names="value")
        self._run_id = run_id or ""
        self.details_link = ipywidgets.HTML(run_details_html(self._run_id))
        self.full_log = ipywidgets.HTML(full_log_html(self._run_id))
        self.executed_notebook = ipywidgets.HTML(
            executed_notebook_html(self._run_id, notebook) if notebook else ""
        )
        footer = ipywidgets.HBox(
            [
                self.cancel_button,
                self.run_id_field,
                self.details_link,
                self.full_log,
                self.executed_notebook,
            ],
            layout=ipywidgets.Layout(align_items="center"),
        )
        # The style sheet is sent once, apart from the header that changes on every flush:
        # a <style> in it would make the browser restyle the page ten times a second.
        style = ipywidgets.HTML(STYLE, layout=ipywidgets.Layout(display="none"))
        self.widget = ipywidgets.VBox(
            [style, self._header, self._nodes_html, self._metrics_html, self._log_html, footer]
        )
        with self._lock:
            self._flush()

    @property
    def run_id(self) -> str:
        """The id in the run id field (``""`` until known)."""
        return self._run_id

    @run_id.setter
    def run_id(self, value: str) -> None:
        self._run_id = value
        self.run_id_field.value = value
        self.run_id_field.layout.display = "" if value else "none"
        self.details_link.value = run_details_html(value)
        self.full_log.value = full_log_html(value)

    @property
    def tail(self) -> LogTail:
        """The tail of the log, with every line handled so far."""
        with self._lock:
            self._take_lines()
        return self._tail

    @property
    def status(self) -> Status:
        """The run's status as the view knows it."""
        return self.timeline.status or Status.QUEUED

    def handle(self, event: RunEvent) -> None:
        """Take one event of the run into the view.

        Parameters
        ----------
        event
            The next event; ``END`` flushes at once and retires the Cancel button.
        """
        kind = event.kind
        if kind is _LOG and self._started:
            # The path of almost every event: one append (atomic, so no lock: _take_lines
            # removes only the lines it read) and a look at the clock. Nothing else is
            # looked up: 200,000 lines pay each lookup 200,000 times.
            unread = self._unread
            unread.append(event.message)
            if len(unread) < _MAX_UNREAD and _monotonic() - self._last_flush < FLUSH_INTERVAL:
                return
            with self._lock:
                self._take_lines()
                self._updated()
            return
        with self._lock:
            self._take_lines()  # lines keep their order with those of build events
            if self.timeline.started_at is None:
                self.timeline.touch(event.time)
            if kind is RunEventKind.LINES:
                # Many lines in one event (follow(batch=True)): the tail keeps its last
                # lines and counts the rest, so a 200,000-line run costs a few dozen of these.
                self._tail.extend_block(event.message)
                self._log_dirty = True
            elif kind is RunEventKind.LOG:
                self._tail.append_line(event.message)
                self._log_dirty = True
            elif kind is RunEventKind.METRIC:
                if event.name is not None and event.value is not None:
                    self.metrics.add(event.name, float(event.value), event.step)
                    self._metrics_dirty = True
            elif kind is RunEventKind.STAGE:
                if event.stage is not None:
                    self.timeline.enter(event.stage, event.time)
            elif kind is RunEventKind.PROGRESS:
                self.progress = event.message
            elif kind is RunEventKind.BUILD:
                line = build_event_line(event.build) if event.build is not None else None
                if line is not None:
                    self._tail.append_line(*line)
                    self._log_dirty = True
            elif kind is RunEventKind.END:
                status = event.status
                if status is None:
                    status = Status.COMPLETED if event.exit_code == 0 else Status.FAILED
                self.timeline.end(status, event.time)
                self.exit_code = event.exit_code
                self.message = event.message
            # Only this path changes the timeline: the fast one reads this instead.
            self._started = self.timeline.started_at is not None
            self._updated(force=kind is RunEventKind.END)

    def set_nodes(self, rows: list[dict[str, Any]]) -> None:
        """Show the nodes of a distributed run, one row each (``node``, ``host``,
        ``processes``, ``state``), as :attr:`mlmagic.run.run.Run.nodes` gives them."""
        with self._lock:
            if rows == self.nodes:
                return
            self.nodes = list(rows)
            self._nodes_html.value = _nodes_table(self.nodes)

    def finish(self) -> None:
        """Flush the last state; call it when the events stop."""
        with self._lock:
            self._log_dirty = self._metrics_dirty = True
            self._log_at = self._header_at = float("-inf")  # the last state shows
            self._updated(force=True)
        self._update_display()

    def text_summary(self) -> str:
        """Status, stages, latest metrics, and for a failure the last lines of the log."""
        with self._lock:
            self._take_lines()
            now = time.time()
            timeline = self.timeline
            head = [self.title, self.status.value]
            if self.exit_code is not None:
                head.append(f"exit {self.exit_code}")
            head.append(format_duration(timeline.elapsed(now)))
            lines = [" · ".join(head)]
            stages = [
                f"{stage.value} {format_duration(timeline.duration(stage, now))}"
                for stage in Stage
                if timeline.duration(stage, now) is not None
            ]
            if stages:
                lines.append("stages: " + " → ".join(stages))
            if len(self.metrics):
                lines.append(
                    "metrics: "
                    + " · ".join(
                        f"{series.name} {_number(series.latest)}"
                        for series in self.metrics.series.values()
                    )
                )
            if self.status is Status.FAILED:
                if self.message:
                    lines.append(self.message)
                lines.extend(f"  {line}" for line in self._tail.last(FAILURE_LINES))
            return "\n".join(lines)

    def html_summary(self) -> str:
        """The stepper, the status and the latest metrics (for a failure, the last lines)."""
        with self._lock:
            self._take_lines()
            header = self._render_header(time.time())
            return f"<div>{STYLE}{header}{self._render_metrics()}</div>"

    def _cancel_clicked(self, _button: ipywidgets.Button) -> None:
        if self._on_cancel is None or self.timeline.ended:
            return
        self.cancel_button.disabled = True
        self.cancel_button.description = "Canceling…"
        try:
            self._on_cancel()
        except Exception:
            # Let the user try again; ipywidgets shows the traceback.
            self.cancel_button.disabled = False
            self.cancel_button.description = "Cancel"
            raise

    def _keep_run_id(self, change: dict[str, Any]) -> None:
        if change["new"] != self._run_id:
            self.run_id_field.value = self._run_id

    def _take_lines(self) -> None:
        """Put the unread log lines into the tail; call with the lock held.

        Lines another thread appends meanwhile stay for the next call: only the lines
        read here are removed.
        """
        count = len(self._unread)
        if count:
            self._tail.extend_lines(self._unread[:count])
            del self._unread[:count]
            self._log_dirty = True

    def _log_due(self) -> bool:
        """Whether the log box is redrawn now: at every flush while its lines can be read;
        while every flush would replace all of them, at most ``1 / FAST_LOG_INTERVAL``
        times a second (nobody reads 20,000 lines a second; the browser would redraw them)."""
        if self.timeline.ended or self._tail.total - self._log_shown < self._tail.max_lines:
            return True
        return _monotonic() - self._log_at >= FAST_LOG_INTERVAL

    def _flush(self) -> None:
        self._take_lines()
        # The stepper changes with a stage; between stages only its clocks tick, and a
        # clock a second is enough (each redraw is a message and a browser layout).
        stages = (
            self.status,
            tuple(self.timeline.state(stage) for stage in Stage),
            self.progress,
        )
        now = _monotonic()
        if stages != self._header_stages or now - self._header_at >= HEADER_INTERVAL:
            self._header.value = self._render_header(time.time())
            self._header_stages, self._header_at = stages, now
        if self._metrics_dirty:
            self._metrics_html.value = self._render_metrics()
            self._metrics_dirty = False
        if self._log_dirty and self._log_due():
            self._log_html.value = log_box(self._tail) if len(self._tail) else ""
            self._log_dirty = False
            self._log_at = _monotonic()
            self._log_shown = self._tail.total
        if self.timeline.ended:
            self.cancel_button.disabled = True
            self.cancel_button.layout.display = "none"

    def _render_header(self, now: float) -> str:
        timeline = self.timeline
        pills = []
        for stage in Stage:
            state = timeline.state(stage)
            name = stage.value
            if stage is Stage.RUNNING and self.progress:
                name = f"{name} · {self.progress}"
            pills.append(_stage_pill(name, state, timeline.duration(stage, now)))
        status = self.status
        if status.is_terminal:
            end = status.value
            if self.exit_code is not None:
                end += f" · exit {self.exit_code}"
            pills.append(badge(end, status.value.lower()))
        stepper = '<span style="opacity:.5"> → </span>'.join(pills)
        parts = [
            '<div style="display:flex;gap:8px;align-items:baseline;flex-wrap:wrap">',
            f"<b>{html.escape(self.title)}</b>",
            f'<span style="opacity:.7">{format_duration(timeline.elapsed(now))}</span></div>',
            f'<div style="display:flex;align-items:center;flex-wrap:wrap;margin:4px 0">'
            f"{stepper}</div>",
        ]
        if status is Status.FAILED:
            if self.message:
                parts.append(
                    f'<div style="color:#c62828;font-weight:600">{html.escape(self.message)}</div>'
                )
            last = self._tail.last(FAILURE_LINES)
            if last:
                parts.append(lines_box(last))
        elif status is Status.CANCELED and self.message:
            parts.append(f'<div style="color:#757575">{html.escape(self.message)}</div>')
        return "".join(parts)

    def _render_metrics(self) -> str:
        if not len(self.metrics):
            return ""
        rows = []
        for series in self.metrics.series.values():
            step = f"step {series.latest_step}" if series.latest_step is not None else ""
            rows.append(
                f'<tr><td style="padding:1px 8px 1px 0">{html.escape(series.name)}</td>'
                f'<td style="padding:1px 8px;text-align:right;font-family:monospace">'
                f"{html.escape(_number(series.latest))}</td>"
                f'<td style="padding:1px 8px;opacity:.6">{step}</td>'
                f'<td style="padding:1px 0">{sparkline_svg(series.points)}</td></tr>'
            )
        more = len(self.metrics.dropped_names)
        if more:
            rows.append(f'<tr><td colspan="4" style="opacity:.6">… {more} more metrics</td></tr>')
        return f'<table style="border-collapse:collapse;font-size:12px">{"".join(rows)}</table>'


def _stage_pill(name: str, state: str, seconds: float | None) -> str:
    """One stage of the stepper: its name, its duration, styled by its state."""
    took = f" <small>{format_duration(seconds)}</small>" if seconds is not None else ""
    styles = {
        "current": "color:#fff;background:#1565c0;border-color:#1565c0;font-weight:600",
        "done": "color:#2e7d32;border-color:#2e7d32",
        "failed": "color:#c62828;border-color:#c62828;font-weight:600",
        "canceled": "color:#757575;border-color:#757575",
        "skipped": "color:#9e9e9e;border-color:transparent;text-decoration:line-through",
        "pending": "color:#9e9e9e;border-color:#bdbdbd;border-style:dashed",
    }
    mark = "✓ " if state == "done" else "✗ " if state == "failed" else ""
    return (
        f'<span class="mlmagic-{state}" style="display:inline-block;padding:0 8px;'
        f'border:1px solid;border-radius:10px;white-space:nowrap;{styles[state]}">'
        f"{mark}{html.escape(name)}{took}</span>"
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _nodes_table(rows: list[dict[str, Any]]) -> str:
    """The nodes of a distributed run as a small table."""
    if not rows:
        return ""
    cells = "".join(
        f"<tr><td>node {row['node']}</td><td>{html.escape(str(row['host']))}</td>"
        f"<td>{html.escape(str(row['processes']))}</td>"
        f"<td><b>{html.escape(str(row['state']))}</b></td></tr>"
        for row in rows
    )
    return f'<table style="font-size:12px;margin:2px 0">{cells}</table>'
