"""Run containers on the real engine: the image's own user, the engine's log copy, what a
run records of the environment that ran, and removal that is finished when it returns."""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from mlmagic import BuildError, EngineError, Environment
from mlmagic.engine.base import ContainerSpec, PortBinding
from mlmagic.events import RunEventKind, Status
from tests.conftest import BASE_IMAGE

# A user's image that runs as its own non-root user, as many published images do.
_NON_ROOT = textwrap.dedent(
    f"""
    FROM {BASE_IMAGE}
    RUN useradd -m -u 4321 trainer
    USER trainer
    """
)

# An image whose python fails before the launcher can write a line to the run's log.
_BROKEN_PYTHON = textwrap.dedent(
    f"""
    FROM {BASE_IMAGE}
    RUN printf '#!/bin/sh\\necho "this python is broken on purpose" >&2\\nexit 3\\n' \\
        > /usr/local/bin/python && chmod +x /usr/local/bin/python
    """
)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def _container(workspace, run_id):
    """docker-py's view of a run's container (tests only; mlmagic uses the engine)."""
    handle = workspace.store.run(run_id).handle
    assert handle, "the run never started"
    return workspace.engine._client.api.inspect_container(handle)


@pytest.mark.skipif(os.getuid() != 0, reason="only as root does mlmagic keep the image's user")
def test_an_image_with_its_own_user_runs_and_keeps_that_user(workspace, project):
    env = Environment.from_text("own-user", _NON_ROOT).build(workspace, show_output=False)
    (project / "who.py").write_text(
        "import os, mlmagic_run as r\n"
        "print('uid', os.getuid())\n"
        "r.log('x', 1.0)\n"
        "(r.output_dir() / 'made.txt').write_text('by the image user')\n"
        "open('scratch.txt', 'w').write('in the working directory')\n"
    )
    run = workspace.submit("who.py", env, source_dir=project).wait(timeout=120)
    assert run.status is Status.COMPLETED, f"{run.error}: {run.logs()!r}"
    assert run.logs().split() == ["uid", "4321"]
    assert list(run.metrics["name"]) == ["x"]
    made = run.paths.outputs / "made.txt"
    assert made.read_text() == "by the image user" and made.stat().st_uid == 4321
    # What the run left stays removable by the Jupyter user.
    made.unlink()


def test_an_error_before_the_launcher_logs_anything_is_kept(workspace, project):
    env = Environment.from_text("broken-py", _BROKEN_PYTHON).build(workspace, show_output=False)
    (project / "train.py").write_text("print('never')\n")
    run = workspace.submit("train.py", env, source_dir=project).wait(timeout=120)
    assert run.status is Status.FAILED and run.exit_code == 3
    # One line that says why, with the container's own words, and the words kept.
    assert "\n" not in run.error and "this python is broken on purpose" in run.error
    assert "this python is broken on purpose" in run.logs()


