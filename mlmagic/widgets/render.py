"""HTML pieces the views share: durations, badges, the log box, sparklines.

Every piece escapes the text it is given (log text is untrusted) and its size is bounded
by its inputs, which the models keep bounded.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from collections.abc import Iterable, Sequence

from mlmagic.widgets.model import LogTail

__all__ = [
    "COLOURS",
    "JUPYTER_BASE_URL_VARIABLE",
    "STYLE",
    "badge",
    "executed_notebook_html",
    "format_duration",
    "full_log_html",
    "full_log_url",
    "lines_box",
    "log_box",
    "run_details_html",
    "sparkline_svg",
]

#: The base URL of the Jupyter server that started the kernel, set for its kernels by
#: mlmagic's server extension (a widget's HTML cannot ask the page where it is served).
JUPYTER_BASE_URL_VARIABLE = "MLMAGIC_JUPYTER_BASE_URL"

#: Colour of each state a view shows.
COLOURS = {
    "building": "#1565c0",
    "running": "#1565c0",
    "current": "#1565c0",
    "ready": "#2e7d32",
    "done": "#2e7d32",
    "completed": "#2e7d32",
    "cache hit": "#00796b",
    "cached": "#00796b",
    "failed": "#c62828",
    "canceled": "#757575",
    "stopped": "#757575",
    "skipped": "#9e9e9e",
    "pending": "#9e9e9e",
}

#: Styles that inline ``style=`` cannot hold: the pulse of the current stage.
STYLE = (
    "<style>"
    "@keyframes mlmagic-pulse{0%{opacity:1}50%{opacity:.55}100%{opacity:1}}"
    ".mlmagic-current{animation:mlmagic-pulse 1.4s ease-in-out infinite}"
    "</style>"
)

_MONO = "var(--jp-code-font-family, SFMono-Regular, Menlo, Consolas, monospace)"
_LINE_STYLES = {
    "step": "font-weight:600",
    "done": "color:#2e7d32;font-weight:600",
    "error": "color:#c62828;font-weight:600",
}


def format_duration(seconds: float | None) -> str:
    """``0.21 s``, ``12.3 s``, ``4 min 05 s``, ``1 h 02 min``; ``""`` for ``None``."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def badge(text: str, state: str, *, css_class: str = "") -> str:
    """A rounded label in the colour of ``state``."""
    colour = COLOURS.get(state, "#616161")
    cls = f' class="{css_class}"' if css_class else ""
    return (
        f'<span{cls} style="display:inline-block;padding:1px 8px;border-radius:10px;'
        f'background:{colour};color:#fff;font-weight:600;white-space:nowrap">'
        f"{html.escape(text)}</span>"
    )


def log_box(tail: LogTail, *, max_height: str = "20em") -> str:
    """The tail in a monospace box that stays scrolled to its last line.

    ``column-reverse`` anchors the scroll position to the bottom without any script,
    which a widget's HTML cannot run.
    """
    parts: list[str] = []
    if tail.dropped:
        parts.append(
            f'<span style="opacity:.6">… {tail.dropped:,} earlier lines '
            "(the whole log is kept in the workspace)</span>"
        )
    for text, tag in tail.tagged():
        line = html.escape(text, quote=False)
        style = _LINE_STYLES.get(tag)
        parts.append(f'<span style="{style}">{line}</span>' if style else line)
    return (
        f'<div style="display:flex;flex-direction:column-reverse;max-height:{max_height};'
        'overflow-y:auto;border:1px solid var(--jp-border-color2, #ddd);border-radius:3px">'
        f'<pre style="margin:0;padding:4px 6px;font-family:{_MONO};font-size:12px;'
        'line-height:1.35;white-space:pre-wrap;overflow-wrap:anywhere">'
        + "\n".join(parts)
        + "</pre></div>"
    )


def full_log_url(run_id: str) -> str | None:
    """Where the server serves the run's whole log, or ``None`` without mlmagic's server.

    An absolute path on the page's origin: it works from any notebook URL, in JupyterLab
    (``lab/tree/...``) as in Notebook 7 (``notebooks/...``), under any base URL.
    """
    base = os.environ.get(JUPYTER_BASE_URL_VARIABLE)
    if not run_id or base is None:
        return None
    return f"{base.rstrip('/')}/mlmagic/api/runs/{urllib.parse.quote(run_id, safe='')}/log"


