"""A local-target run answers for its whole process tree and sees its data read-only.

Real processes in a real virtual environment: the launcher is killed with SIGKILL, a
child leaves the session with ``setsid``, a script writes into its ``--data`` folder.
The tree is tracked by a cgroup where this machine allows one, else by the token every
process of the tree inherits; both ways are tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlmagic import Environment, Workspace
from mlmagic.config import MLMagic
from mlmagic.events import Status
from mlmagic.targets import cgroup, process


@pytest.fixture(params=["cgroup", "token"])
def tracking(request, monkeypatch):
    """How the tree is found: its own cgroup, or the environment token."""
    if request.param == "cgroup":
        if cgroup.own_cgroup() is None:
            pytest.skip("this machine gives this process no writable cgroup v2")
    else:
        monkeypatch.setattr(process, "new_cgroup", lambda name: None)
    return request.param


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
    return Environment.from_text("tree-env", "six\n").build(ws, show_output=False)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def _gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _wait_for(path: Path) -> str:
    for _ in range(1200):
        if path.is_file() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def _launcher(ws, run) -> int:
    handle = ws.store.run(run.id).handle
    assert handle and handle.startswith("local:")
    return int(handle.split(":")[1])


_OUTLIVES = """
import os, time, mlmagic_run as r
out = r.output_dir()
(out / "pid").write_text(str(os.getpid()))
while not os.path.exists({go!r}):
    time.sleep(0.05)
(out / "after.txt").write_text("written after the launcher died")
"""


def test_a_script_outliving_its_killed_launcher_keeps_the_run_running(
    ws, env, project, tmp_path, tracking
):
    go = tmp_path / "go"
    (project / "outlive.py").write_text(_OUTLIVES.format(go=str(go)))
    run = ws.submit("outlive.py", env, source_dir=project)
    script = int(_wait_for(run.paths.outputs / "pid"))
    os.kill(_launcher(ws, run), signal.SIGKILL)
    # Its launcher is gone, its script is not: the run is still running, seen by this
    # process's own follower and by a fresh look at the record.
    for _ in range(8):
        time.sleep(0.25)
        assert not _gone(script)
        assert ws.runs.get(run.id).status is Status.RUNNING
    go.write_text("")
    ended = run.wait(timeout=60)
    assert (run.paths.outputs / "after.txt").read_text() == "written after the launcher died"
    # The launcher could not write the exit code, so the run cannot claim success.
    assert ended.status is Status.FAILED and "without an exit code" in ended.error
    assert _gone(script)
    _nothing_left(ws, run, tracking)


def _nothing_left(ws, run, tracking: str) -> None:
    """The run was tracked the way asked, and its cgroup (if any) is removed."""
    tree = process.ProcessTree.parse(ws.store.run(run.id).handle)
    if tracking == "cgroup":
        assert tree.cgroup and not Path(tree.cgroup).exists()
    else:
        assert tree.token and not tree.cgroup


def test_cancel_stops_a_script_whose_launcher_was_killed(ws, env, project, tmp_path, tracking):
    (project / "outlive.py").write_text(_OUTLIVES.format(go=str(tmp_path / "never")))
    run = ws.submit("outlive.py", env, source_dir=project)
    script = int(_wait_for(run.paths.outputs / "pid"))
    os.kill(_launcher(ws, run), signal.SIGKILL)
    time.sleep(0.5)
    assert ws.runs.get(run.id).status is Status.RUNNING
    run.cancel()
    assert run.wait(timeout=60).status is Status.CANCELED
    assert _gone(script)
    _nothing_left(ws, run, tracking)


_ESCAPES = """
import subprocess, sys, time, mlmagic_run as r
out = r.output_dir()
subprocess.Popen([sys.executable, "-c",
    "import os, sys, time; os.setsid(); open(sys.argv[1], 'w').write(str(os.getpid()));"
    " time.sleep(600)", str(out / "child.pid")])
time.sleep(600)
"""


def test_cancel_stops_a_child_that_left_the_session(ws, env, project, tracking):
    (project / "escape.py").write_text(_ESCAPES)
    run = ws.submit("escape.py", env, source_dir=project)
    child = int(_wait_for(run.paths.outputs / "child.pid"))
    assert os.getsid(child) == child  # it did leave the launcher's session
    run.cancel()
    assert run.wait(timeout=60).status is Status.CANCELED
    for _ in range(100):
        if _gone(child):
            break
        time.sleep(0.1)
    assert _gone(child), "the child that called setsid outlived cancel()"


_WRITES_DATA = """
import errno, os
folder = os.environ["MLMAGIC_DATA_DATASET"]
for name in ("x.txt", "new.txt"):
    try:
        with open(os.path.join(folder, name), "w") as file:
            file.write("changed")
        print(name, "written")
    except OSError as exc:
        print(name, errno.errorcode[exc.errno])
"""


def test_a_local_run_sees_its_data_read_only(ws, env, project, tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "x.txt").write_text("the user's data")
    (project / "write.py").write_text(_WRITES_DATA)
    run = ws.submit("write.py", env, source_dir=project, data=[f"dataset={data}"])
    assert run.wait(timeout=120).status is Status.COMPLETED, run.error
    lines = run.logs().splitlines()
    assert [line.split()[0] for line in lines] == ["x.txt", "new.txt"], lines
    assert all(line.split()[1] in ("EROFS", "EACCES") for line in lines), lines
    assert (data / "x.txt").read_text() == "the user's data"
    assert sorted(p.name for p in data.iterdir()) == ["x.txt"]
    # Only the run's view is read-only: the user can still write there.
    (data / "x.txt").write_text("still the user's to change")


def test_a_handle_from_before_trees_names_its_process_alone():
    """Runs recorded before trees were tracked have ``local:<pid>:<start>`` handles."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tree = process.ProcessTree.parse(f"local:{sleeper.pid}:{process._start_time(sleeper.pid)}")
        assert (tree.token, tree.cgroup) == ("", "")
        assert tree.members() == [sleeper.pid] and process.process_alive(tree.handle)
        # A PID whose start time differs is another process that reused it.
        assert not process.process_alive(f"local:{sleeper.pid}:1")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not process.process_alive(f"local:{sleeper.pid}:{tree.start}")
