"""Real runs on the local target (no Docker engine): waiting, registering, bad input.

Each run is a real process in a real virtual environment; what a script leaves in its
outputs (links out of them, named pipes) is made by the script itself, so these tests
reproduce without any race what a hostile or unlucky script can do.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from mlmagic import Environment, MlmagicError, RunError, Workspace
from mlmagic.config import MLMagic
from mlmagic.events import Status


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    monkeypatch.chdir(tmp_path)
    config = MLMagic()
    config.target = "local"
    return Workspace(tmp_path / ".mlmagic", config=config)


@pytest.fixture
def env(ws):
    return Environment.from_text("local-env", "six\n").build(ws, show_output=False)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def host_secret(tmp_path):
    """A host file outside every run folder, which no copy may ever pick up."""
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret\n")
    return secret


def _submit(ws, env, project, name, text, **options):
    (project / name).write_text(text)
    return ws.submit(name, env, source_dir=project, **options)


def _nothing_holds(root: Path, text: str) -> bool:
    return not any(
        p.is_file() and not p.is_symlink() and text in p.read_text(errors="replace")
        for p in root.rglob("*")
    )


def _one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(info.value)
    assert message and "\n" not in message
    return message


# -- wait --------------------------------------------------------------------------------


def test_wait_gives_up_at_its_deadline_on_a_silent_script(ws, env, project):
    run = _submit(ws, env, project, "silent.py", "import time\ntime.sleep(120)\n")
    try:
        with pytest.raises(RunError) as info:
            run.wait(timeout=1)
        message = _one_line(info)
        # It gave up while the script still slept, and says what the run was then.
        assert not run.status.is_terminal
        assert f"Run {run.id} is still " in message and " after 1 s" in message
        stated = message.split(" is still ")[1].split(" after ")[0]
        assert not Status(stated).is_terminal
        with pytest.raises(RunError, match="timeout") as bad:
            run.wait(timeout=math.nan)
        _one_line(bad)
    finally:
        run.cancel()
    assert run.wait(timeout=60).status is Status.CANCELED


def test_wait_returns_the_ended_run_before_its_deadline(ws, env, project):
    run = _submit(ws, env, project, "quick.py", "print('done')\n")
    assert run.wait(timeout=120).status is Status.COMPLETED
    assert run.wait(timeout=0.001).status is Status.COMPLETED


# -- submit refuses bad input in one line, before anything is recorded ---------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"experiment": "exp\n"}, "Experiment name"),
        ({"experiment": "expérience"}, "Experiment name"),
        ({"experiment": "x" * 250}, "Experiment name"),
        ({"experiment": "-x"}, "Experiment name"),
        ({"timeout": math.nan}, "--timeout"),
        ({"timeout": math.inf}, "--timeout"),
        ({"timeout": -1}, "--timeout"),
        ({"cpus": math.nan}, "--cpus"),
        ({"memory": "0"}, "--memory"),
        ({"memory": "0.0g"}, "--memory"),
        ({"shm_size": "0m"}, "--shm-size"),
        ({"data": ["train="]}, "--data train="),
        ({"data": {"train": ""}}, "--data train="),
        ({"data": ["train=/no/such/folder"]}, "does not exist"),
        ({"data": {"train\n": "."}}, "Data name"),
    ],
)
def test_submit_refuses_bad_input_in_one_line(ws, env, project, options, message):
    (project / "train.py").write_text("print('trained')\n")
    with pytest.raises(RunError, match=message) as info:
        ws.submit("train.py", env, source_dir=project, **options)
    _one_line(info)
    assert ws.store.runs() == []
    runs = ws.root / "runs"
    assert not runs.exists() or not any(runs.iterdir())
