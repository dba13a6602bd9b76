"""Training runs on the real Docker engine: stages, logs, metrics, outputs, failures."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlmagic import Environment, RunError
from mlmagic.events import RunEventKind, Status

TRAIN = textwrap.dedent(
    """
    import argparse, json, sys
    import mlmagic_run as run

    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()
    run.log_params(C=args.C)
    for step in range(3):
        run.log("loss", 1.0 / (step + 1))
    run.log("accuracy", 0.9 + args.C / 100)
    print("training with C", args.C)
    print("to stderr", file=sys.stderr)
    (run.output_dir() / "model.json").write_text(json.dumps({"C": args.C}))
    """
)


@pytest.fixture
def workspace(target_workspace):
    """Every test here runs on both targets: containers and local processes."""
    return target_workspace


def _no_container_left(ws, run_id, target):
    handle = ws.store.run(run_id).handle
    assert handle, "the run never started"
    assert ws.target(target).state(handle) is None


@pytest.fixture
def env(workspace):
    """A small environment (six) in the workspace, built once per engine."""
    return Environment.from_text("run-env", "six\n").build(workspace, show_output=False)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN)
    return folder


def test_a_run_goes_through_its_stages_with_logs_metrics_params_and_outputs(
    workspace, env, project, target
):
    run = workspace.submit(
        "train.py", "run-env", args=["--C", "0.5"], source_dir=project, experiment="digits"
    )
    assert run.status in (Status.QUEUED, Status.PREPARING, Status.STARTING, Status.RUNNING)
    events = list(run.events())
    assert run.status is Status.COMPLETED and run.exit_code == 0
    stages = [e.stage.value for e in events if e.kind is RunEventKind.STAGE]
    assert stages == ["Queued", "Preparing", "Starting", "Running", "Finalizing"]
    assert events[-1].kind is RunEventKind.END and events[-1].status is Status.COMPLETED
    logs = [e.message for e in events if e.kind is RunEventKind.LOG]
    assert logs == ["training with C 0.5", "to stderr"]
    metrics = run.metrics
    assert list(metrics[metrics.name == "loss"]["step"]) == [0, 1, 2]
    assert run.params == {"C": 0.5}
    assert run.files() == ["outputs/model.json"]
    assert json.loads((run.paths.outputs / "model.json").read_text()) == {"C": 0.5}
    assert list(run.stages["stage"]) == stages
    assert run.details["environment"] == env.ref and run.environment.image == env.image
    assert run.details["snapshot_files"] == 1
    # The container is removed; the record, logs and outputs stay.
    _no_container_left(workspace, run.id, target)
    assert run.details["target"] == target
    listing = workspace.runs.list(experiment="digits")
    assert listing.loc[0, "accuracy"] == pytest.approx(0.905)
    assert listing.loc[0, "param.C"] == 0.5


def test_the_snapshot_fixes_the_code_at_submit_time(workspace, env, project):
    (project / "train.py").write_text("import time; time.sleep(1); print(open('v.txt').read())")
    (project / "v.txt").write_text("first")
    run = workspace.submit("train.py", env, source_dir=project)
    (project / "v.txt").write_text("second")
    run.wait()
    assert run.logs().strip() == "first"


EDITS_ITS_FOLDER = textwrap.dedent(
    """
    from pathlib import Path
    print(Path("data.txt").read_text())
    Path("train.py").write_text("print('rewritten')")
    Path("data.txt").write_text("changed")
    Path("gone.txt").unlink()
    Path("new.txt").write_text("new")
    print(sorted(p.name for p in Path(".").iterdir() if p.suffix == ".txt"))
    print(Path("train.py").read_text(), Path("data.txt").read_text())
    """
)


def test_the_script_works_in_a_copy_and_the_snapshot_stays_as_submitted(workspace, env, project):
    (project / "train.py").write_text(EDITS_ITS_FOLDER)
    (project / "data.txt").write_text("original")
    (project / "gone.txt").write_text("to be deleted")
    submitted = {path.name: path.read_bytes() for path in project.iterdir()}
    run = workspace.submit("train.py", env, source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.error
    # The script wrote its folder: a copy of the snapshot, removed when the run ended
    # (only outputs/ and logs/ are kept, as on Azure Machine Learning).
    assert run.logs().splitlines() == [
        "original",
        "['data.txt', 'new.txt']",
        "print('rewritten') changed",
    ]
    assert not run.paths.working.exists()
    # Every entry of the stored snapshot, byte for byte: nothing changed, added or removed.
    stored = run.paths.snapshot
    assert {
        path.relative_to(stored).as_posix(): None if path.is_dir() else path.read_bytes()
        for path in stored.rglob("*")
    } == submitted
    again = run.rerun().wait()
    assert again.status is Status.COMPLETED, again.error
    assert again.logs().splitlines()[0] == "original"


def test_failure_records_exit_code_and_the_traceback(workspace, env, project):
    (project / "bad.py").write_text("print('before')\nraise ValueError('boom')\n")
    run = workspace.submit("bad.py", env, source_dir=project).wait()
    assert run.status is Status.FAILED and run.exit_code == 1
    assert run.error == "the script exited with code 1: ValueError: boom (in Running)"
    assert run.details["error"] == run.error
    assert "ValueError: boom" in run.logs()


def test_links_in_the_run_folder_never_reach_host_files(workspace, env, project, tmp_path):
    from mlmagic.cli import main
    from tests.unit.test_run_boundary import PLANT_LINKS, SECRET

    secret = tmp_path / "host-secret.txt"
    secret.write_text(SECRET)
    (project / "plant.py").write_text(PLANT_LINKS)
    run = workspace.submit("plant.py", env, args=[str(secret)], source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.error
    assert secret.read_text() == SECRET
    with pytest.raises(RunError, match="is a symbolic link"):
        run.logs()
    assert main(["run", "logs", run.id]) == 1
    events = list(run.events(live=False))
    assert events[-1].kind is RunEventKind.END and events[-1].status is Status.COMPLETED
    assert not any("host file the run" in (e.message or "") for e in events)
    assert secret.read_text() == SECRET


def test_the_log_stops_at_run_log_max_bytes(workspace, env, project):
    workspace.config.run_log_max_bytes = 1000
    (project / "loud.py").write_text("for i in range(5000):\n    print('line', i)\n")
    run = workspace.submit("loud.py", env, source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.error
    log = run.logs()
    kept, note, rest = log.partition("[mlmagic_run] the log reached its limit of 1000 bytes")
    assert note and kept.startswith("line 0\n") and len(kept) <= 1001
    assert "line 4999" not in log and "more lines" in rest and "were not kept" in rest


def test_garbage_in_params_and_metrics_breaks_no_listing(workspace, env, project):
    good = workspace.submit("train.py", env, source_dir=project).wait()
    (project / "garbage.py").write_text(
        textwrap.dedent(
            """
            import os
            with open(os.environ["MLMAGIC_METRICS_FILE"], "ab") as file:
                file.write(b'[1]\\n{"name": 1}\\n\\xff\\xfe\\n')
                file.write(b'{"name": "acc", "step": 0, "value": 0.25}\\n')
            with open(os.environ["MLMAGIC_PARAMS_FILE"], "w") as file:
                file.write("[1, 2]")
            """
        )
    )
    bad = workspace.submit("garbage.py", env, source_dir=project).wait()
    assert bad.status is Status.COMPLETED, bad.error
    assert bad.params == {} and list(bad.metrics["value"]) == [0.25]
    listing = workspace.runs.list().set_index("id")
    assert listing.loc[good.id, "param.C"] == 1.0 and listing.loc[bad.id, "acc"] == 0.25


def test_cell_script_and_data_mounts(workspace, env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("42")
    code = (
        "import os\n"
        "p = os.environ['MLMAGIC_DATA_TRAINING_SET']\n"
        "print(open(os.path.join(p, 'x.txt')).read())\n"
        "try:\n    open(os.path.join(p, 'new'), 'w')\nexcept OSError:\n    print('read-only')\n"
    )
    run = workspace.submit(
        None,
        env,
        script_text=code,
        source_dir=tmp_path / "data",
        data=["training-set=" + str(data)],
    ).wait()
    assert run.status is Status.COMPLETED, run.logs()
    # Read-only on both targets: a container's mount, a local process's own mount view.
    assert run.logs().split() == ["42", "read-only"]


def test_200000_lines_all_reach_the_log_file(workspace, env, project):
    (project / "loud.py").write_text("for i in range(200000):\n    print('line', i)\n")
    run = workspace.submit("loud.py", env, source_dir=project)
    count = sum(1 for e in run.events() if e.kind is RunEventKind.LOG)
    lines = run.logs().splitlines()
    assert run.status is Status.COMPLETED
    assert len(lines) == 200000 and lines[0] == "line 0" and lines[-1] == "line 199999"
    assert count == 200000


def test_cancel_while_running_and_while_preparing(workspace, env, project):
    (project / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    run = workspace.submit("slow.py", env, source_dir=project)
    for event in run.events():
        if event.kind is RunEventKind.LOG:
            break
    run.cancel()
    assert run.wait(timeout=60).status is Status.CANCELED
    assert "started" in run.logs()

    Environment.from_text("slow-env", "six\ntomli\n").register(workspace)
    workspace.engine.remove_image(workspace.environments.get("slow-env").image)
    preparing = workspace.submit("slow.py", "slow-env", source_dir=project)
    for event in preparing.events():
        if event.kind is RunEventKind.BUILD:
            break
    preparing.cancel()
    assert preparing.wait(timeout=120).status is Status.CANCELED
    assert preparing.details["stages"].keys() <= {"Queued", "Preparing", "Finalizing"}


def test_timeout_fails_the_run(workspace, env, project):
    (project / "slow.py").write_text("import time\ntime.sleep(300)\n")
    run = workspace.submit("slow.py", env, source_dir=project, timeout=2).wait(timeout=60)
    assert run.status is Status.FAILED and "timed out after 2 s" in run.error


def test_killed_for_memory_says_so(workspace, env, project, target):
    if target == "local":
        pytest.skip("--memory is not enforced on the local target (it says so in the log)")
    (project / "hog.py").write_text(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n"
    )
    run = workspace.submit("hog.py", env, source_dir=project, memory="64m").wait(timeout=120)
    assert run.status is Status.FAILED and run.exit_code == 137
    assert "killed for memory" in run.error and "OOMKilled" in run.error


def test_gpu_request_fails_fast_without_gpus_and_auto_falls_back(workspace, env, project, target):
    problem = workspace.target(target).gpu_problem()
    if problem is None:
        pytest.skip("this machine can give GPUs")
    run = workspace.submit("train.py", env, source_dir=project, gpus="all").wait(timeout=60)
    assert run.status is Status.FAILED and problem.split(":")[0] in run.error
    assert "Preparing" in run.error
    auto = workspace.submit("train.py", env, source_dir=project, gpus="auto").wait(timeout=60)
    assert auto.status is Status.COMPLETED
    notes = [e.build.message for e in auto.events(live=False) if e.kind is RunEventKind.BUILD]
    assert any("running on the CPU" in n for n in notes)


def test_bad_input_is_refused_before_anything_is_recorded(workspace, env, project):
    with pytest.raises(RunError, match="No script missing.py"):
        workspace.submit("missing.py", env, source_dir=project)
    with pytest.raises(Exception, match="No environment nope"):
        workspace.submit("train.py", "nope", source_dir=project)
    with pytest.raises(RunError, match="does not exist"):
        workspace.submit("train.py", env, source_dir=project, data=["x=/no/such/folder"])
    with pytest.raises(RunError, match="--gpus"):
        workspace.submit("train.py", env, source_dir=project, gpus="lots")
    with pytest.raises(RunError, match="--memory"):
        workspace.submit("train.py", env, source_dir=project, memory="a lot")
    (project / ".gitignore").write_text("train.py\n")
    with pytest.raises(RunError, match="left out of the run's copy .* by .gitignore"):
        workspace.submit("train.py", env, source_dir=project)
    assert workspace.store.runs() == []
    assert not (workspace.root / "runs").exists() or not any((workspace.root / "runs").iterdir())


_SUBMIT_AND_DIE = """
import os, sys, time
from mlmagic import Workspace
ws = Workspace(sys.argv[1])
run = ws.submit("slow.py", "run-env", source_dir=sys.argv[2])
while run.status.value in ("Queued", "Preparing", "Starting"):  # a starved process may look late
    time.sleep(0.1)
