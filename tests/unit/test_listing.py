"""Listings of runs at any scale: filters, limits, ``since``, the change counter, the cached
summaries of ended runs, and schema 2 → 3.

Runs are written as a run leaves them (its record through the store, its params and
metrics through ``mlmagic_run``); nothing here starts a container.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmagic_run
from mlmagic import cli
from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError
from mlmagic.records import RunRecord
from mlmagic.run.config import RunConfig
from mlmagic.run.listing import summarize
from mlmagic.run.paths import RunPaths
from mlmagic.store import SCHEMA_VERSION, Store
from mlmagic.workspace import Workspace


def add_run(
    ws: Workspace,
    run_id: str,
    *,
    created: float,
    status: Status = Status.COMPLETED,
    metrics: tuple[tuple[str, float], ...] = (),
    params: dict[str, object] | None = None,
    monkeypatch: pytest.MonkeyPatch,
) -> RunPaths:
    experiment = run_id.split("_")[0]
    config = RunConfig(
        script="train.py", environment="e:1", source_dir="/src", experiment=experiment,
        name=f"name of {run_id}",
    )  # fmt: skip
    record = RunRecord(
        id=run_id, experiment=experiment, status=Status.QUEUED, config=config, env_name="e",
        env_version=1, created=created,
    )  # fmt: skip
    ws.store.insert_run(record)
    paths = RunPaths(ws.path("runs", run_id))
    paths.create()
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(paths.metrics))
    monkeypatch.setenv("MLMAGIC_PARAMS_FILE", str(paths.params))
    for step, (name, value) in enumerate(metrics):
        mlmagic_run.log(name, value, step=step)
    if params:
        mlmagic_run.log_params(params)
    ws.store.update_run(run_id, status="Running", started=created + 1)
    if status.is_terminal:
        ws.store.finish_run(run_id, status=status.value, exit_code=0, ended=created + 3)
    return paths


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / ".mlmagic")


def test_a_listing_is_newest_first_filtered_limited_and_since(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = datetime(2026, 12, 1, 12, 0).timestamp()
    for i, run_id in enumerate(["a_1", "b_2", "a_3", "b_4", "a_5"]):
        add_run(ws, run_id, created=base + i * 3600, monkeypatch=monkeypatch)
    assert list(ws.runs.list()["id"]) == ["a_5", "b_4", "a_3", "b_2", "a_1"]
    assert list(ws.runs.list("a")["id"]) == ["a_5", "a_3", "a_1"]
    assert list(ws.runs.list(limit=2)["id"]) == ["a_5", "b_4"]
    assert list(ws.runs.list("b", limit=1)["id"]) == ["b_4"]
    assert list(ws.runs.list(since=base + 2 * 3600)["id"]) == ["a_5", "b_4", "a_3"]
    assert list(ws.runs.list(since="2026-12-01T14:00")["id"]) == ["a_5", "b_4", "a_3"]
    assert list(ws.runs.list(since=datetime(2026, 12, 1, 15, 30))["id"]) == ["a_5"]
    assert [r.id for r in ws.runs.records("a", since=base + 1, limit=1)] == ["a_5"]
    assert ws.runs.list(limit=0).empty and list(ws.runs.list(limit=0).columns)[:2] == [
        "id",
        "experiment",
    ]
    row = ws.runs.list(limit=1).iloc[0]
    assert (row["name"], row["status"], row["environment"], row["duration"]) == (
        "name of a_5",
        "Completed",
        "e:1",
        2.0,
    )


def test_bad_limit_and_since_are_refused_in_one_line(ws: Workspace) -> None:
    with pytest.raises(MlmagicError, match=r"^since='yesterday' is not a time: give a date"):
        ws.runs.list(since="yesterday")
    with pytest.raises(MlmagicError, match=r"^limit=-1: give a number of runs"):
        ws.runs.list(limit=-1)


def test_metrics_are_exact_cached_once_ended_and_live_runs_read_their_files(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = 0.1 + 0.2  # not 0.3: a value that a lossy cache would round
    add_run(
        ws, "done_1", created=1000.0, metrics=(("acc", 0.5), ("acc", exact), ("loss", math.inf)),
        params={"C": 0.5, "kernel": "rbf"}, monkeypatch=monkeypatch,
    )  # fmt: skip
    live = add_run(
        ws, "live_2", created=2000.0, status=Status.RUNNING, metrics=(("acc", 0.25),),
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert ws.store.run_table("done")[0][-1] is None  # nothing cached before a listing
    first = ws.runs.list().set_index("id")
    assert first.loc["done_1", "acc"] == exact and first.loc["done_1", "loss"] == math.inf
    assert (first.loc["done_1", "param.C"], first.loc["done_1", "param.kernel"]) == (0.5, "rbf")
    assert first.loc["live_2", "acc"] == 0.25
    # The ended run's summary is now in the store; the live one has none.
    cached = {row[0]: row[-1] for row in ws.store.run_table()}
    assert cached["done_1"] is not None and cached["live_2"] is None
    # The ended run is listed from the store alone (its files could even be gone) ...
    RunPaths(ws.path("runs", "done_1")).metrics.unlink()
    # ... while the live run's new values show at once.
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(live.metrics))
    mlmagic_run.log("acc", 0.75, step=1)
    again = ws.runs.list().set_index("id")
    assert again.loc["done_1", "acc"] == exact and again.loc["live_2", "acc"] == 0.75
    assert ws.runs.get("done_1").metrics.empty  # the run's own files stay the truth


def test_every_change_a_listing_shows_takes_a_new_number(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ws.store
    assert store.run_changes() == 0
    add_run(ws, "a_1", created=1.0, status=Status.RUNNING, monkeypatch=monkeypatch)
    add_run(ws, "a_2", created=2.0, monkeypatch=monkeypatch)
    cursor = store.run_changes()
    assert cursor > 0 and store.runs(changed_after=cursor) == []
    assert store.live_run_ids() == ["a_1"]
    ws.runs.list()  # caches a_2's summary: no change a poll must fetch
    assert store.run_changes() == cursor
    store.update_run("a_1", cancel_requested=True)
    assert [r.id for r in store.runs(changed_after=cursor)] == ["a_1"]
    later = store.run_changes()
    store.finish_run("a_1", status="Canceled", ended=5.0)
    assert [r.id for r in store.runs(changed_after=later)] == ["a_1"]
    assert store.live_run_ids() == []
    # Any writer bumps it, even one that does not know about it (triggers keep it).
    db = sqlite3.connect(store.path)
    db.execute("UPDATE runs SET error = 'x' WHERE id = 'a_2'")
    db.commit()
    assert [r.id for r in store.runs(changed_after=store.run_changes() - 1)] == ["a_2"]


#: The columns of runs that schema 4 added.
_SINCE_4 = ("name", "summary_keys", "summary_values")


def _schema_2(path: Path) -> None:
    """A schema 2 database with two runs, as mlmagic with schema 2 left it."""
    store = Store(path)
    for i in (1, 2):
        config = RunConfig(script="s.py", environment="a:1", source_dir="/src")
        record = RunRecord(
            id=f"r{i}", experiment="e", status=Status.COMPLETED, created=float(i), config=config
        )
        store.insert_run(record)
    db = sqlite3.connect(path)
    for statement in (
        "DROP TRIGGER runs_inserted",
        "DROP TRIGGER runs_updated",
        "DROP TABLE changes",
        "DROP INDEX runs_listing",
        "DROP INDEX runs_by_change",
        "DROP INDEX runs_live",
        *(f"ALTER TABLE runs DROP COLUMN {c}" for c in _SINCE_4),
        "ALTER TABLE runs DROP COLUMN changed",
        "PRAGMA user_version = 2",
    ):
        db.execute(statement)
    db.commit()
    db.close()


def test_a_schema_2_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "mlmagic.db"
    _schema_2(path)
    store = Store(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r.id for r in store.runs()] == ["r2", "r1"]
    cursor = store.run_changes()
    assert cursor == 2 and store.runs(changed_after=cursor) == []
    assert [r.id for r in store.runs(changed_after=1)] == ["r2"]
    store.update_run("r1", error="x")
    assert [r.id for r in store.runs(changed_after=cursor)] == ["r1"]
    plan = " ".join(
        str(row) for row in db.execute("EXPLAIN QUERY PLAN SELECT id FROM runs WHERE changed > 1")
    )
    assert "runs_by_change" in plan
    assert Store(path).run_changes() == 3  # opening again changes nothing


def test_runs_magic_and_command_take_limit_and_since(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    for i in range(3):
        add_run(ws, f"x_{i}", created=now - 3600 * (3 - i), monkeypatch=monkeypatch)
    monkeypatch.chdir(ws.root.parent)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "mlmagic")
        frame = shell.run_line_magic("runs", "--limit 2")
        assert list(frame["id"]) == ["x_2", "x_1"]
        since = datetime.fromtimestamp(now - 3600 * 1.5).isoformat(timespec="minutes")
        assert list(shell.run_line_magic("runs", f"--since {since}")["id"]) == ["x_2"]
        with pytest.raises(UsageError, match="since='soon' is not a time"):
            shell.run_line_magic("runs", "--since soon")
    finally:
        InteractiveShell.clear_instance()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["run", "list", "--limit", "1"]) == 0
    assert "x_2" in out.getvalue() and "x_1" not in out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["run", "list", "--since", since]) == 0
    assert "x_2" in out.getvalue() and "x_1" not in out.getvalue()


def test_a_poll_finds_changed_runs_by_their_number_not_by_reading_every_run(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        add_run(ws, f"a_{i}", created=float(i), monkeypatch=monkeypatch)
    db = ws.store._connection()
    issued: list[str] = []
    db.set_trace_callback(issued.append)
    try:
        assert ws.store.runs(limit=100, changed_after=ws.store.run_changes()) == []
    finally:
        db.set_trace_callback(None)
    (query,) = [sql for sql in issued if "changed >" in sql]
    plan = " ".join(str(tuple(row)) for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "SEARCH runs USING INDEX runs_by_change" in plan, plan


def _mixed_workspace(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs whose params and metrics differ in names, order and types, a metric named like
    a fixed column, a live run, and a run that never started."""
    add_run(
        ws, "a_1", created=1000.0, metrics=(("acc", 0.5), ("loss", math.nan)),
        params={"C": 1, "kernel": "rbf", "flag": True, "layers": [64, 32]},
        monkeypatch=monkeypatch,
    )  # fmt: skip
    add_run(
        ws, "a_2", created=2000.0, status=Status.FAILED, metrics=(("acc", math.inf),),
        params={"C": 2, "kernel": None}, monkeypatch=monkeypatch,
    )  # fmt: skip
    add_run(
        ws, "b_3", created=3000.0, metrics=(("status", 3.0), ("f1", 0.25)),
        params={"lr": 0.1}, monkeypatch=monkeypatch,
    )  # fmt: skip
    add_run(
        ws, "b_4", created=4000.0, status=Status.RUNNING, metrics=(("f1", 0.5),),
        monkeypatch=monkeypatch,
    )  # fmt: skip
    config = RunConfig(script="s.py", environment="e:1", source_dir="/src", experiment="c")
    record = RunRecord(id="c_5", experiment="c", status=Status.QUEUED, config=config,
                       created=5000.0)  # fmt: skip
    ws.store.insert_run(record)


