"""``--publish-host``: a service on a remote engine published on an address of that host
and reached directly, instead of the SSH forward of its loopback. Without an engine: the
option, the URL it makes, what the record keeps, what the server answers, the refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlmagic import Environment, options
from mlmagic.computes.docker_host import docker_compute, published_url
from mlmagic.deploy.config import ServiceConfig
from mlmagic.exceptions import DeployError, MlmagicError
from mlmagic.records import ServiceRecord
from mlmagic.serve.hosts import ENV_ALLOWED_HOSTS
from mlmagic.targets.base import TargetContext
from mlmagic.targets.remote_docker import RemoteDockerTarget
from mlmagic.targets.serving import server_settings
from mlmagic.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / ".mlmagic")


def _config(**changes: object) -> ServiceConfig:
    values = {"models": ("m:1",), "entry_script": "score.py", "source_dir": "/src"}
    return ServiceConfig(**{**values, "environment": "e:1", "port": 8123, **changes})  # type: ignore[arg-type]


def test_the_option_is_the_api_keyword_in_both_front_ends():
    parser = argparse.ArgumentParser()
    options.add_options(parser, options.DEPLOY)
    args = parser.parse_args(
        ["--model", "m:1", "--entry", "s.py", "--env", "e", "--publish-host", "0.0.0.0"]
    )
    assert options.api_keywords(options.DEPLOY, args)["publish_host"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("address", "publish", "url"),
    [
        ("ssh://me@gpu-box", "0.0.0.0", "http://gpu-box:8123"),
        ("tcp://gpu-box.lab:2376", "::", "http://gpu-box.lab:8123"),
        ("ssh://me@gpu-box:2222", "10.1.2.3", "http://10.1.2.3:8123"),
        ("ssh://me@gpu-box", "fd00::5", "http://[fd00::5]:8123"),
    ],
)
def test_the_url_is_the_address_or_for_every_interface_the_engines_host(
    address: str, publish: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    compute = docker_compute("gpu-box", address)
    assert published_url(compute, publish, 8123, "svc") == url
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and "network reaches it" in warning and publish in warning


@pytest.mark.parametrize(
    ("address", "publish", "said"),
    [
        ("ssh://me@gpu-box", "gpu-box", "is not an IP address"),
        ("unix:///var/run/docker.sock", "0.0.0.0", "on this machine, publish .* with --host"),
        (None, "0.0.0.0", "on this machine, publish .* with --host"),
    ],
)
def test_it_is_refused_in_one_line_where_it_means_nothing(
    address: str | None, publish: str, said: str
) -> None:
    compute = docker_compute("box", address) if address else None
    with pytest.raises(MlmagicError, match=said) as caught:
        published_url(compute, publish, 8123, "svc")
    assert "\n" not in str(caught.value)


def test_the_record_keeps_it_and_the_server_answers_its_address():
    config = _config(publish_host="10.1.2.3")
    assert ServiceConfig.from_dict(config.to_dict()).publish_host == "10.1.2.3"
    assert ServiceConfig.from_dict(_config().to_dict()).publish_host is None
    record = ServiceRecord(name="s", state="Healthy", config=config, url="http://10.1.2.3:8123")
    allowed = server_settings(record)[ENV_ALLOWED_HOSTS].split(",")
    assert "10.1.2.3:8123" in allowed
    everywhere = ServiceRecord(
        name="s", state="Healthy", config=_config(publish_host="0.0.0.0"), url="http://h:8123"
    )
    assert server_settings(everywhere)[ENV_ALLOWED_HOSTS] == "*:8123"


def test_deploy_refuses_it_on_this_machine_and_with_host_storing_nothing(ws, tmp_path):
    Environment.from_text("e", "numpy\n", format="pip").register(ws)
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(x): return x\n")
    common = {"models": [], "entry_script": "score.py", "environment": "e"}
    common["source_dir"] = tmp_path
    with pytest.raises(MlmagicError, match="with --host ADDRESS"):
        next(ws.services.deploy("svc", target="local", publish_host="0.0.0.0", **common))
    ws.store.insert_compute("box", "docker", "ssh://me@gpu-box", {"extra": {}})
    with pytest.raises(DeployError, match="give only --publish-host"):
        next(
            ws.services.deploy(
                "svc", compute="box", host="0.0.0.0", publish_host="0.0.0.0", **common
            )
        )
    assert ws.store.service("svc") is None


def test_a_tcp_engine_serves_only_when_published_on_its_host(ws):
    context = TargetContext(root=ws.root, config=ws.config, engine=None)  # type: ignore[arg-type]
    target = RemoteDockerTarget(context, "tcp://gpu-box:2376")
    record = ServiceRecord(name="s", state="Transitioning", config=_config(), url="", image="i")
    with pytest.raises(DeployError, match="deploy with --publish-host ADDRESS"):
        target.start_service(record)
