"""``follow(batch=True)``: the log of a real run in blocks, the same lines as one by one.

Real runs on the local target (a uv virtual environment, no Docker engine): the script's
own output log is what both streams read.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlmagic import Workspace
from mlmagic.events import RunEvent, RunEventKind, Status
from mlmagic.run.stream import _CHUNK, follow
from tests.unit import test_run_boundary

# Plain lines, empty lines, a byte that is not UTF-8, a line of 2.5 reads without a
# newline, and a last line without one.
SCRIPT = textwrap.dedent(
    """
    import sys
    out = sys.stdout.buffer
    for i in range(30000):
        out.write(b"line %06d: the quick brown fox\\n" % i)
    out.write(b"\\n\\nbad \\xe2 byte\\n\\xff\\n")
    out.write(b"x" * int(2.5 * CHUNK) + b"\\n")
    out.write(b"last, no newline")
    out.flush()
    """
).replace("CHUNK", str(_CHUNK))


# A local-target workspace with "six-env" built, as the run-boundary tests use.
venvs, ws = test_run_boundary.venvs, test_run_boundary.ws


def _unbatched(events: list[RunEvent]) -> list[tuple[RunEventKind, str]]:
    """Each event as ``(kind, text)``, a ``LINES`` event as the ``LOG`` events of its lines."""
    out: list[tuple[RunEventKind, str]] = []
    for event in events:
        if event.kind is RunEventKind.LINES:
            lines = event.message.split("\n")
            assert len(lines) == event.total
            out.extend((RunEventKind.LOG, line) for line in lines)
        else:
            out.append((event.kind, event.message))
    return out


def _joined(events: list[tuple[RunEventKind, str]]) -> list[tuple[RunEventKind, str]]:
    """The events with the pieces of the long line put back together."""
    out: list[tuple[RunEventKind, str]] = []
    for kind, text in events:
        if out and text and set(text) == {"x"} and set(out[-1][1]) == {"x"}:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def test_blocks_carry_the_same_lines_in_the_same_order_and_end_last(
    ws: Workspace, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "big.py").write_text(SCRIPT)
    run = ws.submit("big.py", "six-env", source_dir=project)
    live = list(follow(ws, run.id, batch=True))  # follows the run as it writes
    assert run.status is Status.COMPLETED

    one_by_one = list(follow(ws, run.id, live=False))
    replayed = list(follow(ws, run.id, live=False, batch=True))
    assert live[-1].kind is RunEventKind.END and one_by_one[-1].kind is RunEventKind.END
    assert not any(event.kind is RunEventKind.LOG for event in live + replayed)
    # A few events carry the 30,000 lines, not one each.
    assert sum(event.kind is RunEventKind.LINES for event in replayed) < 100

    expected = [(event.kind, event.message) for event in one_by_one]
    assert _unbatched(replayed) == expected
    # Live, the stages interleave with the log as they came, and the long line is cut
    # where each read ended; each kind keeps its order, and the long line its length.
    for kinds in ({RunEventKind.LOG}, set(RunEventKind) - {RunEventKind.LOG}):
        assert _joined([e for e in _unbatched(live) if e[0] in kinds]) == _joined(
            [e for e in expected if e[0] in kinds]
        )
    lines = [text for kind, text in expected if kind is RunEventKind.LOG]
    assert lines[0] == "line 000000: the quick brown fox"
    assert "line 029999: the quick brown fox" in lines
    assert "bad \ufffd byte" in lines and "\ufffd" in lines and lines.count("") >= 2
    # The long line comes in pieces of one read, as one by one: nothing held, nothing lost.
    pieces = [text for text in lines if text and set(text) == {"x"}]
    assert len(pieces) >= 3 and all(len(piece) <= 2 * _CHUNK for piece in pieces)
    assert sum(map(len, pieces)) == int(2.5 * _CHUNK)
    assert lines[-1] == "last, no newline"


def test_wait_prints_every_line_once_in_order_from_the_blocks(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "count.py").write_text(
        "import sys\nfor i in range(5000):\n    print('n', i)\nsys.stdout.write('tail')\n"
    )
    run = ws.submit("count.py", "six-env", source_dir=project)
    assert run.wait(show_output=True) is run and run.status is Status.COMPLETED
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"n {i}" for i in range(5000)] + ["tail"]
