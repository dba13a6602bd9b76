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
from mlmagic.hints import render


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


# -- register_model and downloads never follow a link -------------------------------------

_LINKS_INSIDE_TO_OUTSIDE = """
import os, mlmagic_run as r
out = r.output_dir()
os.makedirs(out / "model")
(out / "model" / "weights.txt").write_text("weights")
os.makedirs(out / "other")
os.symlink({secret!r}, out / "other" / "secret.txt")
# A link that stays inside the outputs, to a folder holding a link that leaves them.
os.symlink("../other", out / "model" / "more")
"""


def test_register_model_refuses_a_link_met_during_the_copy(ws, env, project, host_secret):
    script = _LINKS_INSIDE_TO_OUTSIDE.format(secret=str(host_secret))
    run = _submit(ws, env, project, "links.py", script).wait(timeout=120)
    assert run.status is Status.COMPLETED, run.logs()
    with pytest.raises(MlmagicError, match="link") as info:
        run.register_model("m", "outputs/model")
    assert "more" in _one_line(info)
    with pytest.raises(MlmagicError, match="link"):
        run.register_model("m", "outputs/other/secret.txt")
    assert ws.models.list().empty
    assert _nothing_holds(ws.root / "models", "host secret")
    # A path out of the outputs says where else to register from, in each front end's words.
    with pytest.raises(MlmagicError) as info:
        run.register_model("m", "../../elsewhere")
    assert "or use ws.models.register for any other path." in str(info.value)
    assert render(info.value, "cli").endswith("or leave out --run to register any other path.")
    # What holds no link registers.
    model = run.register_model("m", "outputs/model/weights.txt")
    assert model.version == 1 and model.path.read_text() == "weights"


def test_register_model_refuses_a_named_pipe(ws, env, project):
    script = (
        "import os, mlmagic_run as r\nout = r.output_dir()\nos.makedirs(out / 'model')\n"
        "(out / 'model' / 'a.txt').write_text('a')\nos.mkfifo(out / 'model' / 'pipe')\n"
    )
    run = _submit(ws, env, project, "fifo.py", script).wait(timeout=120)
    assert run.status is Status.COMPLETED, run.logs()
    with pytest.raises(MlmagicError, match="named pipe") as info:
        run.register_model("m", "outputs/model")
    assert "pipe" in _one_line(info)
    assert ws.models.list().empty
    assert not any(p.name.startswith(".staging") for p in (ws.root / "models").rglob("*"))


def test_register_model_refuses_a_run_still_running(ws, env, project):
    script = (
        "import time, mlmagic_run as r\n(r.output_dir() / 'model.txt').write_text('m')\n"
        "time.sleep(120)\n"
    )
    run = _submit(ws, env, project, "live.py", script)
    try:
        model_file = run.paths.outputs / "model.txt"
        for _ in range(1200):
            if model_file.exists() or run.status.is_terminal:
                break
            time.sleep(0.1)
        assert model_file.exists(), run.logs()
        with pytest.raises(MlmagicError, match=r"still Running.*wait.*cancel") as info:
            run.register_model("m", "outputs/model.txt")
        _one_line(info)
        assert ws.models.list().empty
    finally:
        run.cancel()
    run.wait(timeout=60)


def test_run_download_refuses_a_link_met_during_the_copy(ws, env, project, host_secret, tmp_path):
    script = _LINKS_INSIDE_TO_OUTSIDE.format(secret=str(host_secret))
    run = _submit(ws, env, project, "links.py", script).wait(timeout=120)
    dest = tmp_path / "download"
    dest.mkdir()
    with pytest.raises(MlmagicError, match="link") as info:
        run.download("outputs/model", dest)
    _one_line(info)
    assert _nothing_holds(dest, "host secret")
    assert run.download("outputs/model/weights.txt", dest).read_text() == "weights"


def test_models_register_and_download_copy_no_link(ws, tmp_path, host_secret):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "w.txt").write_text("w")
    os.symlink(host_secret, folder / "linked.txt")
    with pytest.raises(MlmagicError, match="link") as info:
        ws.models.register("w", folder)
    assert "linked.txt" in _one_line(info)
    (folder / "linked.txt").unlink()
    model = ws.models.register("w", folder)
    # A registry copy that something replaced with a link is not followed out either.
    stored = model.path / "w.txt"
    stored.unlink()
    os.symlink(host_secret, stored)
    dest = tmp_path / "out"
    with pytest.raises(MlmagicError, match="link"):
        model.download(dest)
    assert not dest.exists() or _nothing_holds(dest, "host secret")


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
