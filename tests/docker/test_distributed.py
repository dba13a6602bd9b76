"""Distributed runs on the real engine and as local processes: the variables every rank
gets, TF_CONFIG, a real MPI allreduce, a real PyTorch DDP job, and gang semantics."""

from __future__ import annotations

import textwrap

import pytest

from mlmagic import (
    Environment,
    PyTorchConfiguration,
)
from mlmagic.events import Status
from mlmagic.targets.gang import DockerGang

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
    _gone(workspace, run, target)
