"""Shell completion for bash and zsh, with names from the workspace.

Completion is argcomplete's: the shell runs ``mlmagic`` with the line being typed in its
environment, and the parser answers with the options, commands and values that fit.
The arguments that name an environment, a run, a model or a service complete from the
workspace of the current directory. ``mlmagic completion bash`` (or ``zsh``) prints the
script that hooks this into the shell.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

import argcomplete

from mlmagic.cli.parser import add_command
from mlmagic.run.listing import run_records
from mlmagic.workspace import Workspace

__all__ = [
    "SHELLS",
    "add_completion_command",
    "complete_with",
    "environments",
    "models",
    "runs",
    "services",
]

#: The shells ``mlmagic completion`` writes a script for.
SHELLS = ("bash", "zsh")

Completer = Callable[..., Iterable[str]]


def _names(list_names: Callable[[Workspace], Iterable[str]]) -> Completer:
    def complete(prefix: str, **_: Any) -> list[str]:
        try:
            names = list_names(Workspace.current())
        except Exception as exc:  # a completion must never break the shell's line
            argcomplete.warn(f"mlmagic: cannot read the workspace: {exc}")
            return []
        return sorted({name for name in names if name.startswith(prefix)})

    return complete


def _versioned(frame: Any) -> list[str]:
    """``NAME`` and ``NAME:VERSION`` for each row of a listing of versions."""
    pairs = zip(frame["name"], frame["version"], strict=True)
    return [ref for name, version in pairs for ref in (name, f"{name}:{version}")]


#: ``NAME`` and ``NAME:VERSION`` of every environment.
environments = _names(lambda ws: _versioned(ws.environments.list()))
#: Every run id (from the store's rows: no frame, no run's files, no pandas to import).
runs = _names(lambda ws: [row["id"] for row in run_records(ws, summaries=False)])
#: ``NAME`` and ``NAME:VERSION`` of every model.
models = _names(lambda ws: _versioned(ws.models.list()))
#: Every service name.
services = _names(lambda ws: list(ws.services.list()["name"]))


def complete_with(action: argparse.Action, completer: Completer) -> None:
    """Have ``action``'s values complete with ``completer``."""
    action.completer = completer  # type: ignore[attr-defined]


def _completion(args: argparse.Namespace) -> int:
    print(argcomplete.shellcode(["mlmagic"], shell=args.shell), end="")
    return 0


def add_completion_command(groups: Any) -> None:
    """``mlmagic completion bash|zsh``."""
    parser = add_command(
        groups,
        "completion",
        _completion,
        help="Print the shell completion script for bash or zsh.",
        examples=[
            'eval "$(mlmagic completion bash)"    # in ~/.bashrc',
            'eval "$(mlmagic completion zsh)"     # in ~/.zshrc, after compinit',
        ],
    )
    parser.add_argument("shell", choices=SHELLS, help="The shell to complete in.")
