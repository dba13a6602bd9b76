"""The magics through a real InteractiveShell on the local target (no Docker engine)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mlmagic import Environment, Workspace
from mlmagic.config import MLMagic, set_config
from mlmagic.events import Status
from mlmagic.run.run import Run

# The shell puts its own module in sys.modules["__main__"]; multiprocessing's spawn (used
# by other tests) needs the interpreter's, so it is put back after each test.
_MAIN = sys.modules["__main__"]


@pytest.fixture
def local_shell(tmp_path, monkeypatch) -> Iterator[Any]:
    """A real shell with ``%load_ext mlmagic`` on a local-target workspace."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    monkeypatch.setenv("MLMAGIC_TARGET", "local")
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(tmp_path / ".mlmagic"))
    monkeypatch.chdir(tmp_path)
    Workspace._current.clear()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmagic")
    config = MLMagic()
    config.target = "local"
    set_config(config)
    yield shell
    shell.run_line_magic("reset", "-f")
    set_config(MLMagic())
    Workspace._current.clear()
    sys.modules["__main__"] = _MAIN


@pytest.fixture
def displays(local_shell, monkeypatch) -> dict[str, list[Any]]:
    """What the cells show: new displays (not updates of one), and the display hook's output."""
    shown: dict[str, list[Any]] = {"display": [], "result": []}

    def publish(data: dict[str, Any], *args: Any, update: bool = False, **kwargs: Any) -> None:
        if not update:
            shown["display"].append(data)

    monkeypatch.setattr(local_shell.display_pub, "publish", publish)
    hook = local_shell.displayhook
    monkeypatch.setattr(
        hook, "write_format_data", lambda data, *args, **kwargs: shown["result"].append(data)
    )
    return shown


def test_environment_cell_shows_its_widget_once_and_sets_underscore(local_shell, displays):
    result = local_shell.run_cell("%%environment shown-env\nsix\n")
    assert result.success, result.error_in_exec
    env = local_shell.user_ns["_"]
    assert isinstance(env, Environment) and env.ref == "shown-env:1" and env.status == "ready"
    assert result.result is env
    # The widget, and nothing under it: the returned object's own display is the widget.
    assert len(displays["display"]) == 1 and displays["result"] == []
    assert "shown-env" in displays["display"][0]["text/plain"]
    # In a later cell the object displays as usual.
    assert local_shell.run_cell("_").success
    assert len(displays["result"]) == 1
    assert "<Environment shown-env:1" in displays["result"][0]["text/plain"]
    assert repr(env).startswith("<Environment shown-env:1")


def test_submit_wait_shows_the_run_widget_once(local_shell, displays, tmp_path):
    (tmp_path / "hello.py").write_text("print('hello from the run')\n")
    assert local_shell.run_cell("%%environment run-env\nsix\n").success
    displays["display"].clear()
    result = local_shell.run_cell("%submit hello.py --env run-env --wait")
    assert result.success, result.error_in_exec
    run = local_shell.user_ns["_"]
    assert isinstance(run, Run) and run.status is Status.COMPLETED
    assert "hello from the run" in run.logs()
    assert len(displays["display"]) == 1 and displays["result"] == []
    assert repr(run).startswith(f"<Run {run.id} Completed")
    # Assignment needs no display and gets the same kind of object.
    assert local_shell.run_cell("again = %submit hello.py --env run-env --wait").success
    again = local_shell.user_ns["again"]
    assert isinstance(again, Run) and again.id != run.id and displays["result"] == []
    assert local_shell.run_cell("again").success
    assert f"<Run {again.id}" in displays["result"][0]["text/plain"]


def test_magic_errors_name_magics_not_the_api(local_shell, capsys):
    result = local_shell.run_cell("%runs nope_20240101-000000_abcdef")
    assert not result.success
    err = capsys.readouterr().err
    assert "No run nope_20240101-000000_abcdef" in err and "%runs lists the runs." in err
