"""``mlmagic env scaffold|download|register --directory``: Azure ML's environment folders.

The same folder format as ``Environment.save_to_directory`` / ``load_from_directory``
(:mod:`mlmagic.azureml.core.environment_folder`), so a folder made by ``az ml
environment scaffold`` or ``download`` registers here, and the other way round.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlmagic.cli import completion
from mlmagic.cli.parser import add_command
from mlmagic.workspace import Workspace

__all__ = ["add_env_folder_commands"]


def _scaffold(args: argparse.Namespace) -> int:
    from mlmagic.azureml.core.environment import Environment
    from mlmagic.environment import check_name

    check_name(args.name)
    env = Environment(args.name)
    env.environment_variables = {}
    files = env.save_to_directory_files(Path(args.directory), overwrite=args.overwrite)
    print(f"Scaffolded {args.name} in {args.directory}: {', '.join(p.name for p in files)}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from mlmagic.azureml.core.environment import Environment
    from mlmagic.azureml.core.workspace import Workspace as AzureWorkspace

    env = Environment.get(AzureWorkspace(_workspace=Workspace.current()), args.name, args.version)
    files = env.save_to_directory_files(Path(args.directory), overwrite=args.overwrite)
    print(
        f"Downloaded {args.name}:{env.version} to {args.directory}: "
        f"{', '.join(p.name for p in files)}"
    )
    return 0


def _register(args: argparse.Namespace) -> int:
    from mlmagic.azureml.core.environment import Environment
    from mlmagic.azureml.core.workspace import Workspace as AzureWorkspace

    env = Environment.load_from_directory(args.directory)
    registered = env.register(AzureWorkspace(_workspace=Workspace.current()))
    print(f"{registered.name}:{registered.version} registered")
    return 0


def add_env_folder_commands(commands: Any) -> None:
    """``scaffold``, ``download`` and ``register`` under the ``env`` noun."""
    scaffold = add_command(
        commands,
        "scaffold",
        _scaffold,
        help="Write a new environment definition folder (Azure ML's format) to edit.",
        examples=["mlmagic env scaffold myenv --directory myenvdir"],
    )
    scaffold.add_argument("name", help="The environment's name.")
    download = add_command(
        commands,
        "download",
        _download,
        help="Write a registered environment's definition folder (Azure ML's format).",
        examples=["mlmagic env download myenv --directory downloaddir --version 2"],
    )
    named = download.add_argument("name", help="The environment's name.")
    completion.complete_with(named, completion.environments)
    download.add_argument("--version", help="A given version instead of the latest.")
    for parser in (scaffold, download):
        parser.add_argument("-d", "--directory", required=True, help="The folder to write.")
        parser.add_argument(
            "--overwrite", action="store_true", help="Replace a definition already there."
        )
    register = add_command(
        commands,
        "register",
        _register,
        help="Register the environment of a definition folder (Azure ML's format).",
        examples=["mlmagic env register --directory myenvdir"],
    )
    register.add_argument("-d", "--directory", required=True, help="The folder to read.")
