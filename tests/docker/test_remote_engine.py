"""A Docker engine elsewhere, attached as a compute that does not share this machine's files.

The second engine of :mod:`tests.docker.second_engine` stands in for the GPU box down the
hall: it is attached with ``shared_path=False``, so nothing of the workspace may be
bind-mounted into its containers. Its builds, runs, cancel and re-attach are checked
against the real engine, and the same engine is then reached over ``ssh://`` through an
``sshd`` the test starts on 127.0.0.1 with a throwaway key.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from IPython.core.error import UsageError

from mlmagic import Environment, Workspace
from mlmagic.computes.docker_host import published_url
from mlmagic.deploy.config import ServiceConfig
from mlmagic.deploy.image import SERVE_PORT
from mlmagic.deploy.service import free_port
from mlmagic.engine.base import BuildRequest
from mlmagic.events import Status, drain
from mlmagic.exceptions import MlmagicError, NotFoundError
from mlmagic.records import ServiceRecord
from mlmagic.serve.hosts import ENV_ALLOWED_HOSTS
from mlmagic.targets import remote_docker
from tests.conftest import BASE_IMAGE, _unavailable
from tests.docker import test_docker_context
from tests.docker.second_engine import SecondEngine
from tests.docker.ssh_server import SshServer

#: The second dockerd, shared with the Docker-context tests (one per session).
second_engine = test_docker_context.second_engine

_DOCKERFILE = f"FROM {BASE_IMAGE}\nRUN echo remote engine > /where.txt\n"
# Waits for the test to say "go" inside the container, so it can be looked at running.
_TRAIN = textwrap.dedent(
    """\
    import os, time
    import mlmagic_run as run

    run.log_params(lr=0.1)
    for step in range(3):
        run.log("loss", 1.0 / (step + 1))
    print("data says", open(os.path.join(os.environ["MLMAGIC_DATA_INPUT"], "x.txt")).read())
    print("built on the", open("/where.txt").read().strip())
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.txt", "w") as f:
        f.write("weights")
    os.makedirs("logs", exist_ok=True)
    with open("logs/train.log", "w") as f:
        f.write("trained")
    print("ready", flush=True)
    while not os.path.exists("/tmp/go"):
        time.sleep(0.1)
    print("done")
    """
)


@pytest.fixture
def remote_ws(second_engine, workspace, tmp_path):  # type: ignore[no-untyped-def]
    """The workspace with the second engine attached as ``second`` (files not shared)."""
    engine, _ = second_engine
    workspace.computes.attach("second", docker=engine.host, shared_path=False)
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "train.py").write_text(_TRAIN)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "x.txt").write_text("hello")
    return workspace


def _wait_for(condition, what: str, limit: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    """Whether ``url`` answers 200 now (the proxy accepts before the server listens)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _env(engine: docker.DockerClient, handle: str) -> str:
    """The container's environment, one ``NAME=value`` a line."""
    return "\n".join(engine.containers.get(handle).attrs["Config"]["Env"])


def _handle(ws: Workspace, run_id: str) -> str:
    _wait_for(lambda: ws.store.run(run_id).handle, "the run's container")
    handle = ws.store.run(run_id).handle
    assert handle
    return handle


def _submit(ws: Workspace, env: Environment, tmp_path: Path):  # type: ignore[no-untyped-def]
    return ws.submit(
        "train.py",
        env,
        source_dir=tmp_path / "project",
        compute="second",
        data={"input": str(tmp_path / "input")},
    )


def test_a_run_on_an_engine_without_our_files_gets_them_copied_in_and_back(
    remote_ws, second_engine, tmp_path
):
    _, second = second_engine
    first = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    env = Environment.from_text("remote-env", _DOCKERFILE).build(
        remote_ws, show_output=False, compute="second"
    )
    assert second.images.get(env.image).id
    with pytest.raises(docker.errors.ImageNotFound):
        first.images.get(env.image)

    run = _submit(remote_ws, env, tmp_path)
    handle = _handle(remote_ws, run.id)
    _wait_for(lambda: "ready" in run.logs(), "the run's output streamed back while it runs")
    container = second.containers.get(handle)
    # Nothing of this machine is mounted: the files were copied in.
    assert container.attrs["Mounts"] == []
    assert container.attrs["HostConfig"]["Binds"] in (None, [])
    assert str(remote_ws.root) not in json.dumps(container.attrs["HostConfig"])
    container.exec_run(["touch", "/tmp/go"])
    run.wait()

    assert run.status is Status.COMPLETED, run.error
    assert "data says hello" in run.logs()
    assert "built on the remote engine" in run.logs()
    assert "@mlmagic:" not in run.logs()
    assert list(run.metrics["value"]) == [1.0, 0.5, pytest.approx(1 / 3)]
    assert run.params == {"lr": 0.1}
    folder = remote_ws.path("runs", run.id)
    assert (folder / "outputs" / "model.txt").read_text() == "weights"
    assert (folder / "logs" / "train.log").read_text() == "trained"
    # The container is removed once its files are back.
    with pytest.raises(docker.errors.NotFound):
        second.containers.get(handle)


