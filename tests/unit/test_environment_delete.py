"""Deleting environment versions (``ws.environments.delete``) on the local target."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlmagic import Environment, MlmagicError, Workspace
from mlmagic.config import MLMagic


@pytest.fixture
def local_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    config = MLMagic()
    config.target = "local"
    return Workspace(tmp_path / ".mlmagic", config=config)


def test_a_venv_goes_with_the_last_version_made_of_it(local_ws):
    first = Environment.from_text("one", "six\n").build(local_ws, show_output=False)
    twin = Environment.from_text("twin", "six\n").build(local_ws, show_output=False)
    other = Environment.from_text("one", "six\npackaging\n").build(local_ws, show_output=False)
    assert first.venv == twin.venv != other.venv
    assert local_ws.environments.delete("one", 1) == ("one:1",)
    assert Path(first.venv).is_dir(), "twin:1 still uses the venv"
    assert list(local_ws.environments.list()["name"]) == ["one", "twin"]
    assert local_ws.environments.delete("twin") == ("twin:1",)
    assert not Path(first.venv).exists()
    assert local_ws.environments.delete("one") == ("one:2",)
    assert not Path(other.venv).exists() and local_ws.environments.list().empty
    with pytest.raises(MlmagicError, match="No environment one"):
        local_ws.environments.delete("one")
    with pytest.raises(MlmagicError, match="No environment twin:7"):
        local_ws.environments.delete("twin", 7)


def test_a_version_a_live_run_uses_is_kept(local_ws, tmp_path):
    env = Environment.from_text("busy", "six\n").build(local_ws, show_output=False)
    (tmp_path / "wait.py").write_text("import time\ntime.sleep(60)\n")
    run = local_ws.submit("wait.py", env, source_dir=tmp_path)
    try:
        with pytest.raises(MlmagicError, match=f"busy:1 is in use by {run.id}"):
            local_ws.environments.delete("busy")
        assert local_ws.environments.get("busy", 1).status == "ready"
    finally:
        run.cancel()
    run.wait(timeout=60)
    assert local_ws.environments.delete("busy") == ("busy:1",)
