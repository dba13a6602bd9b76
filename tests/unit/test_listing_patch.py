"""A kept listing patched with the runs that changed equals one made from scratch.

``ws.runs.list()`` keeps its columns and, after a change, reads only the rows that changed
and the live runs' (:class:`mlmagic.run.columns.RunColumns`). Each test compares that
listing with :func:`run_frame` (every row read, nothing kept): same values, dtypes, row
order and column order, after inserts, status changes, new params and metrics, runs
leaving a filtered listing, and deletes. Runs are written as a run leaves them; nothing
here starts a container.
"""

from __future__ import annotations

import math
import random
import sqlite3
from pathlib import Path

import pytest

import mlmagic_run
from mlmagic.events import Status
from mlmagic.run.listing import run_frame
from mlmagic.workspace import Workspace
from tests.unit.test_listing import add_run


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / ".mlmagic")


#: The query that reads every row of a listing, in order (a patch reads only what changed).
_FULL = "ORDER BY created DESC"


def _listed(ws: Workspace, **filters: object) -> tuple[object, list[str]]:
    """``ws.runs.list(**filters)`` and the runs queries it issued."""
    db = ws.store._connection()
    issued: list[str] = []
    db.set_trace_callback(issued.append)
    try:
        frame = ws.runs.list(**filters)
    finally:
        db.set_trace_callback(None)
    return frame, [sql for sql in issued if "FROM runs" in sql]


def _assert_patched_equals_rebuilt(ws: Workspace, **filters: object) -> object:
    """The kept listing, patched (no query of every row), equals one made from scratch."""
    import pandas as pd

    patched, issued = _listed(ws, **filters)
    assert issued and not [sql for sql in issued if _FULL in sql], issued
    pd.testing.assert_frame_equal(patched, run_frame(ws, **filters))  # type: ignore[arg-type]
    return patched


def test_a_new_run_a_status_change_and_new_metrics_patch_the_kept_listing(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        add_run(
            ws, f"a_{i}", created=1000.0 + i, metrics=(("acc", i / 10),),
            params={"C": i}, monkeypatch=monkeypatch,
        )  # fmt: skip
    first = ws.runs.list()
    assert list(first["id"]) == [f"a_{i}" for i in range(5, -1, -1)]
    # A new newest run that logs a param the others lack, in another order: its columns
    # come first among the values, as in a listing made from scratch.
    live = add_run(
        ws, "b_9", created=2000.0, status=Status.RUNNING, metrics=(("loss", 0.5),),
        params={"kernel": "rbf"}, monkeypatch=monkeypatch,
    )  # fmt: skip
    frame = _assert_patched_equals_rebuilt(ws)
    assert list(frame.columns)[8:] == ["param.kernel", "loss", "param.C", "acc"]
    assert frame.loc[0, "id"] == "b_9" and frame.loc[0, "status"] == "Running"
    # The live run's next metric (its files change, its row does not) ...
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(live.metrics))
    mlmagic_run.log("loss", 0.25, step=1)
    assert _assert_patched_equals_rebuilt(ws).loc[0, "loss"] == 0.25
    # ... then its end, and a run placed between two others by its time, tied on it.
    ws.store.finish_run("b_9", status="Failed", exit_code=3, ended=2001.0)
    add_run(ws, "a_33", created=1003.0, metrics=(("acc", 0.9),), monkeypatch=monkeypatch)
    frame = _assert_patched_equals_rebuilt(ws)
    assert list(frame["id"])[:5] == ["b_9", "a_5", "a_4", "a_33", "a_3"]
    assert frame.loc[0, "status"] == "Failed" and frame.loc[0, "exit_code"] == 3
    assert frame["acc"].dtype == "float64" and math.isnan(frame.loc[0, "acc"])


