"""``%compute attach|up|down|detach`` and ``%computes``: computes from a notebook.

Thin, like :mod:`mlmagic.magics`: the options come from :mod:`mlmagic.options` (shared
with ``mlmagic compute``), a mistake is one red line, and the API does the work.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from mlmagic import hints, options
from mlmagic.computes.record import Compute
from mlmagic.exceptions import MlmagicError
from mlmagic.workspace import Workspace

__all__ = ["ComputeMagics"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the kernel."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"%compute: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # type: ignore[override]
        if message:
            print(message)
        raise UsageError("%compute: see the help above") if status else _Done()


class _Done(Exception):
    """``--help`` was shown."""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%compute", description="Ray clusters runs are sent to.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    attach = commands.add_parser("attach", help="Record an existing Ray cluster.")
    attach.add_argument("name")
    attach.add_argument("--no-check", action="store_true", help="Do not ask the cluster first.")
    options.add_options(attach, options.COMPUTE_ATTACH)
    up = commands.add_parser("up", help="Start a Ray cluster of an environment's containers.")
    up.add_argument("name")
    up.add_argument("--quiet", action="store_true", help="Do not show the build log.")
    options.add_options(up, options.COMPUTE_UP)
    for name, text in (
        ("down", "Remove a cluster that %%compute up started."),
        ("detach", "Forget an attached cluster."),
        ("show", "Show one compute and its state."),
    ):
        commands.add_parser(name, help=text).add_argument("name")
    return parser


@magics_class
class ComputeMagics(Magics):
    """``%compute`` and ``%computes``."""

    @property
    def workspace(self) -> Workspace:
        """The workspace of the current directory."""
        return Workspace.current()

    @line_magic
    def compute(self, line: str) -> Compute | dict[str, Any] | None:
        """Attach, start, show, remove a compute (a Ray cluster).

        ``%compute attach lab --ray http://ray-head:8265 [--token-env RAY_TOKEN]``,
        ``%compute up local-ray --env digits-env --workers 2``, ``%compute down local-ray``,
        ``%compute detach lab``, ``%compute show lab``. Runs go there with
        ``%submit ... --compute NAME``.
        """
        try:
            args = _parser().parse_args(shlex.split(line))
        except _Done:
            return None
        computes = self.workspace.computes
        try:
            if args.command == "attach":
                keywords = options.api_keywords(options.COMPUTE_ATTACH, args)
                return computes.attach(args.name, check=not args.no_check, **keywords)
            if args.command == "up":
                keywords = options.api_keywords(options.COMPUTE_UP, args)
                compute = computes.up(args.name, show_output=not args.quiet, **keywords)
                print(f"{compute.name}: {compute.workers + 1} nodes up; jobs at {compute.address}")
                return compute
            if args.command == "down":
                computes.down(args.name)
                print(f"{args.name}: removed")
                return None
            if args.command == "detach":
                computes.detach(args.name)
                print(f"{args.name}: detached")
                return None
            return computes.status(computes.get(args.name))
        except MlmagicError as exc:
            raise UsageError(hints.render(exc, "magic")) from exc

    @line_magic
    def computes(self, line: str) -> Any:
        """A table of every compute, asked now how it is (name, kind, address, state,
        nodes, CPUs, GPUs, environment, storage)."""
        if line.strip():
            raise UsageError("%computes takes no arguments; %compute show NAME shows one.")
        try:
            return self.workspace.computes.list()
        except MlmagicError as exc:
            raise UsageError(hints.render(exc, "magic")) from exc
