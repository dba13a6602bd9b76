"""The view of a build: header, steps and the tail of the log, fed by :class:`BuildEvent`."""

from __future__ import annotations

import html
import time

import ipywidgets

from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.widgets.base import View
from mlmagic.widgets.model import BuildSteps, LogTail, build_event_line, step_label
from mlmagic.widgets.render import COLOURS, STYLE, badge, format_duration, lines_box, log_box

__all__ = ["BuildView"]

_STEP_MARKS = {
    "running": "◌",
    "done": "✓",
    "cached": "✓",
    "failed": "✗",
    "stopped": "○",
}


class BuildView(View):
    """Shows a build of an environment as its events arrive.

    Parameters
    ----------
    title
        What is built, in the user's words: ``"digits-env:2"``.
    tail_lines
        How many lines of the log are shown.
    quiet
        Show only the header and the final line: no steps, no log.

    Notes
    -----
    :meth:`handle` may be called from any thread, thousands of times a second: it updates
    plain models and renders the widget at most every 0.1 s (and at once when the build
    ends). Call :meth:`finish` when the events stop, so the last state is shown.
    """

    def __init__(self, title: str, *, tail_lines: int = 200, quiet: bool = False) -> None:
        super().__init__(title)
        self.quiet = quiet
        self.tail = LogTail(tail_lines)
        self.steps = BuildSteps()
        #: ``building``, ``ready``, ``cache hit`` or ``failed``.
        self.state = "building"
        self.image: str | None = None
        self.cached = False
        self.error: str | None = None
        self.summary: str | None = None
        self._started = time.time()
        self._ended: float | None = None
        self._duration: float | None = None  # what the builder measured, on DONE
        self._header = ipywidgets.HTML()
        self._steps_html = ipywidgets.HTML()
        self._log_html = ipywidgets.HTML()
        children = [self._header] if quiet else [self._header, self._steps_html, self._log_html]
        self.widget = ipywidgets.VBox(children)
        with self._lock:
            self._flush()

    @property
    def elapsed(self) -> float:
        """Seconds the build took, or has taken so far."""
        if self._duration is not None and self._ended is not None:
            return self._duration
        return max(0.0, (self._ended or time.time()) - self._started)

    def handle(self, event: BuildEvent) -> None:
        """Take one event of the build into the view.

        Parameters
        ----------
        event
            The next event; ``DONE`` and ``ERROR`` flush at once.
        """
        kind = event.kind
        with self._lock:
            line = build_event_line(event)
            if line is not None and kind is not BuildEventKind.START:
                self.tail.append_line(*line)
            if kind is BuildEventKind.LOG:
                self._updated()
                return
            if kind is BuildEventKind.START:
                self._started = event.time
                self.image = event.image or self.image
            elif kind is BuildEventKind.STEP:
                self.steps.start(step_label(event), event.step_index, event.time)
            elif kind is BuildEventKind.STEP_DONE:
                self.steps.done(
                    step_label(event),
                    event.step_index,
                    cached=event.cached,
                    duration=event.duration,
                    at=event.time,
                )
            elif kind is BuildEventKind.DONE:
                self.image = event.image or self.image
                self.cached = event.cached
                self.state = "cache hit" if event.cached else "ready"
                self._ended = event.time
                self._duration = event.duration
            elif kind is BuildEventKind.ERROR:
                self.state = "failed"
                self.error = event.message
                self.steps.fail(event.step, event.time)
                self._ended = event.time
            self._updated(force=kind in (BuildEventKind.DONE, BuildEventKind.ERROR))

    def finish(self, *, ok: bool, summary: str) -> None:
        """Show the final state and flush.

        Parameters
        ----------
        ok
            Whether the environment is ready.
        summary
            The final line, e.g. ``"digits-env:2 ready · mlmagic-env:abc123 · cache hit ·
            0.21 s"``.
        """
        with self._lock:
            if ok:
                self.state = "cache hit" if self.cached else "ready"
            else:
                self.state = "failed"
                self.steps.fail(None, time.time())
            if self._ended is None:
                self._ended = time.time()
            self.summary = summary
            self._updated(force=True)
        self._update_display()

    def text_summary(self) -> str:
        """The header, and for a failure the failing step and the last lines."""
        with self._lock:
            lines = [self.summary or self._headline()]
            if self.state == "failed":
                failed = self.steps.failed()
                if failed is not None:
                    lines.append(f"failed step: {failed.label}")
                if self.error:
                    lines.append(self.error)
                lines.extend(f"  {line}" for line in self.tail.last(10))
            return "\n".join(lines)

    def html_summary(self) -> str:
        """The header and the steps (for a failure, the last lines of the log)."""
        with self._lock:
            parts = [self._render_header()]
            if not self.quiet:
                parts.append(self._render_steps())
                if self.state == "failed" and len(self.tail):
                    parts.append(lines_box(self.tail.last(10)))
            return f"<div>{''.join(parts)}</div>"

    def _headline(self) -> str:
        parts = [f"{self.title} {self.state}"]
        if self.image:
            parts.append(self.image)
        parts.append(format_duration(self.elapsed))
        return " · ".join(parts)

    def _flush(self) -> None:
        self._header.value = self._render_header()
        if not self.quiet:
            self._steps_html.value = self._render_steps()
            self._log_html.value = self._render_log()

    def _render_header(self) -> str:
        current = "mlmagic-current" if self.state == "building" else ""
        parts = [
            STYLE,
            '<div style="display:flex;gap:8px;align-items:center;flex-wrap:wrap">',
            f"<b>{html.escape(self.title)}</b>",
            badge(self.state, self.state, css_class=current),
        ]
        if self.image:
            parts.append(f"<code>{html.escape(self.image)}</code>")
        parts.append(f'<span style="opacity:.7">{format_duration(self.elapsed)}</span></div>')
        if self.summary is not None:
            colour = COLOURS[self.state]
            parts.append(
                f'<div style="color:{colour};font-weight:600">{html.escape(self.summary)}</div>'
            )
        if self.quiet and self.state == "failed":
            failed = self.steps.failed()
            if failed is not None:
                parts.append(f"<div>failed step: <code>{html.escape(failed.label)}</code></div>")
            parts.append(lines_box(self.tail.last(10)))
        return "".join(parts)

    def _render_steps(self) -> str:
        rows = []
        for step in self.steps.ordered():
            colour = COLOURS.get(step.state, "inherit")
            cls = ' class="mlmagic-current"' if step.state == "running" else ""
            took = "" if step.state == "cached" else format_duration(step.duration)
            rows.append(
                f'<div style="display:flex;gap:8px"><span{cls} style="color:{colour};width:1em">'
                f"{_STEP_MARKS.get(step.state, '?')}</span>"
                f'<code style="flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap"'
                f' title="{html.escape(step.label)}">{html.escape(step.label)}</code>'
                f'<span style="color:{colour}">{html.escape(step.state)}</span>'
                f'<span style="opacity:.7;min-width:5em;text-align:right">{took}</span></div>'
            )
        return "".join(rows)

    def _render_log(self) -> str:
        if not len(self.tail):
            return ""
        box = log_box(self.tail)
        # Open while it matters; once ready, folded (the last flush sets it for good).
        is_open = " open" if self.state in ("building", "failed") else ""
        return f"<details{is_open}><summary>log</summary>{box}</details>"