def _expected_frame(ws: Workspace) -> object:
    """The listing as pandas makes it from one record per run (the shape listings have
    always had), built from each run's own files, not from the store's summaries."""
    import pandas as pd

    records = []
    for record in ws.store.runs():
        summary = summarize(RunPaths(ws.path("runs", record.id)))
        ended = record.ended is not None and record.started is not None
        records.append(
            {
                "id": record.id,
                "experiment": record.experiment,
                "name": record.config.name,
                "status": record.status.value,
                "environment": f"{record.env_name}:{record.env_version}"
                if record.env_name is not None and record.env_version is not None
                else None,
                "created": record.created,
                "duration": record.ended - record.started if ended else None,
                "exit_code": record.exit_code,
                **{k: v for k, v in summary.items() if k not in _FIXED_NAMES},
            }
        )
    frame = pd.DataFrame.from_records(records)
    frame["created"] = pd.to_datetime(frame["created"].to_numpy(dtype=float), unit="s")
    return frame


_FIXED_NAMES = ("id", "experiment", "name", "status", "environment", "created", "duration",
                "exit_code")  # fmt: skip


def test_a_listing_has_the_columns_dtypes_and_values_of_one_record_per_run(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    _mixed_workspace(ws, monkeypatch)
    expected = _expected_frame(ws)
    assert list(expected.columns) == [
        *_FIXED_NAMES, "f1", "param.lr", "param.C", "param.kernel", "acc", "param.flag",
        "param.layers", "loss",
    ]  # fmt: skip
    first = ws.runs.list()  # reads the files, caches the ended runs' summaries
    pd.testing.assert_frame_equal(first, expected)
    again = ws.runs.list()  # from the store's summaries
    pd.testing.assert_frame_equal(again, expected)
    assert again.loc[again["id"] == "b_3", "status"].item() == "Completed"  # fixed wins
    assert again.loc[again["id"] == "a_1", "param.layers"].item() == [64, 32]
    assert str(again["exit_code"].dtype) == "float64"  # gaps (live runs) make it float
    filtered = ws.runs.list("a")
    assert list(filtered.columns) == [
        *_FIXED_NAMES, "param.C", "param.kernel", "acc", "param.flag", "param.layers", "loss",
    ]  # fmt: skip
    assert filtered["param.C"].dtype == "int64" and filtered["acc"].tolist()[0] == math.inf


#: What schema 3 kept of runs for listings, as schema 3's code wrote it.
_SCHEMA_3_TRIGGER = """CREATE TRIGGER runs_updated AFTER UPDATE OF id, experiment, status,
    env_name, env_version, image, config, handle, owner, cancel_requested, created,
    started, ended, exit_code, error, failed_stage, snapshot_files, snapshot_bytes
    ON runs BEGIN
    UPDATE changes SET seq = seq + 1 WHERE what = 'runs';
    UPDATE runs SET changed = (SELECT seq FROM changes WHERE what = 'runs') WHERE id = NEW.id;
END"""


def _to_schema_3(ws: Workspace) -> None:
    """Turn the workspace's database into the one schema 3 left: each ended run's summary
    as one JSON document (``{"name", "columns"}``, NaN written as Python writes it), no
    name column, the listing index of schema 3."""

    db = sqlite3.connect(ws.store.path)
    summaries = {}
    for run_id, status, config in db.execute("SELECT id, status, config FROM runs"):
        if Status(status).is_terminal:
            columns = summarize(RunPaths(ws.path("runs", run_id)))
            summaries[run_id] = json.dumps({"name": json.loads(config)["name"], "columns": columns})
    for statement in (
        "DROP TRIGGER runs_updated",
        "DROP INDEX runs_listing",
        *(f"ALTER TABLE runs DROP COLUMN {c}" for c in _SINCE_4),
        "ALTER TABLE runs ADD COLUMN summary TEXT",
        "CREATE INDEX runs_by_created ON runs (created)",
        _SCHEMA_3_TRIGGER,
        "PRAGMA user_version = 3",
    ):
        db.execute(statement)
    db.executemany(
        "UPDATE runs SET summary = ? WHERE id = ?", [(v, k) for k, v in summaries.items()]
    )
    db.commit()
    db.close()


def test_a_schema_3_workspace_is_migrated_and_lists_the_same_from_its_summaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    ws = Workspace(tmp_path / ".mlmagic")
    _mixed_workspace(ws, monkeypatch)
    expected = _expected_frame(ws)
    _to_schema_3(ws)
    db = sqlite3.connect(ws.store.path)
    changes = db.execute("SELECT seq FROM changes").fetchone()[0]
    # The ended runs' files go: only the migrated summaries can list their metrics now.
    for run_id in ("a_1", "a_2", "b_3"):
        RunPaths(ws.path("runs", run_id)).metrics.unlink()
        RunPaths(ws.path("runs", run_id)).params.unlink()

    migrated = Workspace(tmp_path / ".mlmagic")
    assert migrated.store.path.exists()  # opened (and migrated) the database
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    assert "summary" not in columns and set(_SINCE_4) <= set(columns)
    stored = {row[0]: row[1:] for row in db.execute(
        "SELECT id, name, summary_keys, summary_values FROM runs")}  # fmt: skip
    assert stored["a_1"][0] == "name of a_1" and stored["c_5"] == (None, None, None)
    assert stored["b_4"] == ("name of b_4", None, None)  # live: read from its files
    assert stored["a_2"][1:] == ('["param.C", "param.kernel", "acc"]', "[2, null, Infinity]")
    pd.testing.assert_frame_equal(migrated.runs.list(), expected)
    # Change numbers, triggers and indexes survive the table's rebuild.
    assert migrated.store.run_changes() == changes
    migrated.store.update_run("a_1", error="x")
    assert [r.id for r in migrated.store.runs(changed_after=changes)] == ["a_1"]
    indexes = {row[1] for row in db.execute("PRAGMA index_list(runs)")}
    assert {"runs_by_experiment", "runs_by_change", "runs_live", "runs_listing"} <= indexes
    assert "runs_by_created" not in indexes  # runs_listing serves its queries
    Store(migrated.store.path)  # opening again changes nothing
    assert migrated.store.run_changes() == changes + 1


def test_a_listing_of_every_run_reads_one_covering_index(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_run(ws, "a_1", created=1.0, metrics=(("acc", 0.5),), monkeypatch=monkeypatch)
    db = ws.store._connection()
    issued: list[str] = []
    db.set_trace_callback(issued.append)
    try:
        assert list(ws.runs.list()["acc"]) == [0.5]
    finally:
        db.set_trace_callback(None)
    (query,) = [sql for sql in issued if "summary_values FROM runs" in sql]
    plan = " ".join(str(tuple(row)) for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "SCAN runs USING COVERING INDEX runs_listing" in plan, plan


def test_an_unchanged_listing_is_not_read_again_and_any_change_is_seen(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    for i in range(3):
        add_run(ws, f"a_{i}", created=i + 1.0, metrics=(("acc", i / 10),), monkeypatch=monkeypatch)
    first = ws.runs.list()
    db = ws.store._connection()
    issued: list[str] = []
    db.set_trace_callback(issued.append)
    try:
        again = ws.runs.list()
        assert not [sql for sql in issued if "FROM runs" in sql], issued
        pd.testing.assert_frame_equal(again, first)
        again.loc[0, "acc"] = 99.0  # the caller's copy: the next listing is not changed
        assert ws.runs.list().loc[0, "acc"] == 0.2
        assert list(ws.runs.list(limit=1)["id"]) == ["a_2"]  # other arguments: listed
        # A change by another process (another connection, no mlmagic code) is seen.
        other = sqlite3.connect(ws.store.path)
        other.execute("UPDATE runs SET exit_code = 7 WHERE id = 'a_0'")
        other.commit()
        issued.clear()
        assert ws.runs.list().set_index("id").loc["a_0", "exit_code"] == 7
        assert [sql for sql in issued if "FROM runs" in sql]
    finally:
        db.set_trace_callback(None)
    # A new run, and then a live run's new values, are seen at once.
    live = add_run(ws, "a_3", created=4.0, status=Status.RUNNING, monkeypatch=monkeypatch)
    assert list(ws.runs.list()["id"]) == ["a_3", "a_2", "a_1", "a_0"]
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(live.metrics))
    mlmagic_run.log("acc", 0.5)
    assert ws.runs.list().set_index("id").loc["a_3", "acc"] == 0.5


def test_the_command_draws_the_newest_20_unless_asked_and_says_there_are_more(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(52):
        config = RunConfig(script="s.py", environment="e:1", source_dir="/src", experiment="x")
        record = RunRecord(
            id=f"x_{i:02d}", experiment="x", status=Status.COMPLETED, config=config,
            created=1000.0 + i,
        )  # fmt: skip
        ws.store.insert_run(record)
    monkeypatch.chdir(ws.root.parent)
    monkeypatch.setenv("COLUMNS", "200")

    def listed(*args: str) -> tuple[list[str], str]:
        assert cli.main(["run", "list", *args]) == 0
        out, err = capsys.readouterr()
        return [w for w in out.split() if w.startswith("x_")], err

    ids, note = listed()
    assert ids == [f"x_{i:02d}" for i in range(51, 31, -1)]
    assert note.strip() == ("The newest 20 runs; there are more: --limit N shows N, --json all.")
    ids, note = listed("--limit", "52")
    assert len(ids) == 52 and note == ""
    ids, note = listed("--experiment", "x", "--since", "1970-01-01")  # filters: still 20
    assert len(ids) == 20 and note.startswith("The newest 20 runs")
    assert len(listed("-q")[0]) == 52
    assert cli.main(["run", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 52
