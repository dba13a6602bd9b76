"""Keep ``benchmarks/README.md`` current: each script rewrites its row of the summary table
and its own section, between markers, after it measures. :func:`report_ratios` does all of
it for a script that times paths of its own next to their anchors.

The summary table has one row per benchmark: ``| name | stands in for | goal | measured |
machine |``. A script replaces the row whose first cell is its name; a section is the text
between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pair", "machine", "report_ratios", "update_row", "update_section"]

README = Path(__file__).resolve().parent / "README.md"
#: Where each benchmark writes its last table (``<name>.md``).
RESULTS = README.parent / "results"


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


@dataclass(frozen=True)
class Pair:
    """One of our paths next to its anchor: two rows of the table, one ratio.

    Attributes
    ----------
    ours, anchor
        The rows' labels, and (``ours_key``, ``anchor_key``) their keys in the timings.
    summary
        The name of the README summary row that gets the ratio.
    goal
        Whether this ratio is the one the goal is about (shown in bold).
    """

    ours: str
    ours_key: str
    anchor: str
    anchor_key: str
    summary: str
    goal: bool = True


def report_ratios(
    name: str,
    times: Mapping[str, Sequence[float]],
    pairs: Sequence[Pair],
    note: str,
    *,
    places: int = 2,
) -> str:
    """Report timings as ``| path | median s | best s | ratio (median) |`` rows, ours over
    the anchor's median, with ``note`` below: printed, written to ``results/<name>.md``,
    into the ``bench_<name>`` README section and each pair's summary row. Returns the
    text."""
    median = {key: statistics.median(values) for key, values in times.items()}
    best = {key: min(values) for key, values in times.items()}
    lines = ["| path | median s | best s | ratio (median) |", "|---|---|---|---|"]
    for pair in pairs:
        ratio = f"{median[pair.ours_key] / median[pair.anchor_key]:.2f}"
        for label, key, shown in (
            (pair.ours, pair.ours_key, f"**{ratio}**" if pair.goal else ratio),
            (pair.anchor, pair.anchor_key, "1"),
        ):
            lines.append(
                f"| {label} | {median[key]:.{places}f} | {best[key]:.{places}f} | {shown} |"
            )
        update_row(pair.summary, f"{ratio}x")
    text = "\n".join([*lines, "", note])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.md"
    out.write_text(f"# bench_{name}\n\n{text}\n")
    update_section(f"bench_{name}", text)
    return text