def full_log_html(run_id: str) -> str:
    """A link that opens the run's whole log in a new tab, else how to read it."""
    if not run_id:
        return ""
    url = full_log_url(run_id)
    if url is None:
        return (
            '<span style="opacity:.7;font-size:12px">full log: '
            f"<code>mlmagic run logs {html.escape(run_id)}</code></span>"
        )
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="noopener" '
        'title="The whole log as plain text, in a new browser tab" '
        'style="font-size:12px;color:var(--jp-content-link-color, #1565c0)">full log ↗</a>'
    )


def run_details_html(run_id: str) -> str:
    """A link that opens the run's details tab in JupyterLab (the labextension routes
    ``?mlmagic-details=<run id>``: in the page it is clicked in, else in a new one), or
    ``""`` where no Jupyter server is known."""
    base = os.environ.get(JUPYTER_BASE_URL_VARIABLE)
    if not run_id or base is None:
        return ""
    url = f"{base.rstrip('/')}/lab?" + urllib.parse.urlencode({"mlmagic-details": run_id})
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="noopener" class="mlmagic-details-link" '
        f'title="Open run {html.escape(run_id)} in a tab: stages, metric charts, files, models" '
        'style="font-size:12px;color:var(--jp-content-link-color, #1565c0)">run details ↗</a>'
    )


def executed_notebook_html(run_id: str, name: str) -> str:
    """A link that opens a notebook run's executed copy in JupyterLab (the labextension
    routes ``?mlmagic-run=<run id>/<name>`` to its read-only ``mlmagic-run:`` drive), else
    how to get the copy."""
    base = os.environ.get(JUPYTER_BASE_URL_VARIABLE)
    if not run_id or not name:
        return ""
    if base is None:
        return (
            '<span style="opacity:.7;font-size:12px">executed notebook: '
            f"<code>run.download({html.escape(repr(f'outputs/{name}'))})</code></span>"
        )
    url = f"{base.rstrip('/')}/lab?" + urllib.parse.urlencode({"mlmagic-run": f"{run_id}/{name}"})
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="noopener" '
        'title="The notebook as the run executed it (read-only), in JupyterLab" '
        'style="font-size:12px;color:var(--jp-content-link-color, #1565c0)">'
        "open executed notebook ↗</a>"
    )


def lines_box(lines: Iterable[str]) -> str:
    """A few lines in a monospace block (the end of a failed log)."""
    text = "\n".join(html.escape(line, quote=False) for line in lines)
    return (
        f'<pre style="margin:4px 0;padding:4px 6px;font-family:{_MONO};font-size:12px;'
        "white-space:pre-wrap;overflow-wrap:anywhere;border-left:3px solid #c62828;"
        f'background:rgba(198,40,40,.06)">{text}</pre>'
    )


def sparkline_svg(
    points: Sequence[tuple[float, float]], *, width: int = 120, height: int = 24
) -> str:
    """An inline SVG polyline of ``(x, y)`` points, with a dot on the last one.

    Returns ``""`` for fewer than two points. Points are drawn in the order given; x is
    spread by value when the values differ, else by position.
    """
    if len(points) < 2:
        return ""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        xs = [float(i) for i in range(len(points))]
        x_low, x_high = 0.0, float(len(points) - 1)
    y_low, y_high = min(ys), max(ys)
    pad = 2.0
    span_x = (width - 2 * pad) / (x_high - x_low)
    span_y = (height - 2 * pad) / (y_high - y_low) if y_high != y_low else 0.0
    mid = height / 2
    coords = [
        (
            pad + (x - x_low) * span_x,
            height - pad - (y - y_low) * span_y if span_y else mid,
        )
        for x, y in zip(xs, ys, strict=True)
    ]
    polyline = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    last_x, last_y = coords[-1]
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'style="vertical-align:middle;color:#1565c0">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" '
        f'stroke-linejoin="round" points="{polyline}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2" fill="currentColor"/></svg>'
    )
