"""The ``mlmagic`` command on the local target (no Docker engine), driven as a subprocess."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from mlmagic import Workspace
from mlmagic.cli import build_parser
from mlmagic.cli.output import Column, Output, human_size, relative_time
from mlmagic.cli.progress import BuildProgress, RunProgress
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Stage, Status
from tests import cli_driver
from tests.cli_driver import Cli


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The command in a project folder, on a fresh local-target workspace."""
    project = cli_driver.make_project(tmp_path / "project")
    return Cli(
        project,
        tmp_path / ".mlmagic",
        {
            "MLMAGIC_TARGET": "local",
            "MLMAGIC_VENV_DIR": str(tmp_path / "venvs"),
            "DOCKER_HOST": "unix:///nonexistent/mlmagic-test.sock",
        },
    )


def test_every_command_against_the_api(cli: Cli, tmp_path: Path) -> None:
    ws = Workspace(cli.root)
    try:
        cli_driver.check_environments(cli, ws)
        run_id = cli_driver.check_runs(cli, ws)
        cli_driver.check_models(cli, ws, run_id)
        cli_driver.check_services(cli, ws)
        cli_driver.check_completion(cli, ws, run_id, tmp_path)
    finally:
        # A failed check must not leave a server process behind.
        for name in ws.services.list()["name"]:
            ws.services.get(name).delete()


def test_version_help_and_usage_errors(cli: Cli) -> None:
    from mlmagic import __version__

    assert cli("--version").stdout.strip() == f"mlmagic {__version__}"
    helped = cli("--help").stdout
    assert "exit codes:" in helped and "2    usage error" in helped
    assert "mlmagic run submit train.py" in helped
    parser = build_parser()
    nouns = next(a for a in parser._actions if a.dest == "group").choices
    commands = [
        (noun, command)
        for noun, sub in nouns.items()
        if noun != "completion"
        for command in next(a for a in sub._actions if a.dest == "command").choices
    ]
    # env: 5, + scaffold, download and register (Azure ML's environment folders)
    assert len(commands) == 8 + 7 + 5 + 7 + 6
    for noun, command in commands:
        text = cli(noun, command, "--help").stdout
        assert f"usage: mlmagic {noun} {command}" in text and "examples:\n  mlmagic" in text
    wrong = cli("run", "list", "--status", "broken", code=2)
    assert "invalid choice: 'Broken'" in wrong.stderr
    assert "required: --env" in cli("run", "submit", "train.py", code=2).stderr
    assert cli("frobnicate", code=2).stdout == ""
    assert cli("env", "list", "--json", "--quiet", code=2).stderr


def test_completion_scripts(cli: Cli) -> None:
    bash = cli("completion", "bash").stdout
    assert "complete " in bash and "mlmagic" in bash and "_ARGCOMPLETE" in bash
    assert cli("completion", "zsh").stdout.startswith("#compdef mlmagic")
    cli("completion", "fish", code=2)


def test_empty_listings_say_how_to_begin(cli: Cli) -> None:
    for noun in ("env", "run", "model", "service"):
        listed = cli(noun, "list")
        assert listed.stdout == "" and f"mlmagic {noun}" in listed.stderr
        assert cli.json(noun, "list") == []


# --- how things are printed ---------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_colour_only_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"name": "a", "status": "Failed"}, {"name": "b", "status": "Completed"}]
    columns = (Column("NAME", "name"), Column("STATUS", "status", styled=True))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    piped = io.StringIO()
    Output(stream=piped).rows(rows, columns, id_key="name", empty="")
    assert piped.getvalue() == "NAME  STATUS\na     Failed\nb     Completed\n"
    terminal = _Terminal()
    Output(stream=terminal).rows(rows, columns, id_key="name", empty="")
    assert "\x1b[31mFailed" in terminal.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    Output(stream=plain).rows(rows, columns, id_key="name", empty="")
    assert "Failed" in plain.getvalue() and "\x1b[31m" not in plain.getvalue()


def test_a_wide_table_is_cut_to_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    rows = [{"id": "run_1", "where": "x" * 60, "size": 1, "extra": "y" * 30}]
    columns = (
        Column("ID", "id"),
        Column("WHERE", "where", flexible=True),
        Column("SIZE", "size"),
        Column("EXTRA", "extra"),
    )
    terminal = _Terminal()
    Output(stream=terminal).rows(rows, columns, id_key="id", empty="")
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in terminal.getvalue().splitlines()]
    assert all(len(line) <= 40 for line in lines), lines
    assert "run_1" in lines[1] and "…" in lines[1] and "EXTRA" not in lines[0]
    piped = io.StringIO()
    Output(stream=piped).rows(rows, columns, id_key="id", empty="")
    assert "x" * 60 in piped.getvalue() and "y" * 30 in piped.getvalue()


def test_relative_times_and_human_sizes() -> None:
    now = time.time()
    assert relative_time(now - 2, now) == "just now"
    assert relative_time(now - 180, now) == "3 min ago"
    assert relative_time(now - 3 * 3600, now) == "3 h ago"
    assert relative_time(now - 86400 - 5, now) == "yesterday"
    assert relative_time(None) == ""
    assert [human_size(s) for s in (950, 12_300, 350e6, 1.2e9)] == [
        "950 B",
        "12 kB",
        "350 MB",
        "1.2 GB",
    ]


def test_run_progress_draws_stages_metrics_and_log_on_a_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    with RunProgress("r1", console) as progress:
        progress.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING))
        progress.handle(RunEvent(RunEventKind.LOG, message="epoch 1 of 3"))
        progress.handle(RunEvent(RunEventKind.METRIC, name="loss", value=0.25, step=1))
        progress.handle(RunEvent(RunEventKind.END, status=Status.FAILED, exit_code=2))
    drawn = screen.getvalue()
    assert "run r1" in drawn and "Running" in drawn and "loss=0.25" in drawn
    assert "epoch 1 of 3" in drawn and "==> Failed, exit code 2" in drawn


def test_a_failed_build_keeps_its_log_tail_on_the_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    with pytest.raises(RuntimeError), BuildProgress("env", console) as progress:
        progress.handle(BuildEvent(BuildEventKind.STEP, step="install the Python packages"))
        progress.handle(BuildEvent(BuildEventKind.LOG, message="No matching distribution"))
        raise RuntimeError("the build failed")
    last_frame = screen.getvalue().rsplit("failed env", 1)
    assert len(last_frame) == 2 and "No matching distribution" in last_frame[1]


def test_build_progress_prints_plain_lines_when_piped() -> None:
    piped = io.StringIO()
    console = Console(file=piped)
    with BuildProgress("env", console) as progress:
        progress.handle(BuildEvent(BuildEventKind.STEP, step="install the Python packages"))
        progress.handle(BuildEvent(BuildEventKind.LOG, message="Installed 1 package"))
        progress.handle(BuildEvent(BuildEventKind.DONE, image="img:1", duration=1.5))
    assert piped.getvalue() == (
        "==> install the Python packages\n    Installed 1 package\n==> img:1 (built in 1.50s)\n"
    )