def test_a_run_that_leaves_a_filtered_listing_takes_its_columns_with_it(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_run(ws, "a_1", created=1.0, metrics=(("acc", 0.5),), monkeypatch=monkeypatch)
    add_run(
        ws, "a_2", created=2.0, status=Status.RUNNING, metrics=(("f1", 0.1),),
        params={"lr": 0.1}, monkeypatch=monkeypatch,
    )  # fmt: skip
    running = ws.runs.list(status="running")
    assert list(running["id"]) == ["a_2"] and "f1" in running.columns
    ws.store.finish_run("a_2", status="Completed", exit_code=0, ended=3.0)
    frame = _assert_patched_equals_rebuilt(ws, status="running")
    assert frame.empty and "f1" not in frame.columns
    completed = ws.runs.list(status="completed")
    assert list(completed["id"]) == ["a_2", "a_1"]
    add_run(ws, "b_3", created=3.0, metrics=(("acc", 0.7),), monkeypatch=monkeypatch)
    ws.runs.list("a", since=1.5)
    ws.store.update_run("a_1", exit_code=5)  # outside since: changes nothing listed
    ws.store.update_run("a_2", name="renamed")
    frame = _assert_patched_equals_rebuilt(ws, experiment="a", since=1.5)
    assert list(frame["id"]) == ["a_2"] and frame.loc[0, "name"] == "renamed"


def test_a_deleted_run_makes_the_listing_again(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    for i in range(4):
        add_run(ws, f"a_{i}", created=i + 1.0, metrics=(("acc", i),), monkeypatch=monkeypatch)
    ws.runs.list()
    # Deleted by another process, no mlmagic code: no change number, one row too many.
    other = sqlite3.connect(ws.store.path)
    other.execute("DELETE FROM runs WHERE id = 'a_1'")
    other.commit()
    add_run(ws, "a_9", created=9.0, monkeypatch=monkeypatch)  # and a change to notice
    frame, issued = _listed(ws)
    assert [sql for sql in issued if _FULL in sql], issued  # made again
    assert list(frame["id"]) == ["a_9", "a_3", "a_2", "a_0"]
    pd.testing.assert_frame_equal(frame, run_frame(ws))


def test_any_sequence_of_changes_lists_as_a_listing_made_from_scratch(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    pick = random.Random(15)
    names = ["acc", "loss", "f1"]
    made = 0

    def new_run() -> None:
        nonlocal made
        made += 1
        logged = tuple((n, pick.choice([0.5, math.inf, math.nan, made])) for n in names[:2])
        add_run(
            ws, f"{pick.choice('xy')}_{made:03d}", created=float(pick.randint(1, 40)),
            status=pick.choice([Status.COMPLETED, Status.RUNNING, Status.FAILED]),
            metrics=(*pick.sample(logged, k=pick.randint(0, 2)), (pick.choice(names), 1.0)),
            params=pick.choice([None, {"C": made}, {"kernel": "rbf", "C": 0.5}]),
            monkeypatch=monkeypatch,
        )  # fmt: skip

    for _ in range(30):
        new_run()
    filters = [{}, {"experiment": "x"}, {"status": "running"}, {"since": 20.0}]
    for each in filters:
        ws.runs.list(**each)
    db = ws.store._connection()
    issued: list[str] = []
    for _ in range(25):
        ids = [r[0] for r in ws.store.run_table()]
        action = pick.choice(["new", "status", "finish", "rename"])
        if action == "new":
            new_run()
        elif action == "status":
            ws.store.update_run(pick.choice(ids), status=pick.choice(["Running", "Queued"]))
        elif action == "finish":
            ws.store.finish_run(pick.choice(ids), status="Completed", exit_code=0, ended=50.0)
        else:
            ws.store.update_run(pick.choice(ids), name=f"n{pick.random()}")
        for each in filters:
            db.set_trace_callback(issued.append)
            listed = ws.runs.list(**each)
            db.set_trace_callback(None)
            pd.testing.assert_frame_equal(listed, run_frame(ws, **each))  # type: ignore[arg-type]
    assert not [sql for sql in issued if _FULL in sql]  # every listing was patched
    assert len(ws.runs.list()) == made


def test_the_records_of_a_listing_are_its_rows_without_a_frame(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlmagic.run.listing import run_records

    add_run(ws, "a_1", created=7.0, metrics=(("acc", 0.5),), monkeypatch=monkeypatch)
    add_run(ws, "a_2", created=8.0, params={"C": 2}, monkeypatch=monkeypatch)
    frame = ws.runs.list()
    records = run_records(ws)
    assert [r["id"] for r in records] == ["a_2", "a_1"]
    assert list(records[0]) == list(frame.columns)
    assert records[0]["param.C"] == 2 and math.isnan(records[0]["acc"])
    assert records[1]["acc"] == 0.5 and records[1]["created"] == 7.0
    plain = run_records(ws, limit=1, summaries=False)
    assert plain == [{**{k: records[0][k] for k in list(frame.columns)[:8]}}]


def test_the_command_lists_rows_without_pandas_and_reads_files_only_for_json(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import subprocess
    import sys

    add_run(
        ws, "a_1", created=5.0, metrics=(("acc", 0.5),), params={"C": 3},
        monkeypatch=monkeypatch,
    )  # fmt: skip
    code = (
        "import sys; from mlmagic import cli; code = cli.main(sys.argv[1:]); "
        "print('pandas' in sys.modules, file=sys.stderr); sys.exit(code)"
    )

    def command(*args: str) -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", code, "run", "list", *args],
            cwd=ws.root.parent, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout, done.stderr.strip()

    out, imported = command()
    assert out.split("\n")[1].split()[:3] == ["a_1", "a", "Completed"] and imported == "False"
    # The table shows no metrics: the run's files were not read (nothing cached from them).
    assert ws.store.run_table()[0][-1] is None
    out, imported = command("--json")
    (row,) = json.loads(out)
    assert (row["id"], row["param.C"], row["acc"], row["exit_code"]) == ("a_1", 3, 0.5, 0)
    assert row["created"] == "1970-01-01T00:00:05+00:00" and imported == "False"
    assert ws.store.run_table()[0][-1] == "[3, 0.5]"  # read once, kept for the next listing


def test_run_ids_complete_from_the_store_without_pandas(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    for run_id in ("a_1", "a_2", "b_3"):
        add_run(ws, run_id, created=float(run_id[-1]), monkeypatch=monkeypatch)
    code = (
        "import sys; from mlmagic.cli import completion; "
        "print(completion.runs('a_'), 'pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ws.root.parent, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "['a_1', 'a_2'] False"
    assert ws.store.run_table()[0][-1] is None  # no run's files read
