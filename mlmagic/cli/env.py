"""``mlmagic env build|list|show|diff|delete``: environments from a terminal."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any

from mlmagic import options
from mlmagic.cli import completion
from mlmagic.cli.env_folder import add_env_folder_commands
from mlmagic.cli.output import Column, console, human_size, iso_time, relative_time
from mlmagic.cli.parser import add_command, add_noun, add_output_options, output_of
from mlmagic.cli.progress import BuildProgress
from mlmagic.environment import Environment
from mlmagic.events import drain
from mlmagic.exceptions import MlmagicError
from mlmagic.summary import describe
from mlmagic.workspace import Workspace

__all__ = ["add_env_commands", "environment_json"]

_COLUMNS = (
    Column("NAME", "name", flexible=True),
    Column("VERSION", "version"),
    Column("STATUS", "status", styled=True),
    Column("IMAGE OR VENV", "where", flexible=True),
    Column("SIZE", "size", human_size),
    Column("CREATED", "created", relative_time),
)


def environment_json(env: Environment) -> dict[str, Any]:
    """What ``env show --json`` prints: the version's record, times in ISO 8601."""
    return {
        "name": env.name,
        "version": env.version,
        "ref": env.ref,
        "status": env.status,
        "image": env.image,
        "venv": env.venv,
        "format": env.spec.format,
        "created": iso_time(env.created),
        "size": env.size,
        "packages": env.packages,
        "error": env.error,
        "log_path": env.log_path,
        "dockerfile": env.dockerfile,
        "spec": env.spec.to_dict(),
    }


def _build(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise MlmagicError(
            f"{path} is not a file: give the path of a requirements.txt, "
            "environment.yml, Dockerfile or mlmagic YAML file."
        )
    env = Environment.from_text(
        args.name, path.read_text(), **options.api_keywords(options.ENVIRONMENT, args)
    )
    ws = Workspace.current()
    if args.no_build:
        env = ws.environments.register(env)
        print(f"{env.ref} registered ({env.image})")
        return 0
    events = ws.environments.build(env, **options.api_keywords(options.ENVIRONMENT_BUILD, args))
    with BuildProgress(args.name, console(), quiet=args.quiet) as progress:
        built: Environment = drain(events, progress.handle)
    print(f"{built.ref} {built.status} {built.venv or built.image}")
    return 0


def _list(args: argparse.Namespace) -> int:
    frame = Workspace.current().environments.list()
    rows = [
        {
            "name": row["name"],
            "version": int(row["version"]),
            "ref": f"{row['name']}:{row['version']}",
            "status": row["status"],
            "image": row["image"],
            "venv": row["venv"],
            "where": row["venv"] or row["image"],
            "created": row["created"].timestamp(),
            "size": row["size"],
        }
        for row in frame.to_dict("records")
        if args.name is None or row["name"] == args.name
    ]
    out = output_of(args)
    if out.json:
        rows = [
            {**{k: v for k, v in row.items() if k != "where"}, "created": iso_time(row["created"])}
            for row in rows
        ]
    out.rows(
        rows,
        _COLUMNS,
        id_key="ref",
        empty="No environments yet: mlmagic env build FILE --name NAME",
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    env = Workspace.current().environments.resolve(_ref(args.name, args.version))
    output_of(args).item(environment_json(env), lambda: describe(env), id_value=env.ref)
    return 0


def _diff(args: argparse.Namespace) -> int:
    envs = Workspace.current().environments
    old, new = envs.get(args.name, args.old), envs.get(args.name, args.new)
    lines = difflib.unified_diff(
        old.packages or [], new.packages or [], old.ref, new.ref, lineterm="", n=0
    )
    out = console()
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "bold"
        out.print(line, style=style, markup=False, highlight=False)
    return 0


def _delete(args: argparse.Namespace) -> int:
    name, _, version = args.name.partition(":")
    version_number = _version(args.name, version) if version else args.version
    for ref in Workspace.current().environments.delete(name, version_number):
        print(f"{ref} deleted")
    return 0


def _ref(name: str, version: int | None) -> str:
    return f"{name}:{version}" if version is not None and ":" not in name else name


def _version(ref: str, text: str) -> int:
    if not text.isdigit():
        raise MlmagicError(f"{ref!r}: the version after ':' must be a number, e.g. NAME:2.")
    return int(text)


def add_env_commands(groups: Any) -> None:
    """The ``env`` noun and its commands."""
    commands = add_noun(groups, "env", help="Build and inspect environments.")

    build = add_command(
        commands,
        "build",
        _build,
        help="Build an environment from a file (a new version when it changed).",
        examples=[
            "mlmagic env build requirements.txt --name digits-env",
            "mlmagic env build environment.yml --name conda-env --python 3.11",
            "mlmagic env build Dockerfile --name custom --target docker",
        ],
    )
    build.add_argument("file", help="requirements.txt, environment.yml, Dockerfile or YAML.")
    build.add_argument("--name", required=True, help="The environment's name.")
    options.add_options(build, options.ENVIRONMENT + options.ENVIRONMENT_BUILD)

    listing = add_command(
        commands,
        "list",
        _list,
        help="List environment versions, newest first.",
        examples=["mlmagic env list", "mlmagic env list digits-env --json", "mlmagic env list -q"],
    )
    named = listing.add_argument("name", nargs="?", help="Only the versions of this name.")
    completion.complete_with(named, completion.environments)
    add_output_options(listing)

    show = add_command(
        commands,
        "show",
        _show,
        help="Show one version: its Dockerfile and resolved packages.",
        examples=["mlmagic env show digits-env", "mlmagic env show digits-env:2 --json"],
    )
    named = show.add_argument("name", metavar="NAME[:VERSION]")
    completion.complete_with(named, completion.environments)
    show.add_argument("--version", type=int, help="A given version instead of the latest.")
    add_output_options(show)

    diff = add_command(
        commands,
        "diff",
        _diff,
        help="Compare the resolved packages of two versions.",
        examples=["mlmagic env diff digits-env 1 2", "mlmagic env diff digits-env 1"],
    )
    named = diff.add_argument("name")
    completion.complete_with(named, completion.environments)
    diff.add_argument("old", type=int, help="The older version.")
    diff.add_argument("new", type=int, nargs="?", help="The newer version (default: latest).")

    delete = add_command(
        commands,
        "delete",
        _delete,
        help="Delete a version (or every version of a name) and its image or venv.",
        examples=["mlmagic env delete digits-env:1", "mlmagic env delete digits-env"],
    )
    named = delete.add_argument("name", metavar="NAME[:VERSION]")
    completion.complete_with(named, completion.environments)
    delete.add_argument("--version", type=int, help="Only this version.")
    add_env_folder_commands(commands)
