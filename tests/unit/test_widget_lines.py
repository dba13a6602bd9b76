"""The run widget fed blocks of lines (``LINES`` events): the same tail, the exact count."""

from __future__ import annotations

import pytest

from mlmagic.events import RunEvent, RunEventKind, Stage, Status
from mlmagic.widgets import RunView
from mlmagic.widgets.model import LogTail

BLOCKS = [
    [f"plain {i}" for i in range(500)],
    ["a", "b" * 50, "c"],  # a line over the limit, kept in the tail
    ["b" * 50, *(f"x{i}" for i in range(10))],  # a line over the limit, dropped
    ["progress 10%\r", "progress 20%\r", "done", "after"],
    ["\x1b[32mgreen\x1b[0m", "tab\there", "bell\x07", "x"],
    ["\x1b[3", "1mcut escape", "plain", "back\x08space"],
    [""],
    ["", "", "end"],
]


@pytest.mark.parametrize("lines", BLOCKS)
@pytest.mark.parametrize("before", ["", "before\r"])
def test_a_block_ends_as_its_lines_one_by_one(lines: list[str], before: str) -> None:
    one, block = LogTail(5, max_line_chars=40), LogTail(5, max_line_chars=40)
    if before:
        for tail in (one, block):
            tail.append_line(before)  # an unended line the block continues
    for line in lines:
        one.append_line(line)
    block.extend_block("\n".join(lines))
    assert (block.lines(), block.total, block.dropped) == (one.lines(), one.total, one.dropped)
    one.append_line("next")
    block.extend_block("next")
    assert (block.lines(), block.total) == (one.lines(), one.total)
    assert block.lines()[-1] == "next"


def _events(lines: list[str], per_block: int) -> list[RunEvent]:
    """A run's events with its log as LINES events of ``per_block`` lines each."""
    log = [
        RunEvent(
            RunEventKind.LINES,
            message="\n".join(lines[i : i + per_block]),
            total=len(lines[i : i + per_block]),
        )
        for i in range(0, len(lines), per_block)
    ]
    return [
        RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING, time=1000.0),
        *log,
        RunEvent(RunEventKind.END, status=Status.COMPLETED, exit_code=0, time=1005.0),
    ]


def test_a_view_fed_blocks_counts_every_line_and_shows_the_same_tail() -> None:
    lines = [f"line-{i:06d}-end" for i in range(200_000)]
    blocks, one_by_one = RunView("big.py", tail_lines=200), RunView("big.py", tail_lines=200)
    events = _events(lines, 16_384)
    assert len(events) < 20
    for event in events:
        blocks.handle(event)
    blocks.finish()
    for event in _events(lines, 1):
        if event.kind is RunEventKind.LINES:
            event = RunEvent(RunEventKind.LOG, message=event.message)
        one_by_one.handle(event)
    one_by_one.finish()

    assert blocks.tail.total == 200_000
    assert blocks.tail.lines() == one_by_one.tail.lines() == lines[-200:]
    log_html = blocks._log_html.value
    assert log_html == one_by_one._log_html.value
    assert "line-199999-end" in log_html and "line-000000-end" not in log_html
    assert "199,800 earlier lines" in log_html


def test_blocks_and_single_lines_keep_their_order() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING))
    view.handle(RunEvent(RunEventKind.LOG, message="first"))
    view.handle(RunEvent(RunEventKind.LINES, message="second\nthird", total=2))
    view.handle(RunEvent(RunEventKind.LOG, message="fourth"))
    assert view.tail.lines() == ["first", "second", "third", "fourth"]
    assert view.tail.total == 4
