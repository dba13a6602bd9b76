"""How the command prints: tidy tables for people, JSON and ids for scripts.

Every listing and every ``show`` goes through :class:`Output`, made from the command's
``--json`` and ``--quiet``. A table fits the terminal's width (long cells end with
``…``), shows times as "3 min ago" and sizes as "1.2 GB", and colours statuses only when
standard output is a terminal and ``NO_COLOR`` is unset (rich's own rules). Piped, a
table keeps every character of every cell, so ``grep`` and ``cut`` see whole values.
``--json`` prints the API's answer as JSON (times in ISO 8601, sizes in bytes);
``--quiet`` prints one id per line, as ``docker ps -q`` does.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "Column",
    "Output",
    "console",
    "human_duration",
    "human_size",
    "iso_time",
    "jsonable",
    "relative_time",
    "status_style",
]

#: Colours of the statuses and states of runs, environments and services.
_STYLES = {
    "completed": "green",
    "ready": "green",
    "healthy": "green",
    "failed": "red",
    "unhealthy": "red",
    "canceled": "yellow",
    "running": "cyan",
    "transitioning": "yellow",
    "building": "yellow",
    "queued": "dim",
    "registered": "dim",
}


def status_style(status: object) -> str:
    """The colour of a status (``Completed``, ``ready``, ``Healthy`` ...), or ``""``."""
    return _STYLES.get(str(status).lower(), "yellow" if status else "")


def console(stream: TextIO | None = None) -> Console:
    """A rich console on ``stream`` (standard output): colour and width only on a terminal."""
    stream = stream or sys.stdout
    tty = stream.isatty()
    # Piped: no wrapping or cutting, so every cell reaches the next program whole.
    return Console(file=stream, highlight=False, soft_wrap=not tty, width=None if tty else 1 << 16)


def relative_time(when: float | None, now: float | None = None) -> str:
    """``"just now"``, ``"3 min ago"``, ``"5 h ago"``, ``"2 days ago"`` or the date."""
    if when is None or (isinstance(when, float) and math.isnan(when)):
        return ""
    seconds = (now if now is not None else time.time()) - when
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    if seconds < 30 * 86400:
        days = seconds // 86400
        return "yesterday" if days == 1 else f"{days:.0f} days ago"
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d")


def human_size(size: float | None) -> str:
    """Bytes as ``"950 B"``, ``"12 kB"``, ``"350 MB"``, ``"1.2 GB"`` (decimal, as docker)."""
    if size is None or (isinstance(size, float) and math.isnan(size)):
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def human_duration(seconds: float | None) -> str:
    """``"4.2 s"``, ``"3 min 5 s"``, ``"2 h 4 min"``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def iso_time(when: float | None) -> str | None:
    """A time as ISO 8601 in UTC, for JSON."""
    if when is None or (isinstance(when, float) and math.isnan(when)):
        return None
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def jsonable(value: Any) -> Any:
    """``value`` with NaN as ``null``, paths and other objects as strings (for JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


@dataclass(frozen=True)
class Column:
    """One column of a table: its header, the row key, how to show a value.

    ``styled`` colours the cell by :func:`status_style`; ``flexible`` columns are the ones
    cut to fit the terminal.
    """

    header: str
    key: str
    show: Callable[[Any], str] = lambda value: "" if value is None else str(value)
    styled: bool = False
    flexible: bool = False


class Output:
    """Where a command's answer goes: a table, JSON, or ids.

    Parameters
    ----------
    json
        Print JSON (``--json``).
    quiet
        Print ids only (``--quiet``).
    stream
        Standard output unless given.
    """

    def __init__(self, *, json: bool = False, quiet: bool = False, stream: TextIO | None = None):
        self.json, self.quiet = json, quiet
        self.stream = stream or sys.stdout

    def rows(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[Column],
        *,
        id_key: str,
        empty: str,
    ) -> None:
        """A listing: a table, a JSON array of ``rows``, or the ``id_key`` of each row."""
        if self.json:
            self.write_json([dict(row) for row in rows])
        elif self.quiet:
            for row in rows:
                print(row[id_key], file=self.stream)
        elif not rows:
            print(empty, file=sys.stderr)
        else:
            self._table(rows, columns)

    def item(self, data: Mapping[str, Any], text: Callable[[], str], *, id_value: str) -> None:
        """One object: its JSON, its id, or the ``text`` made for people."""
        if self.json:
            self.write_json(dict(data))
        elif self.quiet:
            print(id_value, file=self.stream)
        else:
            print(text(), file=self.stream)

    def write_json(self, data: Any) -> None:
        """``data`` as indented JSON."""
        json.dump(jsonable(data), self.stream, indent=2)
        self.stream.write("\n")

    def _table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> None:
        cells = [[column.show(row.get(column.key)) for column in columns] for row in rows]
        out = console(self.stream)
        natural = [
            max([cell_len(column.header)] + [cell_len(line[i]) for line in cells])
            for i, column in enumerate(columns)
        ]
        widths = natural
        if self.stream.isatty():
            widths = _fit(natural, [c.flexible for c in columns], out.width)
        shown = range(len(widths))  # columns that did not fit are left out, last first
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for index in shown:
            table.add_column(
                columns[index].header, no_wrap=True, overflow="ellipsis", max_width=widths[index]
            )
        for line in cells:
            table.add_row(
                *(
                    Text(line[i], style=status_style(line[i]) if columns[i].styled else "")
                    for i in shown
                )
            )
        with out.capture() as captured:
            out.print(table)
        # rich pads the last column; trailing blanks only get in the way of a pipe.
        for text in captured.get().splitlines():
            print(text.rstrip(), file=self.stream)


#: Narrowest a column is cut to.
_MIN_WIDTH = 8


def _fit(widths: Sequence[int], flexible: Sequence[bool], total: int) -> list[int]:
    """Widths of the leading columns that fit ``total`` cells (two between columns).

    The widest flexible column is cut first, none below :data:`_MIN_WIDTH`; when that is
    not enough, the last columns (the least important) are left out, never the first.
    """
    fitted = list(widths)
    excess = sum(fitted) + 2 * (len(fitted) - 1) - total
    while excess > 0:
        cuttable = [i for i, flex in enumerate(flexible) if flex and fitted[i] > _MIN_WIDTH]
        if not cuttable:
            break
        widest = max(cuttable, key=fitted.__getitem__)
        fitted[widest] -= 1
        excess -= 1
    while excess > 0 and len(fitted) > 1:
        excess -= fitted.pop() + 2
    return fitted
