"""An engine chosen by ``docker context use`` (Docker Desktop, colima, rootless Docker).

A second engine is started on its own socket and chosen only through a Docker context in
a temporary ``DOCKER_CONFIG`` (no ``DOCKER_HOST``): the environment's build (the docker
CLI) and the run's container (docker-py) must both land there, never on the first engine.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import docker
import pytest

from mlmagic import Environment, Workspace
from mlmagic.engine.docker import DockerEngine
from mlmagic.events import Status
from tests.conftest import BASE_IMAGE, _unavailable
from tests.docker.second_engine import SecondEngine


@pytest.fixture(scope="session")
def second_engine(docker_engine) -> Iterator[tuple[SecondEngine, docker.DockerClient]]:  # type: ignore[no-untyped-def]
    """A second dockerd holding the base image; stopped and removed after the session."""
    problem = SecondEngine.problem()
    if problem:
        _unavailable(problem)
    engine = SecondEngine()
    try:
        client = engine.start()
        engine.load(BASE_IMAGE)
        yield engine, client
    finally:
        engine.stop()


@pytest.fixture
def context_workspace(second_engine, tmp_path, config, monkeypatch):  # type: ignore[no-untyped-def]
    """A workspace whose engine is whatever the current Docker context names."""
    engine, _ = second_engine
    cli = shutil.which("docker") or "/usr/bin/docker"
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    # Child processes (the run's supervisor) inherit the choice, as from a user's shell.
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    for args in (["create", "second", "--docker", f"host={engine.host}"], ["use", "second"]):
        subprocess.run([cli, "context", *args], check=True, capture_output=True)
    root = tmp_path / ".mlmagic"
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(root))
    monkeypatch.setenv("MLMAGIC_TARGET", "docker")
    monkeypatch.chdir(tmp_path)
    config.target = "docker"
    Workspace._current.clear()
    ws = Workspace(root, engine=DockerEngine(cli=config.docker_cli), config=config)
    Workspace._current[root] = ws
    yield ws
    Workspace._current.clear()


def test_a_build_and_a_run_both_land_on_the_engine_of_the_current_context(
    context_workspace, second_engine, docker_engine, tmp_path
):
    _, second = second_engine
    first = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    # A Dockerfile no other test builds (so its image cannot be on the first engine already),
    # with nothing to download: the second engine's bridge has no route out (no iptables).
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo second engine > /where.txt\n"
    env = Environment.from_text("ctx-env", dockerfile).build(context_workspace, show_output=False)
    assert env.status == "ready" and env.image
    assert second.images.get(env.image).id
    with pytest.raises(docker.errors.ImageNotFound):
        first.images.get(env.image)

    project = tmp_path / "project"
    project.mkdir()
    (project / "where.py").write_text("print('ran on the', open('/where.txt').read())\n")
    started = int(time.time()) - 1
    run = context_workspace.submit("where.py", env, source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.error
    assert run.logs().strip() == "ran on the second engine"
    # The container started on the second engine (it is removed once the run ends).
    seen = second.events(
        since=started,
        until=int(time.time()) + 1,
        filters={"type": "container", "event": "start"},
        decode=True,
    )
    images = [e.get("Actor", {}).get("Attributes", {}).get("image") for e in seen]
    assert env.image in images
    assert not first.containers.list(all=True, filters={"ancestor": env.image})
