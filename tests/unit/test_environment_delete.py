"""Deleting environment versions (``ws.environments.delete``) on the local target."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlmagic import Environment, MlmagicError


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


def test_a_ready_version_stays_ready_while_a_run_prepares_it(local_ws, tmp_path, monkeypatch):
    # The local target finds a venv only under the build's lock, so every run of a ready
    # version goes through the build (a cache hit): it must not show as building then.
    env = Environment.from_text("steady", "six\n").build(local_ws, show_output=False)
    store = local_ws.store
    update = store.update_environment
    statuses: list[object] = []

    def recorded(name, version, **values):
        statuses.append(values.get("status", "unchanged"))
        update(name, version, **values)

    monkeypatch.setattr(store, "update_environment", recorded)
    (tmp_path / "hi.py").write_text("print('hi')\n")
    run = local_ws.submit("hi.py", env, source_dir=tmp_path).wait(timeout=120)
    assert run.status.value == "Completed", run.error
    assert statuses and "building" not in statuses, statuses
    assert local_ws.environments.get("steady", 1).status == "ready"
