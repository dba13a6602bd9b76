"""One option table for the magics and the command line (mlmagic.options)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

import pytest

from mlmagic import options


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def _cli_command(*path: str) -> argparse.ArgumentParser:
    """The argparse parser of ``mlmagic PATH...``."""
    from mlmagic.cli import build_parser

    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize(
    ("magic", "command", "tables"),
    [
        ("environment", ("env", "build"), (options.ENVIRONMENT, options.ENVIRONMENT_BUILD)),
        ("submit", ("run", "submit"), (options.SUBMIT,)),
        ("deploy", ("service", "deploy"), (options.DEPLOY,)),
        ("runs", ("run", "list"), (options.RUN_FILTERS,)),
    ],
)
def test_magic_and_command_take_each_option_with_the_same_help(magic, command, tables):
    from mlmagic.magics import MLMagics

    magic_actions = _actions(getattr(MLMagics, magic).parser)
    cli_actions = _actions(_cli_command(*command))
    declared = [opt for table in tables for opt in table]
    assert len(declared) >= 3
    for opt in declared:
        in_magic, in_cli = magic_actions[opt.flags[0]], cli_actions[opt.flags[0]]
        assert in_magic.help == in_cli.help == opt.help
        assert in_magic.dest == in_cli.dest == opt.dest
        assert in_magic.choices == in_cli.choices == opt.parse.get("choices")
        assert in_magic.default == in_cli.default
        assert type(in_magic) is type(in_cli)


def test_parsed_options_become_the_api_keywords():
    parser = argparse.ArgumentParser()
    options.add_options(parser, options.SUBMIT)
    args = parser.parse_args(
        ["--env", "e:2", "--tag", "a=1", "--data", "d=/x", "--cpus", "1.5", "--wait"]
    )
    keywords = options.api_keywords(options.SUBMIT, args)
    assert keywords["environment"] == "e:2" and keywords["tags"] == ["a=1"]
    assert keywords["data"] == ["d=/x"] and keywords["cpus"] == 1.5
    assert "wait" not in keywords and keywords["experiment"] == "default"


def test_an_option_required_elsewhere_can_be_optional_here():
    parser = argparse.ArgumentParser()
    options.add_options(parser, options.DEPLOY, optional={"entry", "env"})
    args = parser.parse_args(["--model", "m:1"])
    assert args.entry is None and args.env is None and args.model == ["m:1"]
    strict = argparse.ArgumentParser()
    options.add_options(strict, options.DEPLOY)
    with pytest.raises(SystemExit):
        strict.parse_args(["--model", "m:1"])


def test_run_status_filter_reads_any_case():
    parser = argparse.ArgumentParser()
    options.add_options(parser, options.RUN_FILTERS)
    assert parser.parse_args(["--status", "failed"]).status == "Failed"
    with pytest.raises(SystemExit):
        parser.parse_args(["--status", "broken"])


def test_the_command_line_starts_and_helps_without_ipython():
    script = textwrap.dedent(
        """
        import sys
        import mlmagic.cli
        assert "IPython" not in sys.modules, "importing mlmagic.cli loaded IPython"
        from mlmagic.cli import main
        for argv in (["--help"], ["run", "submit", "--help"], ["service", "deploy", "--help"]):
            try:
                code = main(argv)
            except SystemExit as exit:
                code = exit.code
            assert code == 0, argv
        assert "IPython" not in sys.modules, "mlmagic --help loaded IPython"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--source-dir" in done.stdout and "--inference-config" in done.stdout
