"""``mlmagic model register|list|show|download|delete``: the model registry from a terminal."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlmagic.cli import completion
from mlmagic.cli.output import Column, iso_time, relative_time
from mlmagic.cli.parser import add_command, add_noun, add_output_options, output_of
from mlmagic.exceptions import MlmagicError
from mlmagic.run.config import parse_tags
from mlmagic.workspace import Workspace

if TYPE_CHECKING:
    from mlmagic.models import Model

__all__ = ["add_model_commands", "model_json"]

_COLUMNS = (
    Column("NAME", "name", flexible=True),
    Column("VERSION", "version"),
    Column("FILE", "file", flexible=True),
    Column("RUN", "run_id", flexible=True),
    Column("CREATED", "created", relative_time),
)


def model_json(model: Model) -> dict[str, Any]:
    """What ``model show --json`` prints."""
    return {
        "name": model.name,
        "version": model.version,
        "ref": model.ref,
        "path": str(model.path),
        "file": model.path.name,
        "run_id": model.run_id,
        "experiment": model.experiment,
        "environment": f"{model.env_name}:{model.env_version}" if model.env_name else None,
        "tags": model.tags,
        "description": model.description,
        "created": iso_time(model.created),
    }


def _describe(data: dict[str, Any]) -> str:
    fields = [
        ("model", data["ref"]),
        ("path", data["path"]),
        ("run", data["run_id"]),
        ("experiment", data["experiment"]),
        ("environment", data["environment"]),
        ("tags", ", ".join(f"{k}={v}" for k, v in data["tags"].items())),
        ("description", data["description"]),
        ("created", data["created"]),
    ]
    return "\n".join(f"{label + ':':13} {value}" for label, value in fields if value)


def _register(args: argparse.Namespace) -> int:
    ws = Workspace.current()
    tags = parse_tags(args.tag)
    if args.run:
        model = ws.runs.get(args.run).register_model(
            args.name, args.path, tags=tags, description=args.description
        )
    else:
        model = ws.models.register(args.name, args.path, tags=tags, description=args.description)
    print(model.ref)
    return 0


def _list(args: argparse.Namespace) -> int:
    frame = Workspace.current().models.list()
    rows = []
    for record in frame.to_dict("records"):
        if args.name is not None and record["name"] != args.name:
            continue
        created = record["created"].timestamp()
        rows.append(
            {
                **record,
                "version": int(record["version"]),
                "ref": f"{record['name']}:{record['version']}",
                "created": iso_time(created) if args.json else created,
            }
        )
    output_of(args).rows(
        rows,
        _COLUMNS,
        id_key="ref",
        empty="No models yet: mlmagic model register NAME PATH [--run ID]",
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    model = Workspace.current().models.resolve(args.model)
    data = model_json(model)
    output_of(args).item(data, lambda: _describe(data), id_value=model.ref)
    return 0


def _download(args: argparse.Namespace) -> int:
    print(Workspace.current().models.resolve(args.model).download(args.dest))
    return 0


def _delete(args: argparse.Namespace) -> int:
    name, _, version = args.model.partition(":")
    if not version.isdigit():
        raise MlmagicError(
            f"Say which version of {name} to delete: mlmagic model delete {name}:VERSION."
        )
    Workspace.current().models.delete(name, int(version))
    print(f"{name}:{version} deleted")
    return 0


def add_model_commands(groups: Any) -> None:
    """The ``model`` noun and its commands."""
    commands = add_noun(groups, "model", help="Register, list and fetch models.")

    register = add_command(
        commands,
        "register",
        _register,
        help="Register a file or folder as the next version of a model.",
        examples=[
            "mlmagic model register digits outputs/model.pkl --run ID",
            "mlmagic model register digits ./model.pkl --tag stage=dev",
        ],
    )
    register.add_argument("name", help="The model's name.")
    register.add_argument("path", help="With --run, a path in its outputs; else any path.")
    run = register.add_argument("--run", metavar="ID", help="Register from this run's outputs.")
    completion.complete_with(run, completion.runs)
    register.add_argument("--tag", action="append", default=[], metavar="K=V", help="A tag.")
    register.add_argument("--description", help="A line about the model.")

    listing = add_command(
        commands,
        "list",
        _list,
        help="List model versions.",
        examples=["mlmagic model list", "mlmagic model list digits --json"],
    )
    named = listing.add_argument("name", nargs="?", help="Only the versions of this name.")
    completion.complete_with(named, completion.models)
    add_output_options(listing)

    for name, func, help, examples in (
        ("show", _show, "Show a model version and its lineage.", ["digits", "digits:2 --json"]),
        ("download", _download, "Copy a model's file or folder.", ["digits:2 --dest ./models"]),
        ("delete", _delete, "Delete a model version (not while a service uses it).", ["digits:1"]),
    ):
        command = add_command(
            commands,
            name,
            func,
            help=help,
            examples=[f"mlmagic model {name} {e}" for e in examples],
        )
        model = command.add_argument("model", metavar="NAME[:VERSION]")
        completion.complete_with(model, completion.models)
        if name == "show":
            add_output_options(command)
        elif name == "download":
            command.add_argument("--dest", default=".", help="Folder to copy into (default: .).")