print(run.id, flush=True)
os._exit(9)  # the kernel dies without any cleanup
"""


def test_a_run_outlives_its_kernel_and_is_reattached(workspace, env, project, target):
    (project / "slow.py").write_text(
        "import time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", _SUBMIT_AND_DIE, str(workspace.root), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert child.returncode == 9, child.stderr
    run_id = child.stdout.strip()
    run = workspace.runs.get(run_id)
    assert run.status in (Status.RUNNING, Status.FINALIZING, Status.COMPLETED)
    events = list(run.events())
    assert run.status is Status.COMPLETED
    assert [e.message for e in events if e.kind is RunEventKind.LOG] == [
        f"tick {i}" for i in range(6)
    ]
    _no_container_left(workspace, run_id, target)


def _submit_in_process(root: str, project: str, index: int) -> None:
    from mlmagic import Workspace

    ws = Workspace(root)
    run = ws.submit("train.py", "run-env", args=["--C", str(index)], source_dir=project)
    assert run.wait(timeout=120).status.value == "Completed"


def test_two_kernels_submit_at_once(workspace, env, project):
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_submit_in_process, args=(str(workspace.root), str(project), i))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
        assert worker.exitcode == 0
    frame = workspace.runs.list()
    assert sorted(frame["param.C"]) == [0.0, 1.0]
    assert set(frame["status"]) == {"Completed"}


def test_the_cli_submits_lists_follows_and_cancels(workspace, env, project, capsys):
    from mlmagic.cli import main

    os.chdir(project)
    code = main(["run", "submit", "train.py", "--env", "run-env", "--wait", "--", "--C", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "==> Running" in out and "training with C 2.0" in out and "==> Completed" in out
    run_id = out.splitlines()[0]
    assert main(["run", "list"]) == 0 and run_id in capsys.readouterr().out
    assert main(["run", "logs", run_id]) == 0
    assert "training with C 2.0" in capsys.readouterr().out
    assert main(["run", "logs", "nope"]) == 1
    assert "No run nope" in capsys.readouterr().err


def test_run_files_download_refuses_paths_outside(workspace, env, project, tmp_path):
    run = workspace.submit("train.py", env, source_dir=project).wait()
    target = run.download("outputs/model.json", tmp_path)
    assert Path(target).read_text() == '{"C": 1.0}'
    with pytest.raises(Exception, match="not in the run's outputs"):
        run.download("../../mlmagic.db", tmp_path)
    with pytest.raises(Exception, match="not in the run's outputs"):
        run.download("snapshot/train.py", tmp_path)


def test_stage_times_are_stored(workspace, env, project):
    run = workspace.submit("train.py", env, source_dir=project).wait()
    stages = run.stages
    assert stages["duration"].notna().all()
    assert (stages["started"].diff().dropna() >= pd_zero()).all()


def pd_zero():
    import pandas as pd

    return pd.Timedelta(0)


def test_magics_submit_and_runs(shell, workspace, env, project):
    os.chdir(project)
    run = shell.run_line_magic("submit", "train.py --env run-env --wait --experiment m -- --C 3")
    assert run.status is Status.COMPLETED and run.params == {"C": 3.0}
    cell = "import mlmagic_run as run\nrun.log('acc', 1.0)\nprint('from a cell')\n"
    cell_run = shell.run_cell_magic("submit", "--env run-env --wait", cell)
    assert "from a cell" in cell_run.logs() and list(cell_run.metrics["name"]) == ["acc"]
    frame = shell.run_line_magic("runs", "--experiment m")
    assert list(frame["id"]) == [run.id]
    again = shell.run_line_magic("runs", run.id)
    assert again.id == run.id
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="No script nope.py"):
        shell.run_line_magic("submit", "nope.py --env run-env")
    (project / "bad.py").write_text("raise SystemExit(4)\n")
    with pytest.raises(UsageError, match="exited with code 4"):
        shell.run_line_magic("submit", "bad.py --env run-env --wait")
    # Without --wait the magic returns the run at once, while it is still live.
    live = shell.run_line_magic("submit", "train.py --env run-env")
    assert not live.status.is_terminal
    assert live.wait(timeout=120).status is Status.COMPLETED
