"""The ``mlmagic`` command: the same API for terminals and scripts.

One noun per kind of thing, as the API has one collection each (``ws.environments``,
``ws.runs``, ``ws.models``, ``ws.services``)::

    mlmagic env      build | list | show | diff | delete
    mlmagic run      submit | list | show | logs | cancel | download | metrics
    mlmagic model    register | list | show | download | delete
    mlmagic service  deploy | list | show | logs | reload | delete | keys
    mlmagic compute  attach | up | down | detach | list | show
    mlmagic completion bash | zsh

Every listing and ``show`` takes ``--json`` and ``--quiet``. Errors are one line on
standard error, with hints that name commands of this tool. The options shared with the
magics come from :mod:`mlmagic.options`; nothing here imports IPython.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import argcomplete

from mlmagic import hints
from mlmagic._version import __version__
from mlmagic.cli.completion import add_completion_command
from mlmagic.cli.compute import add_compute_commands
from mlmagic.cli.env import add_env_commands
from mlmagic.cli.model import add_model_commands
from mlmagic.cli.parser import Handler
from mlmagic.cli.run import add_run_commands
from mlmagic.cli.service import add_service_commands
from mlmagic.exceptions import MlmagicError

__all__ = ["EXIT_CODES", "build_parser", "main"]

#: What the exit status of ``mlmagic`` means (also in ``--help`` and the README).
EXIT_CODES = """\
exit codes:
  0    it worked
  1    the operation failed (the error is the last line on standard error)
  2    usage error: an unknown command or option, a missing argument
  N    run submit --wait: the script's own exit code when the run fails (1 if it has none)
  130  interrupted (Ctrl-C); a run goes on without you
"""

_EXAMPLES = """\
examples:
  mlmagic env build requirements.txt --name digits-env
  mlmagic run submit train.py --env digits-env --wait -- --C 0.5
  mlmagic run list --status failed --limit 5
  mlmagic model register digits outputs/model.pkl --run ID
  mlmagic service deploy digits-svc --model digits:1 --entry score.py --env digits-env
  mlmagic env list --json | jq '.[0].image'

The workspace is the nearest .mlmagic folder above the current directory, or the one
MLMAGIC_WORKSPACE names. `mlmagic COMMAND --help` says more about each command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every noun and command, with their help and completers."""
    parser = argparse.ArgumentParser(
        prog="mlmagic",
        description="Environments, training runs, models and services on your Docker engine "
        "(or in local virtual environments).",
        epilog=_EXAMPLES + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"mlmagic {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    add_env_commands(groups)
    add_run_commands(groups)
    add_model_commands(groups)
    add_service_commands(groups)
    add_compute_commands(groups)
    add_completion_command(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see :data:`EXIT_CODES`)."""
    parser = build_parser()
    # Answers the shell and exits when it asks for completions; a no-op otherwise.
    argcomplete.autocomplete(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` belongs to the script, not to us.
    script_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, script_args = argv[:at], argv[at + 1 :]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version (0) and usage errors (2)
        return int(exit.code or 0)
    args.script_args = script_args
    func: Handler = args.func
    try:
        return func(args)
    except MlmagicError as exc:
        print(f"mlmagic: {hints.render(exc, 'cli')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlmagic: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `mlmagic run list | head`: the reader left; say nothing more to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
