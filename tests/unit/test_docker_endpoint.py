"""Which Docker engine is used, and the "no engine" error that says which and why.

Contexts are made by the real docker CLI in a temporary ``DOCKER_CONFIG``, so the files
read are the ones Docker Desktop, colima or rootless Docker would leave; no engine is
needed (the engine named does not exist).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mlmagic import EngineError
from mlmagic.engine.docker import DockerEngine
from mlmagic.engine.endpoint import DEFAULT_HOST, find_endpoint

DOCKER = shutil.which("docker") or "/usr/bin/docker"


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """An empty docker client configuration, the user's own left untouched."""
    if not shutil.which(DOCKER):
        pytest.skip("no docker CLI to make contexts with")
    config = tmp_path / "docker-config"
    config.mkdir()
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def docker(*args: str) -> None:
    subprocess.run([DOCKER, *args], check=True, capture_output=True, timeout=60)


def test_nothing_set_is_the_default_socket_and_says_so(docker_config):
    endpoint = find_endpoint()
    assert endpoint.host == DEFAULT_HOST and endpoint.context is None
    assert "default socket" in endpoint.source and "no Docker context" in endpoint.source


def test_the_current_context_chooses_the_engine(docker_config, tmp_path):
    socket = f"unix://{tmp_path}/second.sock"
    docker("context", "create", "second", "--docker", f"host={socket}")
    docker("context", "use", "second")
    endpoint = find_endpoint()
    assert (endpoint.host, endpoint.context, endpoint.tls) == (socket, "second", None)
    assert endpoint.source == f"the Docker context 'second', current in {docker_config}/config.json"


def test_docker_context_overrides_the_current_one_and_docker_host_overrides_both(
    docker_config, tmp_path, monkeypatch
):
    docker("context", "create", "one", "--docker", f"host=unix://{tmp_path}/one.sock")
    docker("context", "create", "two", "--docker", f"host=unix://{tmp_path}/two.sock")
    docker("context", "use", "one")
    monkeypatch.setenv("DOCKER_CONTEXT", "two")
    endpoint = find_endpoint()
    assert endpoint.host == f"unix://{tmp_path}/two.sock"
    assert endpoint.source == "the Docker context 'two', named by DOCKER_CONTEXT"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    endpoint = find_endpoint()
    assert (endpoint.host, endpoint.source, endpoint.context) == (
        "tcp://127.0.0.1:9",
        "set by DOCKER_HOST",
        None,
    )


def test_a_tls_context_keeps_its_tls_settings(docker_config):
    docker("context", "create", "remote", "--docker", "host=tcp://127.0.0.1:9,skip-tls-verify=true")
    docker("context", "use", "remote")
    endpoint = find_endpoint()
    assert endpoint.tls is not None and endpoint.tls.verify is False


def test_a_context_that_does_not_exist_is_one_line(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")
    with pytest.raises(EngineError) as info:
        find_endpoint()
    message = str(info.value)
    assert message.startswith("The Docker context 'gone' (named by DOCKER_CONTEXT) does not")
    assert "docker context use" in message and "\n" not in message


def test_no_engine_names_the_engine_tried_and_the_context_that_chose_it(docker_config, tmp_path):
    docker("context", "create", "away", "--docker", f"host=unix://{tmp_path}/none.sock")
    docker("context", "use", "away")
    with pytest.raises(EngineError) as info:
        DockerEngine().ping()
    message = str(info.value)
    assert message.startswith(
        f"No Docker engine answers at unix://{tmp_path}/none.sock (the Docker context 'away', "
        f"current in {docker_config}/config.json). Start Docker"
    )
    assert "docker context use" in message and "\n" not in message
