"""Re-running a run on the local target: the code that ran, with the run's options."""

from __future__ import annotations

import pytest

from mlmagic import Environment, NotFoundError, RunError
from mlmagic.events import Status


@pytest.fixture
def env(local_ws):
    return Environment.from_text("rerun-env", "six\n").build(local_ws, show_output=False)


def _one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_a_rerun_runs_the_snapshot_with_the_runs_options(local_ws, env, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    script = project / "train.py"
    script.write_text("import sys\nprint('version one', sys.argv[1:])\n")
    first = local_ws.submit(
        "train.py",
        env,
        source_dir=project,
        args=["--lr", "0.5"],
        experiment="again",
        tags={"team": "vision"},
    ).wait()
    assert first.status is Status.COMPLETED
    # The folder changes after the run: a re-run still runs the code that ran.
    script.write_text("print('version two')\n")

    second = local_ws.runs.rerun(first.id).wait()
    assert second.id != first.id and second.status is Status.COMPLETED
    assert "version one ['--lr', '0.5']" in second.logs()
    assert "version two" not in second.logs()
    config = second.record.config
    assert (config.experiment, dict(config.tags), config.args) == (
        "again",
        {"team": "vision"},
        ("--lr", "0.5"),
    )
    assert second.record.environment == f"rerun-env:{env.version}"

    third = second.rerun(args=["--lr", "0.1"], tags={"team": "nlp"}).wait()
    assert "version one ['--lr', '0.1']" in third.logs()
    assert dict(third.record.config.tags) == {"team": "nlp"}
    assert third.record.config.experiment == "again"


def test_a_rerun_refuses_an_unknown_run_and_a_change_of_code(local_ws, env, tmp_path):
    with pytest.raises(NotFoundError) as missing:
        local_ws.runs.rerun("default_20240101-120000_abcdef")
    assert "No run default_20240101-120000_abcdef" in _one_line(missing)

    (tmp_path / "t.py").write_text("print('hi')\n")
    run = local_ws.submit("t.py", env, source_dir=tmp_path).wait()
    with pytest.raises(RunError) as code:
        run.rerun(source_dir=tmp_path)
    assert "cannot change source_dir" in _one_line(code)