def test_the_engine_keeps_no_second_full_copy_of_the_log(workspace, project):
    env = Environment.from_text("plain", "six\n").build(workspace, show_output=False)
    (project / "slow.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    run = workspace.submit("slow.py", env, source_dir=project)
    try:
        for event in run.events():
            if event.kind is RunEventKind.LOG:
                break
        log_config = _container(workspace, run.id)["HostConfig"]["LogConfig"]
    finally:
        run.cancel()
    assert log_config["Type"] == "local", log_config
    assert log_config["Config"] == {"max-size": "1m", "max-file": "1", "compress": "false"}
    assert run.wait(timeout=60).status is Status.CANCELED


def test_a_removed_run_container_is_gone_when_the_run_ends(workspace, project):
    env = Environment.from_text("plain", "six\n").build(workspace, show_output=False)
    (project / "quick.py").write_text("print('done')\n")
    runs = [workspace.submit("quick.py", env, source_dir=project) for _ in range(4)]
    for run in runs:
        assert run.wait(timeout=120).status is Status.COMPLETED
        handle = workspace.store.run(run.id).handle
        assert handle and workspace.engine.state(handle) is None


def test_a_run_records_the_environment_version_that_ran(workspace, project, config):
    env = Environment.from_text("lineage", "six\n").build(workspace, show_output=False)
    first = workspace.environments.get("lineage")
    assert first.version == 1 and first.status == "ready"
    # The default base changes to one that cannot be had: the new version fails.
    config.cpu_base_image = "mlmagic-test-no-such-base:never"
    with pytest.raises(BuildError, match="mlmagic-test-no-such-base"):
        Environment.from_text("lineage", "six\n").build(workspace, show_output=False)
    assert workspace.environments.get("lineage").status == "failed"
    # Back on the old base, a run by name picks the latest (failed) version at submit and
    # runs the old image: its record must name the version whose image ran.
    config.cpu_base_image = BASE_IMAGE
    (project / "train.py").write_text("print('ran')\n")
    run = workspace.submit("train.py", "lineage", source_dir=project).wait(timeout=120)
    assert run.status is Status.COMPLETED, run.error
    ran = run.environment
    assert ran.status == "ready" and ran.image == env.image == run.details["image"]
    assert run.details["environment"] == ran.ref
    model_file = run.paths.outputs / "m.txt"
    model_file.write_text("m")
    model = run.register_model("lineage-model", "outputs/m.txt")
    assert (model.env_name, model.env_version) == ("lineage", ran.version)


def test_a_run_container_starts_with_one_create_and_one_start(workspace, project, engine_calls):
    # Nothing is read back between making the container and starting it: each request
    # is time on the way to the script running.
    env = Environment.from_text("plain", "six\n").build(workspace, show_output=False)
    calls = engine_calls
    calls.clear()  # what the run asks of the engine, not what the build did
    (project / "quick.py").write_text("print('done')\n")
    run = workspace.submit("quick.py", env, source_dir=project).wait(timeout=120)
    assert run.status is Status.COMPLETED and run.logs() == "done\n", run.error
    made = [i for i, (method, path) in enumerate(calls) if path == "containers/create"]
    started = [i for i, (method, path) in enumerate(calls) if path.endswith("/start")]
    assert len(made) == 1 and len(started) == 1, calls
    between = calls[made[0] + 1 : started[0]]
    assert between == [], calls


def test_a_container_that_cannot_start_is_removed(workspace):
    # Its port is taken on the host: the engine makes the container, then cannot start
    # it. Nothing is left behind in the Created state.
    engine = workspace.engine
    tags = {"mlmagic.test": os.urandom(6).hex()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = ContainerSpec(
            image=BASE_IMAGE,
            command=["sleep", "30"],
            labels=tags,
            name=f"mlmagic-test-{tags['mlmagic.test']}",
            ports=[PortBinding(8000, port, "127.0.0.1")],
        )
        with pytest.raises(EngineError, match="Docker refused to start a container"):
            engine.start(spec)
    assert engine.find(tags) == []


def test_a_container_of_a_missing_image_is_refused_in_one_line(workspace):
    spec = ContainerSpec(image="mlmagic-test-no-such-image:never", command=["true"])
    with pytest.raises(EngineError) as info:
        workspace.engine.start(spec)
    assert str(info.value) == "The image mlmagic-test-no-such-image:never is not in the engine."


def test_a_run_s_end_is_heard_from_the_engine_not_found_by_polling(
    workspace, project, engine_calls
):
    # The driver waits on the engine (POST /containers/ID/wait, which answers when the
    # container stops) and looks at the state once per answer; a poll looked four times
    # a second and saw the end a quarter of a second late on average.
    env = Environment.from_text("plain", "six\n").build(workspace, show_output=False)
    calls = engine_calls
    calls.clear()  # what the run asks of the engine, not what the build did
    (project / "nap.py").write_text("import time\ntime.sleep(3)\nprint('woke')\n")
    run = workspace.submit("nap.py", env, source_dir=project).wait(timeout=120)
    assert run.status is Status.COMPLETED and run.logs() == "woke\n", run.error
    container = workspace.store.run(run.id).handle
    waits = [c for c in calls if c[1] == f"containers/{container}/wait"]
    looks = [c for c in calls if c[1] == f"containers/{container}/json"]
    assert waits and all(method == "POST" for method, _ in waits), calls
    assert len(looks) <= len(waits) + 2, (len(looks), len(waits))
