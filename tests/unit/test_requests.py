"""What mlmagic asks of the engine, checked without one: GPUs, limits, mounts, ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlmagic import BuildError, Environment, RunError, SpecError, Workspace
from mlmagic.build.context import resolve_base
from mlmagic.build.image import build_image
from mlmagic.config import MLMagic
from mlmagic.engine.base import ContainerSpec, GpuRequest, PortBinding
from mlmagic.engine.docker import DockerEngine, run_arguments
from mlmagic.events import Status
from mlmagic.records import RunRecord
from mlmagic.run.config import RunConfig, parse_gpus
from mlmagic.run.paths import RunPaths
from mlmagic.targets import TargetContext
from mlmagic.targets.docker import DockerTarget


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", GpuRequest(count=-1)),
        ("2", GpuRequest(count=2)),
        ("0,1", GpuRequest(device_ids=("0", "1"))),
        ("device=3", GpuRequest(device_ids=("3",))),
        ("none", None),
        ("auto", "auto"),
    ],
)
def test_gpus_option(value, expected):
    assert parse_gpus(value) == expected


def test_bad_gpus_option_says_what_works():
    with pytest.raises(RunError, match="use all, auto, none, a count"):
        parse_gpus("many")


def test_gpu_request_limits_and_ports_reach_docker():
    spec = ContainerSpec(
        image="img",
        command=["python"],
        gpus=GpuRequest(count=-1),
        memory="4g",
        cpus=1.5,
        shm_size="2g",
        ports=[PortBinding(5001, 8890)],
    )
    kwargs = run_arguments(spec)
    (request,) = kwargs["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == "4g"
    assert kwargs["nano_cpus"] == 1_500_000_000 and kwargs["shm_size"] == "2g"
    assert kwargs["ports"] == {"5001/tcp": ("127.0.0.1", 8890)}
    assert kwargs["init"] is True
    ids = run_arguments(ContainerSpec("img", [], gpus=GpuRequest(device_ids=("0", "2"))))
    assert ids["device_requests"][0]["DeviceIDs"] == ["0", "2"]
    assert "device_requests" not in run_arguments(ContainerSpec("img", []))


def test_a_run_container_mounts_labels_and_environment(tmp_path):
    ws = Workspace(tmp_path / ".mlmagic", config=MLMagic())
    config = RunConfig(
        script="train.py",
        environment="e:1",
        source_dir=str(tmp_path),
        args=("--C", "1"),
        data={"digits": str(tmp_path)},
        memory="1g",
    )
    record = RunRecord(id="exp_1_abc", experiment="default", status=Status.QUEUED, config=config)
    paths = RunPaths(ws.path("runs", record.id))
    target = DockerTarget(TargetContext(root=ws.root, config=ws.config))
    spec = target.run_container(record, paths, "mlmagic-env:x", GpuRequest(count=1))
    targets = {m.target: m for m in spec.mounts}
    assert targets["/mlmagic/data/digits"].read_only
    assert targets["/mlmagic/lib/mlmagic_run.py"].read_only
    assert not targets["/mlmagic/src/outputs"].read_only
    assert spec.environment["MLMAGIC_DATA_DIGITS"] == "/mlmagic/data/digits"
    assert spec.environment["MLMAGIC_OUTPUT_DIR"] == "/mlmagic/src/outputs"
    assert spec.environment["PYTHONUNBUFFERED"] == "1"
    assert spec.labels == {
        "mlmagic.workspace": str(ws.root),
        "mlmagic.kind": "run",
        "mlmagic.id": "exp_1_abc",
    }
    assert spec.shm_size == "2g" and spec.memory == "1g" and spec.working_dir == "/mlmagic/src"
    assert spec.command[-3:] == ["train.py", "--C", "1"]


def test_reserved_names_and_curated_environments(tmp_path):
    with pytest.raises(SpecError, match="reserved for the curated"):
        Environment.from_text("mlmagic-mine", "six\n")
    ws = Workspace(tmp_path / ".mlmagic", config=MLMagic())
    env = ws.environments.get("mlmagic-sklearn")
    assert env.version == 1 and any(p.startswith("scikit-learn") for p in env.spec.pip)
    with pytest.raises(SpecError, match="no curated environment"):
        Environment.curated("mlmagic-nope")


def test_current_kernel_is_pinned_on_its_python():
    import sys

    env = Environment.from_current_kernel("kernel-env")
    assert env.spec.python == "{}.{}".format(*sys.version_info[:2])
    assert env.spec.pip and all("==" in p for p in env.spec.pip)
    assert not any(p.startswith("mlmagic==") for p in env.spec.pip)


def test_private_registry_password_comes_from_the_environment_only(tmp_path, monkeypatch):
    monkeypatch.delenv("MLMAGIC_TEST_REGISTRY_PASSWORD", raising=False)
    text = (
        "base_image: registry.example.com/team/python:3.11\npip: [six]\nregistry:\n"
        "  address: registry.example.com\n  username: ci\n"
        "  password_env: MLMAGIC_TEST_REGISTRY_PASSWORD\n"
    )
    spec = Environment.from_text("private", text).spec
    assert "password" not in str(spec.to_dict()["registry"]).replace("password_env", "")
    with pytest.raises(BuildError, match="MLMAGIC_TEST_REGISTRY_PASSWORD, which is not set"):
        list(
            build_image(
                DockerEngine(),
                spec,
                resolve_base(spec, MLMagic()),
                "t:1",
                log_path=tmp_path / "log",
            )
        )
    with pytest.raises(SpecError, match="never"):
        Environment.from_text("private", text + "  password: hunter2\n")


def test_snapshot_limits_are_checked_at_submit(tmp_path):
    config = MLMagic()
    config.snapshot_max_files = 2
    ws = Workspace(tmp_path / ".mlmagic", config=config)
    Environment.from_text("e", "six\n").register(ws)
    project = tmp_path / "p"
    project.mkdir()
    for name in ("train.py", "a.csv", "b.csv"):
        (project / name).write_text("x")
    with pytest.raises(RunError, match=r"\.mlignore"):
        ws.submit("train.py", "e", source_dir=project, target="docker")
    assert ws.store.runs() == []
    assert not Path(ws.root / "runs").exists() or not any((ws.root / "runs").iterdir())
