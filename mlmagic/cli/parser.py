"""How each command is declared: its help, its examples, its output options.

The nouns (``env``, ``run``, ``model``, ``service``) add their commands through
:func:`add_command`, so every command's ``--help`` has the same shape: one line of what it
does, its options, then examples; and every listing or ``show`` takes ``--json`` and
``--quiet`` through :func:`add_output_options`.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from mlmagic.cli.output import Output

__all__ = ["Handler", "add_command", "add_noun", "add_output_options", "output_of"]

#: A command: parsed arguments in, exit code out.
Handler = Callable[[argparse.Namespace], int]


def add_noun(groups: Any, name: str, *, help: str) -> Any:
    """A noun (``mlmagic NAME ...``) and the subparsers of its commands."""
    noun = groups.add_parser(name, help=help, description=help)
    return noun.add_subparsers(dest="command", required=True, metavar="COMMAND")


def add_command(
    commands: Any,
    name: str,
    func: Handler,
    *,
    help: str,
    examples: Sequence[str] = (),
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add command ``name`` running ``func``; ``examples`` end its ``--help``."""
    epilog = None
    if examples:
        epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=textwrap.dedent(description or help).strip(),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.set_defaults(func=func)
    return parser


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--quiet`` (ids only), on every listing and ``show``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="Print JSON, for scripts.")
    group.add_argument("-q", "--quiet", action="store_true", help="Print ids only.")


def output_of(args: argparse.Namespace) -> Output:
    """The :class:`Output` that the command's ``--json`` and ``--quiet`` ask for."""
    return Output(json=args.json, quiet=args.quiet)
