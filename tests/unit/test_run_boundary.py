"""The run folder is a boundary: real runs on the local target, no Docker engine.

A script can write anything in its own run folder: links to host files, FIFOs, garbage in
the files mlmagic reads. Nothing it writes there may make mlmagic write or serve a host
file outside the run, or break the runs of the rest of the workspace.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlmagic import Environment, RunError, Workspace
from mlmagic.config import MLMagic
from mlmagic.events import RunEventKind, Status

SECRET = "a host file the run must not reach\n"

# Replaces the run's files with links to argv[1]: where the journal was (system/), the
# output log, and, on the local target, where the journal is now.
PLANT_LINKS = textwrap.dedent(
    """
    import os, pathlib, sys
    system = pathlib.Path(os.environ["MLMAGIC_METRICS_FILE"]).parent
    print("planting links", flush=True)
    for path in (system / "events.jsonl", system / "output.log", system.parent / "events.jsonl"):
        try:
            if os.path.lexists(path):
                path.unlink()
            path.symlink_to(sys.argv[1])
        except OSError as exc:
            print("cannot plant", path, exc, flush=True)
    print("planted", flush=True)
    """
)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture
def ws(tmp_path: Path, venvs: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(venvs))
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(tmp_path / ".mlmagic"))
    config = MLMagic()
    config.target = "local"
    workspace = Workspace(tmp_path / ".mlmagic", config=config)
    Workspace._current[workspace.root] = workspace
    Environment.from_text("six-env", "six\n").build(workspace, show_output=False)
    yield workspace
    Workspace._current.pop(workspace.root, None)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "host-secret.txt"
    path.write_text(SECRET)
    return path


def submit(ws: Workspace, project: Path, code: str, *args: str) -> object:
    (project / "script.py").write_text(textwrap.dedent(code))
    return ws.submit("script.py", "six-env", args=list(args), source_dir=project).wait(timeout=120)


def notes(run: object) -> list[str]:
    """mlmagic's own lines in the run's log stream."""
    return [
        e.build.message
        for e in run.events(live=False)  # type: ignore[attr-defined]
        if e.kind is RunEventKind.BUILD and e.build is not None
    ]


# --- links planted by the script --------------------------------------------------------


def test_links_in_the_run_folder_are_never_written_through_or_served(
    ws: Workspace, project: Path, secret: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = submit(ws, project, PLANT_LINKS, str(secret))
    assert run.status is Status.COMPLETED, run.error
    assert secret.read_text() == SECRET  # no event was appended through a link

    with pytest.raises(RunError, match="system/output.log .* is a symbolic link"):
        run.logs()
    events = list(run.events(live=False))
    assert events[-1].kind is RunEventKind.END and events[-1].status is Status.COMPLETED
    assert not any("host file the run" in (e.message or "") for e in events)

    from mlmagic.cli import main

    capsys.readouterr()
    assert main(["run", "logs", run.id]) == 1
    out, err = capsys.readouterr()
    assert "host file the run" not in out + err
    assert err.count("\n") == 1 and "is a symbolic link" in err

    # The journal the script replaced was made again, and says so; the refusal to read
    # the log is noted once however often it is read.
    said = notes(run)
    assert sum("journal had been replaced" in n for n in said) == 1
    assert sum("not reading system/output.log" in n for n in said) == 1
    assert secret.read_text() == SECRET


def test_a_fifo_in_place_of_the_log_is_refused_not_waited_on(ws: Workspace, project: Path) -> None:
    code = """
        import os, pathlib
        log = pathlib.Path(os.environ["MLMAGIC_METRICS_FILE"]).parent / "output.log"
        log.unlink()
        os.mkfifo(log)
    """
    run = submit(ws, project, code)
    assert run.status is Status.COMPLETED, run.error
    with pytest.raises(RunError, match="is a FIFO"):
        run.logs()


# --- garbage in the files mlmagic reads -------------------------------------------------

GOOD = '{"name": "acc", "step": 0, "value": 0.5, "time": 1700000000.0}'
BAD_METRIC_LINES = [
    "not json at all",
    "[1, 2, 3]",
    '"a string"',
    "null",
    '{"name": 7, "step": 0, "value": 1.0}',
    '{"name": "", "step": 0, "value": 1.0}',
    '{"name": "acc", "step": "0", "value": 1.0}',
    '{"name": "acc", "step": -1, "value": 1.0}',
    '{"name": "acc", "step": 99999999999999999999999, "value": 1.0}',
    '{"name": "acc", "step": 1.5, "value": 1.0}',
    '{"name": "acc", "step": 0, "value": "high"}',
    '{"name": "acc", "step": 0, "value": [1]}',
    '{"name": "acc", "step": 0, "value": 1' + "0" * 400 + "}",
    '{"name": "acc", "step": 0, "value": 1.0, "time": 1e300}',
    '{"name": "acc", "step": 0, "value": 1.0, "time": "yesterday"}',
    "[" * 100000 + "]" * 100000,
]


def test_garbage_metrics_and_params_break_neither_the_run_nor_the_workspace(
    ws: Workspace, project: Path
) -> None:
    good = submit(
        ws,
        project,
        """
        import mlmagic_run as run
        run.log_params(C=0.5)
        run.log("acc", 0.9)
        """,
    )
    lines = [GOOD, *BAD_METRIC_LINES]
    code = f"""
        import os
        with open(os.environ["MLMAGIC_METRICS_FILE"], "ab") as file:
            for line in {lines!r}:
                file.write(line.encode() + b"\\n")
            file.write(b"\\xff\\xfe\\x00 binary \\x80\\n")
        with open(os.environ["MLMAGIC_PARAMS_FILE"], "w") as file:
            file.write("[1, 2]")
        print("wrote garbage")
    """
    bad = submit(ws, project, code)  # waits: the stream skips what it cannot read
    assert bad.status is Status.COMPLETED, bad.error
    assert bad.params == {}
    metrics = bad.metrics
    assert list(metrics["name"]) == ["acc"] and list(metrics["value"]) == [0.5]

    listing = ws.runs.list().set_index("id")
    assert listing.loc[good.id, "param.C"] == 0.5 and listing.loc[good.id, "acc"] == 0.9
    assert listing.loc[bad.id, "acc"] == 0.5 and listing.loc[bad.id, "status"] == "Completed"

    for _ in range(3):  # every reader, again and again: the log says it once per file
        ws.runs.list()
        list(bad.events(live=False))
    said = notes(bad)
    assert sum("skipped lines of system/metrics.jsonl" in n for n in said) == 1
    assert sum("system/params.json cannot be read" in n for n in said) == 1
    assert notes(good) == [n for n in notes(good) if "cannot be read" not in n]


@pytest.mark.parametrize(
    "content",
    [b"[1, 2]", b'"text"', b"42", b"null", b"{not json", b"\xff\xfe\x00\x80", b"[" * 100000],
    ids=["list", "string", "number", "null", "not-json", "binary", "nested-deeply"],
)
def test_params_that_are_not_an_object_read_as_empty(
    ws: Workspace, project: Path, content: bytes
) -> None:
    run = submit(ws, project, "import mlmagic_run as run\nrun.log_params(C=1)\n")
    run.paths.params.write_bytes(content)
    assert run.params == {}
    assert "param.C" not in ws.runs.list().columns
    assert sum("params.json cannot be read" in n for n in notes(run)) == 1


# --- why a run failed -------------------------------------------------------------------


def test_a_failed_run_says_which_exception_ended_it(ws: Workspace, project: Path) -> None:
    code = """
        def train(C):
            raise ValueError(f"bad C: {C}")
        try:
            train(-1)
        except ValueError as exc:
            raise RuntimeError("training failed") from exc
    """
    run = submit(ws, project, code)
    assert run.status is Status.FAILED and run.exit_code == 1
    assert run.error == (
        "the script exited with code 1: RuntimeError: training failed (in Running)"
    )
    assert run.details["error"] == run.error
    events = list(run.events(live=False))
    assert events[-1].message == "the script exited with code 1: RuntimeError: training failed"


def test_the_log_keeps_at_most_run_log_max_bytes(ws: Workspace, project: Path) -> None:
    ws.config.run_log_max_bytes = 1000
    run = submit(ws, project, "for i in range(5000):\n    print('line', i)\nprint('end')\n")
    assert run.status is Status.COMPLETED, run.error
    log = run.logs()
    kept, _, rest = log.partition("[mlmagic_run] the log reached its limit of 1000 bytes")
    printed = "".join(f"line {i}\n" for i in range(5000)) + "end\n"
    body = kept if printed.startswith(kept) else kept[:-1]  # the note ends a cut line
    assert kept.startswith("line 0\n") and printed.startswith(body) and len(body) <= 1000
    assert "line 4999" not in log and "\nend\n" not in log
    dropped = printed.count("\n") - body.count("\n")
    assert f"{dropped} more lines ({len(printed) - len(body)} bytes)" in rest
    assert json.loads(run.paths.exit_file.read_text())["exit_code"] == 0


# --- runs made before the journal left system/ ------------------------------------------


def test_an_older_run_replays_its_journal_from_system_and_a_new_run_never_does(
    ws: Workspace, project: Path
) -> None:
    spoof = json.dumps({"kind": "end", "status": "Failed", "message": "spoofed by the script"})
    code = f"""
        import os, pathlib
        system = pathlib.Path(os.environ["MLMAGIC_METRICS_FILE"]).parent
        (system / "events.jsonl").write_text({spoof!r} + "\\n")
        print("done")
    """
    run = submit(ws, project, code)
    events = list(run.events(live=False))
    assert events[-1].status is Status.COMPLETED and "spoofed" not in (events[-1].message or "")

    # An older run: its journal is in system/, and it has none of its own.
    run.paths.legacy_events.unlink()
    run.paths.events.rename(run.paths.legacy_events)
    replayed = list(run.events(live=False))
    stages = [e.stage.value for e in replayed if e.kind is RunEventKind.STAGE]
    assert stages == ["Queued", "Preparing", "Starting", "Running", "Finalizing"]
    assert replayed[-1].kind is RunEventKind.END and replayed[-1].status is Status.COMPLETED