def test_a_canceled_remote_run_brings_back_what_it_wrote(remote_ws, second_engine, tmp_path):
    _, second = second_engine
    env = Environment.from_text("remote-env", _DOCKERFILE).build(
        remote_ws, show_output=False, compute="second"
    )
    run = _submit(remote_ws, env, tmp_path)
    handle = _handle(remote_ws, run.id)
    _wait_for(lambda: "ready" in run.logs(), "the run's output")
    run.cancel()
    run.wait()
    assert run.status is Status.CANCELED
    assert (remote_ws.path("runs", run.id, "outputs", "model.txt")).read_text() == "weights"
    with pytest.raises(docker.errors.NotFound):
        second.containers.get(handle)


_SUBMITTER = """
import sys, time
from mlmagic import Workspace
ws = Workspace(sys.argv[1])
run = ws.submit("train.py", sys.argv[2], source_dir=sys.argv[3], compute="second",
                data={"input": sys.argv[4]})
while not ws.store.run(run.id).handle:
    time.sleep(0.1)
print(run.id)
"""


def test_a_remote_run_is_followed_to_its_end_by_another_process(remote_ws, second_engine, tmp_path):
    _, second = second_engine
    env = Environment.from_text("remote-env", _DOCKERFILE).build(
        remote_ws, show_output=False, compute="second"
    )
    submitted = subprocess.run(
        [sys.executable, "-c", _SUBMITTER, str(remote_ws.root), env.ref,
         str(tmp_path / "project"), str(tmp_path / "input")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip().splitlines()[-1]
    handle = remote_ws.store.run(run_id).handle
    # The submitter is gone; the container runs on, and says "go" only now.
    second.containers.get(handle).exec_run(["touch", "/tmp/go"])
    run = remote_ws.runs.get(run_id).wait()
    assert run.status is Status.COMPLETED, run.error
    assert run.logs().count("data says hello") == 1
    assert "done" in run.logs()
    assert remote_ws.path("runs", run_id, "outputs", "model.txt").read_text() == "weights"


def test_bad_computes_are_refused_in_one_line(workspace, tmp_path):
    with pytest.raises(MlmagicError, match="No Docker engine answers at tcp://127.0.0.1:9"):
        workspace.computes.attach("nowhere", docker="tcp://127.0.0.1:9")
    with pytest.raises(MlmagicError, match="--tls-ca .*no such file"):
        workspace.computes.attach(
            "tls", docker="tcp://127.0.0.1:2376", tls_ca=str(tmp_path / "ca.pem")
        )
    with pytest.raises(MlmagicError, match="not a Docker engine's address"):
        workspace.computes.attach("bad", docker="http://host:2375")
    (tmp_path / "train.py").write_text("print('hi')\n")
    Environment.from_text("e", _DOCKERFILE).register(workspace)
    with pytest.raises(NotFoundError, match="No compute named 'gpu-box'"):
        workspace.submit("train.py", "e", compute="gpu-box")
    assert workspace.store.computes() == []


@pytest.fixture(scope="module")
def ssh_server(second_engine):  # type: ignore[no-untyped-def]
    """An sshd on 127.0.0.1 in front of the second engine; ended after the module."""
    problem = SshServer.problem()
    if problem:
        _unavailable(problem)
    server = SshServer(second_engine[0].host)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_the_same_engine_over_ssh_builds_and_runs(ssh_server, workspace, monkeypatch, tmp_path):
    # docker-py and the docker CLI run `ssh` by name: this one uses the test's key only.
    monkeypatch.setenv("PATH", f"{ssh_server.bin}{os.pathsep}{os.environ['PATH']}")
    compute = workspace.computes.attach("box", docker=f"ssh://{ssh_server.user_host}")
    assert compute.extra["shares_files"] is False
    env = Environment.from_text("ssh-env", _DOCKERFILE + "RUN echo over ssh > /how.txt\n")
    env = env.build(workspace, show_output=False, compute="box")
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.py").write_text(
        "import os\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/o.txt', 'w').write('from afar')\nprint(open('/how.txt').read())\n"
    )
    run = workspace.submit("hello.py", env, source_dir=project, compute="box").wait()
    assert run.status is Status.COMPLETED, run.error
    assert run.logs().strip() == "over ssh"
    assert workspace.path("runs", run.id, "outputs", "o.txt").read_text() == "from afar"


def test_an_ssh_login_that_fails_is_one_line(ssh_server, workspace, monkeypatch):
    monkeypatch.setenv("PATH", f"{ssh_server.bin}{os.pathsep}{os.environ['PATH']}")
    address = f"ssh://nobody@127.0.0.1:{ssh_server.port}"
    with pytest.raises(MlmagicError, match=f"No Docker engine answers at {address}.*ssh -p"):
        workspace.computes.attach("denied", docker=address)
    assert workspace.store.computes() == []


def test_a_service_on_an_ssh_engine_is_reached_through_a_forwarded_port(
    ssh_server, second_engine, workspace, monkeypatch, tmp_path
):
    # The whole %deploy cannot run here: the second engine has no route out to install the
    # server's packages. The target's part is what differs: publish on the host's
    # loopback, forward a local port to it over SSH, close the forward with the service.
    _, second = second_engine
    monkeypatch.setenv("PATH", f"{ssh_server.bin}{os.pathsep}{os.environ['PATH']}")
    workspace.computes.attach("web-box", docker=f"ssh://{ssh_server.user_host}")
    target = workspace.target("docker@web-box")
    context = tmp_path / "web"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f'FROM {BASE_IMAGE}\nCMD ["python3", "-m", "http.server", "{SERVE_PORT}"]\n'
    )
    drain(target.engine.build(BuildRequest(context, "mlmagic-test-web:remote")))
    port = free_port()
    config = ServiceConfig(
        models=(), entry_script="score.py", source_dir=str(tmp_path), environment="e:1", port=port
    )
    record = ServiceRecord(
        name="web", state="Transitioning", config=config, url=f"http://127.0.0.1:{port}",
        image="mlmagic-test-web:remote",
    )  # fmt: skip
    handle = target.start_service(record)
    try:
        binding = second.containers.get(handle).attrs["HostConfig"]["PortBindings"]
        assert [b["HostIp"] for b in binding[f"{SERVE_PORT}/tcp"]] == ["127.0.0.1"]
        # The server answers the Host of the forwarded address, not the remote port's.
        assert f"{ENV_ALLOWED_HOSTS}=127.0.0.1:{port}," in _env(second, handle)
        remote_port = target.engine.published_port(handle, SERVE_PORT)
        assert remote_port and remote_port != port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
            assert answer.status == 200
    finally:
        target.stop_service(handle)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # --publish-host: on that address of the engine's host (its bridge), reached directly.
    engine = second_engine[0]
    port = free_port(engine.address)
    url = published_url(workspace.computes.get("web-box"), engine.address, port, "web")
    assert url == f"http://{engine.address}:{port}"
    published = replace(record, config=replace(config, port=port, publish_host=engine.address))
    handle = target.start_service(published)
    try:
        binding = second.containers.get(handle).attrs["HostConfig"]["PortBindings"]
        assert binding[f"{SERVE_PORT}/tcp"] == [{"HostIp": engine.address, "HostPort": str(port)}]
        assert not (workspace.path("services", "web") / "tunnel.pid").exists()
        assert f"{engine.address}:{port}" in _env(second, handle)
        _wait_for(lambda: _answers(f"{url}/"), f"an answer at {url}/")
    finally:
        target.stop_service(handle)
    second.images.remove("mlmagic-test-web:remote", force=True)


