"""The workspace database: versions, idempotent finishing, several processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from mlmagic.store import Store
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


def _register_many(path: str, worker: int) -> None:
    store = Store(Path(path))
    for i in range(25):
        store.register_environment("shared", _env(f"w{worker}-{i}"))
        store.insert_run(
            {
                "id": f"run-{worker}-{i}",
                "experiment": "e",
                "status": "Queued",
                "target": "docker",
                "script": "s.py",
                "args": [],
                "config": {},
                "tags": {},
            }
        )


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
    store.insert_run(
        {
            "id": "r",
            "experiment": "e",
            "status": "Queued",
            "target": "docker",
            "script": "s.py",
            "args": ["--a"],
            "config": {},
            "tags": {"k": "v"},
        }
    )
    assert store.start_stage("r", "Running", when=1.0)
    assert store.finish_run("r", status="Completed", exit_code=0, ended=2.0)
    assert not store.finish_run("r", status="Failed", exit_code=1, ended=3.0)
    run = store.run("r")
    assert (run["status"], run["exit_code"], run["args"]) == ("Completed", 0, ["--a"])
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
