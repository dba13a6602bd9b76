"""The workspace database: versions, idempotent finishing, several processes at once."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError
from mlmagic.records import RunRecord
from mlmagic.run.config import RunConfig
from mlmagic.store import SCHEMA_VERSION, Store
from mlmagic.workspace import WORKSPACE_DIRNAME, find_workspace


def _env(key: str) -> dict[str, object]:
    return {
        "spec": {"format": "pip"},
        "cache_key": key,
        "image": f"img:{key}",
        "status": "registered",
        "dockerfile": "FROM x\n",
    }


def test_same_definition_same_version_new_definition_new_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    assert store.register_environment("a", _env("k1"))["version"] == 1
    assert store.register_environment("a", _env("k1"))["version"] == 1
    assert store.register_environment("a", _env("k2"))["version"] == 2
    # Back to the first content: it differs from the latest, so it is a new version.
    assert store.register_environment("a", _env("k1"))["version"] == 3
    assert store.register_environment("b", _env("k1"))["version"] == 1
    assert [r["version"] for r in store.environments("a")] == [3, 2, 1]
    assert store.environment("a")["spec"] == {"format": "pip"}


def _run(run_id: str, *args: str, **config: object) -> RunRecord:
    return RunRecord(
        id=run_id,
        experiment="e",
        status=Status.QUEUED,
        config=RunConfig(script="s.py", environment="a:1", source_dir="/src", args=args, **config),
    )


def _register_many(path: str, worker: int) -> None:
    store = Store(Path(path))
    for i in range(25):
        store.register_environment("shared", _env(f"w{worker}-{i}"))
        store.insert_run(_run(f"run-{worker}-{i}"))


def test_several_processes_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db"
    Store(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_register_many, args=(str(path), w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    store = Store(path)
    assert sorted(r["version"] for r in store.environments("shared")) == list(range(1, 101))
    assert len(store.runs()) == 100


def test_finishing_a_run_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.insert_run(_run("r", "--a", tags={"k": "v"}))
    assert store.start_stage("r", "Running", when=1.0)
    assert store.finish_run("r", status="Completed", exit_code=0, ended=2.0)
    assert not store.finish_run("r", status="Failed", exit_code=1, ended=3.0)
    run = store.run("r")
    assert run is not None
    assert (run.status, run.exit_code, run.config.args) == (Status.COMPLETED, 0, ("--a",))
    assert run.config.tags == {"k": "v"}
    assert store.stages("r")[0]["ended"] == 2.0
    assert not store.start_stage("r", "Finalizing")


def test_workspace_is_found_walking_up(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLMAGIC_WORKSPACE", raising=False)
    root = tmp_path / WORKSPACE_DIRNAME
    root.mkdir()
    Store(root / "mlmagic.db")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_workspace(deep) == root
    other = tmp_path.parent / "elsewhere-mlmagic-test"
    assert find_workspace(other) == other.resolve() / WORKSPACE_DIRNAME
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(tmp_path / "ws"))
    assert find_workspace(deep) == (tmp_path / "ws").resolve()


# The schema of version 1, as mlmagic 0.x wrote it (the migration's starting point).
_V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS environments (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    image TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    built REAL,
    size INTEGER,
    packages TEXT,
    dockerfile TEXT NOT NULL,
    error TEXT,
    log_path TEXT,
    venv TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    env_name TEXT,
    env_version INTEGER,
    image TEXT,
    script TEXT NOT NULL,
    args TEXT NOT NULL,
    config TEXT NOT NULL,
    tags TEXT NOT NULL,
    handle TEXT,
    owner TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    error TEXT,
    failed_stage TEXT,
    snapshot_files INTEGER,
    snapshot_bytes INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, created);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL REFERENCES runs (id),
    stage TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    PRIMARY KEY (run_id, stage)
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    run_id TEXT,
    experiment TEXT,
    env_name TEXT,
    env_version INTEGER,
    tags TEXT NOT NULL,
    description TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    config TEXT NOT NULL,
    image TEXT,
    handle TEXT,
    url TEXT,
    key_hashes TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    error TEXT
);
"""