def test_a_run_whose_engine_goes_away_fails_saying_so(
    docker_engine, workspace, monkeypatch, tmp_path
):
    # An engine of its own: this one is stopped under the run.
    monkeypatch.setattr(remote_docker, "ENGINE_GRACE", 2.0)
    engine = SecondEngine()
    try:
        engine.start()
        engine.load(BASE_IMAGE)
        workspace.computes.attach("doomed", docker=engine.host, shared_path=False)
        project = tmp_path / "project"
        project.mkdir()
        (project / "forever.py").write_text(
            "import time\nprint('up', flush=True)\ntime.sleep(600)\n"
        )
        env = Environment.from_text("base-env", f"FROM {BASE_IMAGE}\n")
        run = workspace.submit("forever.py", env.register(workspace), source_dir=project,
                               compute="doomed")  # fmt: skip
        _wait_for(lambda: "up" in run.logs(), "the run's output")
        assert engine._process is not None
        engine._process.terminate()  # the engine dies under the running run
        engine._process.wait(timeout=60)
        run.wait(timeout=120)
        assert run.status is Status.FAILED
        assert "the engine stopped answering" in (run.error or "")
        assert engine.host in (run.error or "")
    finally:
        engine.stop()


def test_the_magics_attach_build_and_submit_on_the_compute(
    shell, second_engine, workspace, tmp_path
):
    engine, second = second_engine
    compute = shell.run_line_magic(
        "compute", f"attach magic-box --docker {engine.host} --no-shared-path"
    )
    assert compute.kind == "docker" and compute.extra["shares_files"] is False
    env = shell.run_cell_magic(
        "environment", "magic-env --compute magic-box --quiet", _DOCKERFILE + "ENV VIA=magic\n"
    )
    assert second.images.get(env.image).id
    (tmp_path / "via.py").write_text("import os\nprint('via', os.environ['VIA'])\n")
    run = shell.run_line_magic("submit", f"via.py --env {env.ref} --compute magic-box --wait")
    assert run.status is Status.COMPLETED, run.error
    assert run.logs().strip() == "via magic"
    with pytest.raises(UsageError, match="No compute named 'nope'"):
        shell.run_line_magic("submit", f"via.py --env {env.ref} --compute nope")


