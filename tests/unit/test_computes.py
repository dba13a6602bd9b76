"""Computes without a cluster: what the store keeps, what it refuses, the schema step,
and the marker channel that brings a Ray job's metrics and params back."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mlmagic.computes.client import RayJobs
from mlmagic.computes.record import Compute
from mlmagic.distributed.config import distribution
from mlmagic.exceptions import ConflictError, MlmagicError, NotFoundError, RunError
from mlmagic.run.config import RunConfig
from mlmagic.run.paths import RunPaths
from mlmagic.store import SCHEMA_VERSION, Store
from mlmagic.targets.ray_logs import LogPump
from mlmagic.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / ".mlmagic")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_attach_stores_the_compute_and_only_the_name_of_its_token(ws, monkeypatch):
    monkeypatch.setenv("LAB_TOKEN", "s3cret-token-value")
    compute = ws.computes.attach(
        "lab",
        ray_address="http://ray-head.internal:8265/",
        token_env="LAB_TOKEN",
        storage="/shared/ray",
        python="/opt/env/bin/python",
        check=False,
    )
    assert compute.address == "http://ray-head.internal:8265"
    again = ws.computes.get("lab")
    assert again == compute
    assert again.token() == "s3cret-token-value"
    assert [c.name for c in ws.computes.all()] == ["lab"]
    # The database and its write-ahead log, where a new row first lands.
    raw = b"".join(path.read_bytes() for path in ws.root.glob("mlmagic.db*"))
    assert b"LAB_TOKEN" in raw and b"s3cret-token-value" not in raw
    ws.computes.detach("lab")
    assert ws.computes.all() == []


def test_a_missing_token_variable_says_which_to_set(ws, monkeypatch):
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    ws.computes.attach("lab", ray_address="http://h:8265", token_env="NOT_SET_TOKEN", check=False)
    with pytest.raises(MlmagicError, match=r"\$NOT_SET_TOKEN, which is not set"):
        ws.computes.get("lab").token()


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"name": "bad name"}, "not a valid compute name"),
        ({"name": "-lab"}, "not a valid compute name"),
        ({"ray_address": "ray://head:10001"}, "not a Ray Jobs API address"),
        ({"ray_address": "head:8265"}, "not a Ray Jobs API address"),
        ({"ray_address": "http://"}, "not a Ray Jobs API address"),
        ({"ray_address": "http://head:port"}, "port that is not a number"),
        ({"token_env": "my token"}, "NAME of the variable"),
        ({"token_env": "$TOKEN"}, "NAME of the variable"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(ws, keywords, message):
    given = {"name": "lab", "ray_address": "http://head:8265", **keywords}
    name = given.pop("name")
    with pytest.raises(MlmagicError, match=message) as caught:
        ws.computes.attach(name, check=False, **given)
    assert "\n" not in str(caught.value)
    assert ws.store.computes() == []


def test_names_are_unique_and_unknown_names_list_the_known(ws):
    ws.computes.attach("lab", ray_address="http://a:8265", check=False)
    with pytest.raises(ConflictError, match="exists"):
        ws.computes.attach("lab", ray_address="http://b:8265", check=False)
    assert ws.computes.get("lab").address == "http://a:8265"
    with pytest.raises(NotFoundError, match=r"No compute named 'nope' \(computes: lab\)"):
        ws.computes.get("nope")
    with pytest.raises(NotFoundError):
        ws.computes.detach("nope")


def test_attach_checks_the_cluster_answers_first(ws):
    port = _closed_port()
    with pytest.raises(MlmagicError, match=f"127.0.0.1:{port} does not answer"):
        ws.computes.attach("lab", ray_address=f"http://127.0.0.1:{port}")
    assert ws.store.computes() == []


def test_the_listing_says_when_a_cluster_does_not_answer(ws):
    ws.computes.attach("gone", ray_address=f"http://127.0.0.1:{_closed_port()}", check=False)
    frame = ws.computes.list()
    assert list(frame["name"]) == ["gone"]
    assert frame["state"][0].startswith("unreachable: ")
    assert list(frame.columns)[:7] == ["name", "kind", "address", "state", "nodes", "CPUs", "GPUs"]


def test_attached_and_made_computes_are_removed_each_their_way(ws):
    ws.computes.attach("lab", ray_address="http://a:8265", check=False)
    with pytest.raises(MlmagicError, match="attached, not started by mlmagic"):
        ws.computes.down("lab")
    made = Compute(name="made", kind="ray", address="http://127.0.0.1:1", network="net", created=1)
    ws.store.insert_compute(made.name, made.kind, made.address, made.options())
    with pytest.raises(MlmagicError, match="%compute down made"):
        ws.computes.detach("made")
    assert {c.name for c in ws.computes.all()} == {"lab", "made"}


def test_a_run_on_ray_names_its_compute(ws):
    with pytest.raises(RunError, match="--compute NAME"):
        RunConfig(script="t.py", environment="e:1", source_dir=".", target="ray")
    # A compute that is a Docker engine is a target of its own, not Ray's.
    config = RunConfig(
        script="t.py", environment="e:1", source_dir=".", target="docker@lab", compute="lab"
    )
    assert (config.target, config.compute) == ("docker@lab", "lab")
    config = RunConfig(
        script="t.py", environment="e:1", source_dir=".", target="ray", compute="lab"
    )
    assert RunConfig.from_dict(config.to_dict()) == config
    # Every framework runs on Ray, MPI included.
    mpi = RunConfig(
        script="t.py",
        environment="e:1",
        source_dir=".",
        target="ray",
        compute="lab",
        distributed=distribution("mpi", nodes=2),
    )
    assert mpi.distributed is not None and mpi.distributed.framework == "mpi"


def test_a_schema_4_workspace_gains_the_computes_table(tmp_path):
    path = tmp_path / "mlmagic.db"
    Store(path)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE computes")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    store = Store(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert store.insert_compute("lab", "ray", "http://a:8265", {"token_env": "T"})
    assert not store.insert_compute("lab", "ray", "http://b:8265", {})
    assert store.compute("lab")["options"] == {"token_env": "T"}


def test_the_launcher_prints_metrics_and_params_as_marker_lines(tmp_path):
    script = (
        "import mlmagic_run as run\n"
        "print('hello')\n"
        "run.log('loss', 0.25)\n"
        "run.log_params(C=1, name='x')\n"
    )
    env = {**os.environ, "MLMAGIC_METRICS_FILE": "-", "MLMAGIC_PARAMS_FILE": "-"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "hello"
    assert out[1].startswith("@mlmagic:metric ")
    assert json.loads(out[1].removeprefix("@mlmagic:metric "))["value"] == 0.25
    assert json.loads(out[2].removeprefix("@mlmagic:params ")) == {"C": 1, "name": "x"}


def test_the_pump_takes_the_markers_out_of_the_log(tmp_path):
    paths = RunPaths(tmp_path / "run")
    paths.create()
    jobs = RayJobs(Compute(name="lab", kind="ray", address="http://a:8265"))
    pump = LogPump(jobs, "run-1", paths)
    rest = pump._write_lines(
        "Running entrypoint for job run-1: python -m mlmagic_run exec ...\n"
        "epoch 1\n"
        '@mlmagic:metric {"name": "acc", "step": 0, "value": 0.5, "time": 1.0}\n'
        '@mlmagic:params {"C": 0.5}\n'
        '@mlmagic:params {"C": 0.7, "k": 2}\n'
        "half a li"
    )[0]
    assert rest == "half a li"
    assert paths.output_log.read_text() == "epoch 1\n"
    assert json.loads(paths.metrics.read_text())["value"] == 0.5
    assert json.loads(paths.params.read_text()) == {"C": 0.7, "k": 2}


def test_a_run_on_a_compute_that_is_gone_ends_at_once_saying_so(ws):
    target = ws.target("ray")
    state = target.state("ray:gone:default_1")
    assert state is not None and not state.running and state.exit_code is None
    assert "compute 'gone' is gone from this workspace" in (
        target.exit_message("ray:gone:default_1") or ""
    )


def test_the_compute_magic_helps_and_refuses_in_one_line(ws, monkeypatch, capsys):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(ws.root))
    Workspace._current.clear()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmagic")
    assert shell.run_line_magic("compute", "--help") is None
    assert "Remove a cluster that %compute up started." in capsys.readouterr().out
    with pytest.raises(UsageError, match="invalid choice: 'frob'"):
        shell.run_line_magic("compute", "frob x")
    with pytest.raises(UsageError, match="give a whole number of workers"):
        shell.run_line_magic("compute", "up x --env e --workers 0")
    compute = shell.run_line_magic("compute", "attach lab --ray http://h:8265 --no-check")
    assert compute.name == "lab" and ws.computes.get("lab").address == "http://h:8265"
    assert list(shell.run_line_magic("computes", "")["name"]) == ["lab"]
    shell.run_line_magic("compute", "detach lab")
    assert ws.computes.all() == []


def test_options_a_ray_compute_cannot_honour_are_noted(ws):
    target = ws.target("ray")
    plain = RunConfig(script="t.py", environment="e:1", source_dir=".", target="ray", compute="c")
    assert target.notes(plain) == []
    asked = RunConfig(
        script="t.py",
        environment="e:1",
        source_dir=".",
        target="ray",
        compute="c",
        memory="2g",
        data={"digits": "."},
    )
    (note,) = target.notes(asked)
    assert note.startswith("--data, --memory not applied on a Ray compute")
