"""The HTML summary every public object shows where widgets cannot render.

``_repr_html_`` of Environment, Run, Model and Service is a small two-column table, so
nbconvert, GitHub's preview and a plain notebook viewer show something readable.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["html_table"]


def html_table(caption: str, rows: Iterable[tuple[str, object]]) -> str:
    """A captioned table of ``(label, value)`` rows; rows without a value are left out."""
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
        f"<td>{html.escape(str(value))}</td></tr>"
        for label, value in rows
        if value is not None and value != ""
    )
    return f"<table><caption>{html.escape(caption)}</caption>{cells}</table>"
