"""Notebooks as runs, without a run: parameters, their injection, and the bad input
refused at submit (one line each, nothing recorded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

import mlmagic_notebook
from mlmagic import RunError
from mlmagic.magics import MLMagics  # noqa: F401  (the magic's options import cleanly)
from mlmagic.options import SUBMIT, add_options, api_keywords
from mlmagic.run.config import RunConfig
from mlmagic.run.notebook import check_notebook, parse_parameters, runner_argv
from tests.unit.test_magics import local_shell  # noqa: F401  (the fixture)


def _one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(info.value)
    assert message and "\n" not in message
    return message


def _notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nbformat.write(nb, path)
    return path


# -- parameters --------------------------------------------------------------------------


def test_parameters_are_python_literals_and_raw_ones_are_text() -> None:
    parsed = parse_parameters(
        ["lr=0.01", "epochs=5", "layers=[64, 32]", "name='resnet'", "debug=False", "x=None"],
        ["optimizer=adam"],
    )
    assert parsed == {
        "lr": 0.01,
        "epochs": 5,
        "layers": [64, 32],
        "name": "resnet",
        "debug": False,
        "x": None,
        "optimizer": "adam",
    }
    assert parse_parameters({"shape": (2, 3), "cfg": {"a": 1}}) == {
        "shape": [2, 3],
        "cfg": {"a": 1},
    }


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (["lr=1e-3x"], "'1e-3x' is not a Python literal"),
        (["optimizer=adam"], "-r optimizer=adam"),
        (["lr"], "write it as NAME=VALUE"),
        (["2fast=1"], "is not a Python variable name"),
        (["s={1, 2}"], "a set cannot be kept with the run"),
        (["x=float('nan')"], "is not a Python literal"),
    ],
)
def test_a_parameter_that_is_not_a_literal_is_refused_in_one_line(
    items: list[str], words: str
) -> None:
    with pytest.raises(RunError) as info:
        parse_parameters(items)
    assert words in _one_line(info)


def test_the_options_of_submit_give_one_parameters_keyword() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_options(parser, SUBMIT)
    args = parser.parse_args(["--env", "e", "-p", "lr=0.5", "-r", "opt=sgd", "--parameter", "n=2"])
    assert api_keywords(SUBMIT, args)["parameters"] == {"lr": 0.5, "n": 2, "opt": "sgd"}
    args = parser.parse_args(["--env", "e", "-p", "lr=fast"])
    with pytest.raises(RunError, match="not a Python literal"):
        api_keywords(SUBMIT, args)


def test_a_notebook_takes_parameters_and_a_script_takes_arguments() -> None:
    config = RunConfig("nb/train.ipynb", "env", "/src", parameters={"lr": 0.1})
    assert config.argv == runner_argv("nb/train.ipynb", {"lr": 0.1})
    assert config.argv[:4] == ("-m", "mlmagic_notebook", "--output", "outputs/train.ipynb")
    assert json.loads(config.argv[5]) == {"lr": 0.1}
    assert RunConfig.from_dict(config.to_dict()) == config
    assert RunConfig("train.py", "env", "/src", args=("--C", "1")).argv == ("train.py", "--C", "1")
    with pytest.raises(RunError) as info:
        RunConfig("train.ipynb", "env", "/src", args=("--C", "1"))
    assert "takes no command-line arguments" in _one_line(info)
    with pytest.raises(RunError) as info:
        RunConfig("train.py", "env", "/src", parameters={"lr": 1})
    assert "pass its arguments after --" in _one_line(info)


# -- the notebook ------------------------------------------------------------------------


def test_a_file_that_is_not_a_python_notebook_is_refused_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    with pytest.raises(RunError) as info:
        check_notebook(broken, "broken.ipynb")
    assert _one_line(info).startswith("broken.ipynb is not a notebook: it is not valid JSON")
    old = tmp_path / "old.ipynb"
    old.write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    with pytest.raises(RunError) as info:
        check_notebook(old, "old.ipynb")
    assert "not a notebook of format 4" in _one_line(info)
    r_notebook = _notebook(tmp_path / "r.ipynb", nbformat.v4.new_code_cell("x <- 1"))
    data = json.loads(r_notebook.read_text())
    data["metadata"]["kernelspec"] = {"name": "ir", "language": "R", "display_name": "R"}
    r_notebook.write_text(json.dumps(data))
    with pytest.raises(RunError) as info:
        check_notebook(r_notebook, "r.ipynb")
    assert "is a R notebook" in _one_line(info)
    check_notebook(_notebook(tmp_path / "ok.ipynb", nbformat.v4.new_code_cell("1")), "ok.ipynb")


def test_parameters_go_after_the_parameters_cell_replacing_an_earlier_injection() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("lr = 0.1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("lr = 9", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(lr)"),
    ]
    note = mlmagic_notebook.inject_parameters(nb, {"lr": 0.01, "name": "a'b"})
    assert note == ""
    assert [c.source for c in nb.cells[1:]] == [
        "lr = 0.1",
        '# Parameters\nlr = 0.01\nname = "a\'b"\n',
        "print(lr)",
    ]
    assert nb.cells[2].metadata.tags == ["injected-parameters"]
    nbformat.validate(nb)


def test_without_a_parameters_cell_they_go_first_with_a_note() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(seed)")]
    note = mlmagic_notebook.inject_parameters(nb, {"seed": 7})
    assert "no cell tagged 'parameters'" in note
    assert nb.cells[0].source == "# Parameters\nseed = 7\n"
    nbformat.validate(nb)


# -- submit ------------------------------------------------------------------------------


def test_submit_refuses_a_missing_or_broken_notebook_and_records_nothing(
    local_ws, tmp_path: Path
) -> None:
    (tmp_path / "broken.ipynb").write_text("not json")
    with pytest.raises(RunError) as info:
        local_ws.submit("missing.ipynb", "no-env", source_dir=tmp_path)
    assert _one_line(info).startswith("No notebook missing.ipynb in ")
    with pytest.raises(RunError) as info:
        local_ws.submit("broken.ipynb", "no-env", source_dir=tmp_path)
    assert "broken.ipynb is not a notebook: it is not valid JSON" in _one_line(info)
    assert local_ws.store.runs() == []


# -- the widget --------------------------------------------------------------------------


def test_the_running_stage_shows_the_cell_and_a_link_opens_the_executed_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlmagic.events import RunEvent, RunEventKind, Stage
    from mlmagic.widgets import RunView
    from mlmagic.widgets.render import JUPYTER_BASE_URL_VARIABLE

    monkeypatch.setenv(JUPYTER_BASE_URL_VARIABLE, "/base/")
    view = RunView("train.ipynb", run_id="default_1", notebook="train.ipynb")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING, time=1000.0))
    view.handle(RunEvent(RunEventKind.PROGRESS, step=7, total=23, message="cell 7/23"))
    view.finish()
    assert "Running · cell 7/23" in view._header.value
    assert 'href="/base/lab?mlmagic-run=default_1%2Ftrain.ipynb"' in (view.executed_notebook.value)
    assert RunView("train.py", run_id="default_2").executed_notebook.value == ""


def test_the_submit_magic_refuses_bad_parameters_in_one_line(
    local_shell: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from IPython.core.error import UsageError

    _notebook(tmp_path / "train.ipynb", nbformat.v4.new_code_cell("print(lr)"))
    with pytest.raises(UsageError) as info:
        local_shell.run_line_magic("submit", "train.ipynb --env any -p lr=abc")
    assert "'abc' is not a Python literal" in _one_line(info)
    with pytest.raises(UsageError) as info:
        local_shell.run_line_magic("submit", "train.ipynb --env any -p \"lr='a b'\" -p 2x=1")
    assert "'2x' is not a Python variable name" in _one_line(info)


def test_the_terminal_shows_the_cell_a_notebook_run_is_at() -> None:
    import io

    from rich.console import Console

    from mlmagic.cli.progress import RunProgress
    from mlmagic.events import RunEvent, RunEventKind, Stage, Status

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with RunProgress("r1", console) as progress:
        progress.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING))
        progress.handle(RunEvent(RunEventKind.PROGRESS, step=3, total=8, message="cell 3/8"))
        progress.handle(RunEvent(RunEventKind.END, status=Status.COMPLETED, exit_code=0))
    assert "Running cell 3/8" in screen.getvalue()