def _v1_database(path: Path) -> None:
    """A workspace database as the schema-1 code left it: a run, a stage, a service."""
    db = sqlite3.connect(path)
    db.executescript(_V1_SCHEMA + "PRAGMA user_version = 1;")
    config = {
        "script": "train.py",
        "environment": "six-env:1",
        "source_dir": "/src",
        "args": ["--C", "0.5"],
        "experiment": "digits",
        "name": "first",
        "tags": {"team": "a"},
        "gpus": "none",
        "data": {},
        "shm_size": None,
        "memory": None,
        "cpus": None,
        "timeout": None,
        "target": "local",
    }
    db.execute(
        "INSERT INTO environments (name, version, spec, cache_key, image, status, created, "
        "built, dockerfile) VALUES ('six-env', 1, '{\"format\": \"pip\"}', 'k', 'img:k', "
        "'ready', 1.0, 2.0, 'FROM x')"
    )
    db.execute(
        "INSERT INTO runs (id, experiment, name, status, target, env_name, env_version, script,"
        " args, config, tags, created, exit_code) VALUES ('digits_1', 'digits', 'first', "
        "'Completed', 'local', 'six-env', 1, 'train.py', '[\"--C\", \"0.5\"]', ?, "
        '\'{"team": "a"}\', 3.0, 0)',
        (json.dumps(config),),
    )
    db.execute(
        "INSERT INTO stages (run_id, stage, started, ended) "
        "VALUES ('digits_1', 'Running', 3.0, 4.0)"
    )
    service = {
        "models": ["digits:1"],
        "entry_script": "score.py",
        "source_dir": "/app",
        "environment": "six-env:1",
        "port": 5001,
        "host": "127.0.0.1",
        "workers": 1,
        "auth": True,
        "gpus": None,
        "memory": None,
        "cpus": None,
        "target": "docker",
    }
    db.execute(
        "INSERT INTO services (name, state, config, url, key_hashes, created, updated) "
        "VALUES ('svc', 'Healthy', ?, 'http://127.0.0.1:5001', ?, 5.0, 6.0)",
        (json.dumps(service), json.dumps(["a" * 64, "b" * 64])),
    )
    db.commit()
    db.close()


def test_a_schema_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "mlmagic.db"
    _v1_database(path)
    store = Store(path)
    run = store.run("digits_1")
    assert run is not None
    assert (run.config.script, run.config.args, run.config.name) == (
        "train.py",
        ("--C", "0.5"),
        "first",
    )
    assert (run.target, run.status, run.exit_code, run.environment) == (
        "local",
        Status.COMPLETED,
        0,
        "six-env:1",
    )
    assert store.stages("digits_1")[0]["ended"] == 4.0
    service = store.service("svc")
    assert service is not None and service.config.models == ("digits:1",)
    assert service.key_hashes == {"Primary": "a" * 64, "Secondary": "b" * 64}
    assert store.environment("six-env")["image"] == "img:k"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    run_columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert not run_columns & {"script", "args", "tags", "target"}
    # The name lives in the config; schema 4 copies it into a column for listings.
    assert db.execute("SELECT name FROM runs WHERE id = 'digits_1'").fetchone()[0] == "first"
    assert "built" not in {row[1] for row in db.execute("PRAGMA table_info(environments)")}
    # Opening it again changes nothing, and the stages still point at their run.
    assert Store(path).run("digits_1") == run
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_newer_database_is_refused_in_one_line_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "mlmagic.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE future (x)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(MlmagicError) as info:
        Store(path)
    assert str(info.value) == (
        f"This workspace was written by a newer mlmagic (schema {SCHEMA_VERSION + 1}, this one "
        f"reads up to {SCHEMA_VERSION}): upgrade mlmagic with `pip install -U mlmagic`."
    )
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["future"]
