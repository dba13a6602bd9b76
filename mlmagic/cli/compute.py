"""``mlmagic compute attach|up|down|detach|list|show``: computes (Ray clusters) from a terminal."""

from __future__ import annotations

import argparse
import math
from typing import Any

from mlmagic import options
from mlmagic.cli.output import Column
from mlmagic.cli.parser import add_command, add_noun, add_output_options, output_of
from mlmagic.workspace import Workspace

__all__ = ["add_compute_commands"]

_COLUMNS = (
    Column("NAME", "name", flexible=True),
    Column("KIND", "kind"),
    Column("ADDRESS", "address", flexible=True),
    Column("STATE", "state", flexible=True),
    Column("NODES", "nodes"),
    Column("CPUS", "CPUs"),
    Column("GPUS", "GPUs"),
    Column("ENVIRONMENT", "environment", flexible=True),
)


def _attach(args: argparse.Namespace) -> int:
    keywords = options.api_keywords(options.COMPUTE_ATTACH, args)
    compute = Workspace.current().computes.attach(args.name, check=not args.no_check, **keywords)
    print(f"{compute.name}: attached ({compute.address})")
    return 0


def _up(args: argparse.Namespace) -> int:
    keywords = options.api_keywords(options.COMPUTE_UP, args)
    compute = Workspace.current().computes.up(args.name, show_output=not args.quiet, **keywords)
    print(f"{compute.name}: {compute.workers + 1} nodes up; jobs at {compute.address}")
    return 0


def _down(args: argparse.Namespace) -> int:
    Workspace.current().computes.down(args.name)
    print(f"{args.name}: removed")
    return 0


def _detach(args: argparse.Namespace) -> int:
    Workspace.current().computes.detach(args.name)
    print(f"{args.name}: detached")
    return 0


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    # pandas gives NaN for a count nobody could ask; JSON and the table show nothing.
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _list(args: argparse.Namespace) -> int:
    rows = [_plain(row) for row in Workspace.current().computes.list().to_dict("records")]
    output_of(args).rows(
        rows,
        _COLUMNS,
        id_key="name",
        empty="No computes yet: mlmagic compute attach NAME --ray URL (or compute up NAME --env E)",
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    computes = Workspace.current().computes
    row = _plain(computes.status(computes.get(args.name)))
    output_of(args).item(
        row,
        lambda: "\n".join(f"{k + ':':13} {v}" for k, v in row.items() if v is not None),
        id_value=row["name"],
    )
    return 0


def add_compute_commands(groups: Any) -> None:
    """The ``compute`` noun and its commands."""
    commands = add_noun(groups, "compute", help="Attach, start and list Ray clusters.")
    attach = add_command(
        commands,
        "attach",
        _attach,
        help="Record an existing Ray cluster by its Jobs API address.",
        examples=["mlmagic compute attach lab --ray http://ray-head:8265 --token-env RAY_TOKEN"],
    )
    attach.add_argument("name", help="The compute's name (runs use --compute NAME).")
    attach.add_argument("--no-check", action="store_true", help="Do not ask the cluster first.")
    options.add_options(attach, options.COMPUTE_ATTACH)
    up = add_command(
        commands,
        "up",
        _up,
        help="Start a Ray cluster of an environment's containers on this engine.",
        examples=["mlmagic compute up local-ray --env digits-env --workers 2"],
    )
    up.add_argument("name", help="The compute's name.")
    up.add_argument("--quiet", action="store_true", help="Do not show the build log.")
    options.add_options(up, options.COMPUTE_UP)
    for name, func, text in (
        ("down", _down, "Remove a cluster `compute up` started (containers and network)."),
        ("detach", _detach, "Forget an attached cluster (the cluster is not touched)."),
    ):
        command = add_command(
            commands, name, func, help=text, examples=[f"mlmagic compute {name} local-ray"]
        )
        command.add_argument("name")
    listing = add_command(
        commands,
        "list",
        _list,
        help="Every compute, asked now how it is.",
        examples=["mlmagic compute list", "mlmagic compute list --json"],
    )
    add_output_options(listing)
    show = add_command(
        commands,
        "show",
        _show,
        help="One compute and its state.",
        examples=["mlmagic compute show lab --json"],
    )
    show.add_argument("name")
    add_output_options(show)
