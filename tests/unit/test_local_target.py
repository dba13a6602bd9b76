"""The local target without any Docker engine: target choice, venvs, refusals."""

from __future__ import annotations

import re

import pytest

from mlmagic import BuildError, Environment, SpecError, Workspace
from mlmagic.config import MLMagic


@pytest.fixture
def local_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    monkeypatch.delenv("MLMAGIC_TARGET", raising=False)
    config = MLMagic()
    config.target = "auto"
    return Workspace(tmp_path / ".mlmagic", config=config)


def test_auto_falls_back_to_local_once_with_a_notice(local_ws, capsys):
    assert local_ws.resolve_target() == "local"
    assert local_ws.resolve_target() == "local"
    notice = capsys.readouterr().err
    assert notice.count("no Docker engine answers") == 1 and "MLMagic.target" in notice
    assert local_ws.resolve_target("local") == "local"
    with pytest.raises(Exception, match="Unknown target"):
        local_ws.resolve_target("kubernetes")


def test_a_venv_is_built_once_then_a_cache_hit(local_ws):
    env = Environment.from_text("loc", "six\n").build(local_ws, show_output=False)
    assert env.status == "ready" and env.venv and env.cache_hit is False
    assert any(p.startswith("six==") for p in env.packages)
    again = Environment.from_text("loc", "six  # same\n").build(local_ws, show_output=False)
    assert again.cache_hit is True and again.venv == env.venv and again.version == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM debian:bookworm\nRUN true\n", "A Dockerfile environment needs a Docker engine"),
        ("apt: [jq]\npip: [six]\n", "system packages (apt: jq) need a Docker engine"),
        ("pip: [six]\ndockerfile_steps: ['RUN true']\n", "dockerfile_steps need a Docker"),
    ],
)
def test_what_only_docker_can_make_is_refused_in_one_line(local_ws, text, message):
    with pytest.raises(SpecError, match=re.escape(message)) as info:
        Environment.from_text("x", text).build(local_ws, show_output=False)
    assert "\n" not in str(info.value)


def test_a_python_uv_cannot_find_is_a_clear_error(local_ws, monkeypatch):
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    with pytest.raises(BuildError, match="No Python 3.4 could be found"):
        Environment.from_text("old", "six\n", python="3.4").build(local_ws, show_output=False)
    assert local_ws.environments.get("old").status == "failed"


def test_docker_target_without_an_engine_is_one_actionable_line(local_ws, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from mlmagic import EngineError

    local_ws.config.target = "docker"
    with pytest.raises(EngineError, match="No Docker engine answers at unix:///nonexistent"):
        Environment.from_text("d", "six\n").build(local_ws, show_output=False)
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(local_ws.root))
    Workspace._current[local_ws.root] = local_ws
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmagic")
    try:
        with pytest.raises(UsageError, match="Start Docker") as info:
            shell.run_cell_magic("environment", "d --target docker --quiet", "six\n")
        assert "\n" not in str(info.value)
    finally:
        Workspace._current.pop(local_ws.root, None)
