"""A distributed run on a Ray compute, the parts that need no cluster: the target's
``check_run`` hook that RunConfig calls, the plan's placeholders, and the driver's
reports filed as the docker gang's exit records (the cluster itself:
``tests/docker/test_ray.py``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace

import pytest

from mlmagic.distributed.config import distribution
from mlmagic.distributed.plan import plan_nodes
from mlmagic.exceptions import RunError
from mlmagic.run.config import RunConfig
from mlmagic.run.paths import RunPaths
from mlmagic.targets import ray_driver, ray_gang
from mlmagic.targets.base import Target
from mlmagic.targets.docker import DockerTarget
from mlmagic.targets.ray import RayTarget


def _config(**options):
    return RunConfig(script="t.py", environment="e:1", source_dir=".", **options)


def test_run_config_asks_its_target_and_names_none(monkeypatch):
    asked = []
    monkeypatch.setattr(DockerTarget, "check_run", classmethod(lambda cls, c: asked.append(c)))
    config = _config(target="docker")
    # A compute that is a Docker engine is checked by the docker target, too.
    on_engine = _config(target="docker@lab", compute="lab")
    assert asked == [config, on_engine]
    # The base hook takes every run; a target this installation does not know checks
    # nothing (a stored run of an uninstalled target still reads).
    assert Target.check_run(config) is None
    assert _config(target="gone-plugin").target == "gone-plugin"


def test_the_ray_target_takes_every_framework_mpi_included():
    with pytest.raises(RunError, match="--compute NAME"):
        _config(target="ray")
    for framework, layout in (
        ("pytorch", {"nodes": 2}),
        ("tensorflow", {"workers": 2}),
        ("mpi", {"nodes": 2}),
    ):
        config = _config(target="ray", compute="lab", distributed=distribution(framework, **layout))
        assert config.distributed is not None and config.distributed.framework == framework


def test_an_mpi_plan_gives_each_agent_a_port_of_its_own_node(tmp_path):
    paths = RunPaths(tmp_path / "run")
    paths.system.mkdir(parents=True)
    package = tmp_path / "mlmagic_run"
    package.mkdir()
    dist = distribution("mpi", nodes=3, procs_per_node=2)
    config = SimpleNamespace(distributed=dist, cpus=None, argv=("allreduce.py",))
    compute = SimpleNamespace(made=True, python="/opt/env/bin/python", name="lab")
    record = SimpleNamespace(id="r1", config=config)
    ray_gang.entrypoint(compute, record, paths, package, outputs=None, gpus=None, gpu_count=0)
    text = (package / "gang.json").read_text()
    hosts, ports = ["10.0.0.1", "10.0.0.2", "10.0.0.3"], [40000, 40001, 40002]
    plan = json.loads(ray_driver.fill_plan(text, hosts, ports))
    assert [(n["host"], n["role"]) for n in plan["nodes"]] == [
        ("10.0.0.1", "mpirun"),
        ("10.0.0.2", "agent"),
        ("10.0.0.3", "agent"),
    ]
    assert plan["agent_ports"] == ["40000", "40001", "40002"]
    assert "agent_port" not in plan  # no port is the same on every node of a cluster
    assert "MLMAGIC_GANG_TOKEN" not in text  # the driver makes it, on the cluster


def test_the_driver_fills_every_placeholder_of_a_plan():
    for dist, count in (
        (distribution("pytorch", nodes=2, procs_per_node=2), 2),
        (distribution("tensorflow", workers=2, parameter_servers=1), 3),
    ):
        hosts = [ray_driver.host_placeholder(k) for k in range(count)]
        ports = [ray_driver.port_placeholder(k) for k in range(count)]
        nodes = plan_nodes(dist, "r1", hosts, ports, error_dir=ray_driver.EXITS_PLACEHOLDER)
        text = json.dumps({"master_port": ports[0], "nodes": [asdict(n) for n in nodes]})
        filled = ray_driver.fill_plan(
            text, [f"10.0.0.{k + 1}" for k in range(count)], [40000 + k for k in range(count)]
        )
        assert "%MLMAGIC_HOST" not in filled and "%MLMAGIC_PORT" not in filled
        plan = json.loads(filled)
        assert plan["master_port"] == "40000"  # formatted into torchrun's command line
        env = plan["nodes"][count - 1]["procs"][0]["env"]
        if dist.framework == "pytorch":
            assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["RANK"]) == (
                "10.0.0.1",
                "40000",
                "2",
            )
        else:
            cluster = json.loads(env["TF_CONFIG"])["cluster"]
            assert cluster == {
                "worker": ["10.0.0.1:40000", "10.0.0.2:40001"],
                "ps": ["10.0.0.3:40002"],
            }


def test_the_drivers_reports_become_the_gangs_records(tmp_path):
    paths = RunPaths(tmp_path / "run")
    paths.system.mkdir(parents=True)
    (paths.system / "gang.json").write_text(
        json.dumps(
            {
                "nodes": [
                    {
                        "index": 0,
                        "host": ray_driver.host_placeholder(0),
                        "role": "run",
                        "procs": [{"rank": 0, "label": "rank 0"}],
                    },
                    {
                        "index": 1,
                        "host": ray_driver.host_placeholder(1),
                        "role": "run",
                        "procs": [{"rank": 1, "label": "rank 1"}],
                    },
                ]
            }
        )
    )
    paths.output_log.write_text("[rank 0] fine\n[rank 1] about to fail\n[rank 1] boom\n")
    marker = ray_driver.MARKER
    ray_gang.file_marker(
        paths, marker + json.dumps({"hosts": ["10.1.0.2", "10.1.0.3"], "ports": [41000]})
    )
    for rank, code, stopped, ended in ((1, 3, False, 1.0), (0, 143, True, 2.0)):
        record = {
            "rank": rank,
            "node": rank,
            "label": f"rank {rank}",
            "exit_code": code,
            "stopped": stopped,
            "ended": ended,
        }
        ray_gang.file_marker(paths, marker + json.dumps({"exit": record}))
    ray_gang.file_marker(paths, marker + "not json")  # ignored, not raised
    message = ray_gang.exit_message(paths)
    assert message is not None
    assert message.startswith("rank 1 (node 1) exited with code 3; its last lines:")
    assert "[rank 1] boom" in message and "[rank 0] fine" not in message
    rows = ray_gang.nodes(paths, running=False)
    assert [(r["host"], r["state"]) for r in rows] == [
        ("10.1.0.2", "Stopped"),
        ("10.1.0.3", "Failed: rank 1 exited 3"),
    ]


def test_the_plan_ships_with_the_launcher_and_the_driver(tmp_path):
    paths = RunPaths(tmp_path / "run")
    paths.system.mkdir(parents=True)
    package = tmp_path / "mlmagic_run"
    package.mkdir()
    dist = distribution("pytorch", nodes=2, procs_per_node=1)
    config = SimpleNamespace(distributed=dist, cpus=None, argv=("train.py", "--a"))
    compute = SimpleNamespace(made=True, python="/opt/env/bin/python", name="lab")
    entry = ray_gang.entrypoint(
        compute,
        SimpleNamespace(id="r1", config=config),
        paths,
        package,
        outputs="/mlmagic/storage/runs/r1/outputs",
        gpus=None,
        gpu_count=0,
    )
    assert entry.startswith("/opt/env/bin/python -c ")
    assert "from mlmagic_run.ray_driver import main" in entry
    assert {p.name for p in package.iterdir()} == {
        "gang.json",
        "mlmagic_gang.py",
        "mlmagic_mpi.py",
        "ray_driver.py",
    }
    plan = json.loads((package / "gang.json").read_text())
    assert plan["ray"] == {
        "python": "/opt/env/bin/python",
        "outputs": "/mlmagic/storage/runs/r1/outputs",
        "bundle": {"mlmagic_worker": 1},
        "gpus": 0,
    }
    assert plan["command"] == ["-u", "train.py", "--a"]
    assert (paths.system / "gang.json").read_text() == (package / "gang.json").read_text()


def test_gpus_are_counted_on_the_machine_the_nodes_run_on(tmp_path, monkeypatch):
    """A laptop with one GPU submitting to a cluster: its own count must not refuse the
    run (the cluster's scheduler places the GPUs); on its own engine it does."""
    import os

    from mlmagic.distributed.resources import split_gpus
    from mlmagic.engine.base import GpuRequest
    from mlmagic.targets.remote_docker import RemoteDockerTarget

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA Laptop GPU (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    here, ray, remote = (object.__new__(t) for t in (DockerTarget, RayTarget, RemoteDockerTarget))
    assert here.gpu_count() == 1
    assert ray.gpu_count() is None and remote.gpu_count() is None
    asked = GpuRequest(count=2)
    with pytest.raises(RunError, match="asks for 4 GPUs; the host has 1"):
        split_gpus(asked, 2, here.gpu_count())
    assert split_gpus(asked, 2, ray.gpu_count()) == [asked, asked]
