"""Keep ``benchmarks/README.md`` current: each script rewrites its row of the summary table
and its own section, between markers, after it measures.

The summary table has one row per benchmark: ``| name | stands in for | goal | measured |
machine |``. A script replaces the row whose first cell is its name; a section is the text
between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["machine", "update_row", "update_section"]

README = Path(__file__).resolve().parent / "README.md"


def machine() -> str:
    """This machine in a few words, with its load (it is shared)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load {load}, Python {platform.python_version()}"


def update_section(name: str, text: str) -> None:
    """Put ``text`` between the ``<!-- NAME:begin/end -->`` markers of the README."""
    content = README.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in content or end not in content:
        return
    head, rest = content.split(begin, 1)
    README.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")


def update_row(name: str, measured: str, machine_text: str | None = None) -> None:
    """Set the *measured* and *machine* cells of the summary row of ``name``."""
    lines = README.read_text().splitlines(keepends=True)
    for index, line in enumerate(lines):
        cells = line.split(" | ")
        if line.startswith(f"| {name} | ") and len(cells) == 5:
            cells[3] = measured
            cells[4] = f"{machine_text or machine()} |\n"
            lines[index] = " | ".join(cells)
    README.write_text("".join(lines))