def test_an_engine_of_this_machine_shares_its_files_and_gets_bind_mounts(
    second_engine, workspace, tmp_path
):
    engine, second = second_engine
    compute = workspace.computes.attach("here", docker=engine.host)
    assert compute.extra["shares_files"] is True
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(_TRAIN)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "x.txt").write_text("shared")
    env = Environment.from_text("remote-env", _DOCKERFILE).build(
        workspace, show_output=False, compute="here"
    )
    run = workspace.submit(
        "train.py", env, source_dir=project, compute="here", data={"input": str(tmp_path / "input")}
    )
    handle = _handle(workspace, run.id)
    _wait_for(lambda: "ready" in run.logs(), "the run's output")
    container = second.containers.get(handle)
    sources = {m["Source"] for m in container.attrs["Mounts"] if m["Type"] == "bind"}
    assert str(workspace.path("runs", run.id, "outputs")) in sources
    container.exec_run(["touch", "/tmp/go"])
    run.wait()
    assert run.status is Status.COMPLETED, run.error
    assert "data says shared" in run.logs()
    assert list(run.metrics["value"]) == [1.0, 0.5, pytest.approx(1 / 3)]


def test_this_machines_gpu_toolkit_says_nothing_of_a_remote_engine(
    second_engine, workspace, monkeypatch, tmp_path
):
    engine, _ = second_engine
    # The toolkit's command installed here; the second engine has no nvidia runtime.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-container-cli").write_text("#!/bin/sh\nexit 0\n")
    (tools / "nvidia-container-cli").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    workspace.computes.attach("no-gpu", docker=engine.host, shared_path=False)
    problem = workspace.target("docker@no-gpu").gpu_problem()
    assert problem and "NVIDIA Container Toolkit" in problem


def _tls_files(folder: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
            "-out", "ca.pem", "-days", "1", "-subj", "/CN=mlmagic-test-ca")  # fmt: skip
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
                "-out", f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        (folder / f"{name}.ext").write_text(
            f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"
        )
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "1",
                "-extfile", f"{name}.ext")  # fmt: skip


def test_a_tcp_engine_with_tls_builds_and_runs(docker_engine, workspace, tmp_path):
    if shutil.which("openssl") is None:
        _unavailable("no openssl to make the test's certificates")
    certs = tmp_path / "certs"
    certs.mkdir()
    _tls_files(certs)
    port = free_port()
    engine = SecondEngine(
        extra_args=("--host", f"tcp://127.0.0.1:{port}", "--tlsverify",
                    "--tlscacert", str(certs / "ca.pem"),
                    "--tlscert", str(certs / "server-cert.pem"),
                    "--tlskey", str(certs / "server-key.pem"))
    )  # fmt: skip
    try:
        engine.start()
        engine.load(BASE_IMAGE)
        tls = {
            "tls_ca": str(certs / "ca.pem"),
            "tls_cert": str(certs / "client-cert.pem"),
            "tls_key": str(certs / "client-key.pem"),
        }
        # Without the client certificate the engine refuses the connection.
        with pytest.raises(
            MlmagicError, match=f"No Docker engine answers at tcp://127.0.0.1:{port}"
        ):
            workspace.computes.attach("no-cert", docker=f"tcp://127.0.0.1:{port}",
                                      tls_ca=tls["tls_ca"])  # fmt: skip
        workspace.computes.attach("tls-box", docker=f"tcp://127.0.0.1:{port}", **tls)
        env = Environment.from_text("tls-env", f"FROM {BASE_IMAGE}\nRUN echo tls > /how.txt\n")
        env = env.build(workspace, show_output=False, compute="tls-box")  # the CLI, over TLS
        project = tmp_path / "project"
        project.mkdir()
        (project / "how.py").write_text("print(open('/how.txt').read())\n")
        run = workspace.submit("how.py", env, source_dir=project, compute="tls-box").wait()
        assert run.status is Status.COMPLETED, run.error
        assert run.logs().strip() == "tls"
    finally:
        engine.stop()
