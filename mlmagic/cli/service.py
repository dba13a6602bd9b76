"""``mlmagic service deploy|list|show|logs|reload|delete|keys``: services from a terminal."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlmagic import options
from mlmagic.cli import completion
from mlmagic.cli.output import Column, Output, console
from mlmagic.cli.parser import add_command, add_noun, add_output_options, output_of
from mlmagic.cli.progress import BuildProgress
from mlmagic.events import drain
from mlmagic.exceptions import MlmagicError
from mlmagic.workspace import Workspace

if TYPE_CHECKING:
    from mlmagic.deploy.service import Service

__all__ = ["add_service_commands", "service_json"]

_COLUMNS = (
    Column("NAME", "name", flexible=True),
    Column("STATE", "state", styled=True),
    Column("SCORING URI", "scoring_uri", flexible=True),
    Column("MODELS", "models", flexible=True),
    Column("ENVIRONMENT", "environment", flexible=True),
)


def service_json(service: Service) -> dict[str, Any]:
    """What ``service show --json`` prints: state, URLs and configuration (never keys)."""
    return {
        "name": service.name,
        "state": service.state,
        "target": service.target,
        "scoring_uri": service.scoring_uri,
        "swagger_uri": service.swagger_uri,
        "config": service.config,
    }


def _describe(data: dict[str, Any]) -> str:
    config = data["config"]
    fields = [
        ("service", data["name"]),
        ("state", data["state"]),
        ("scoring URI", data["scoring_uri"]),
        ("swagger", data["swagger_uri"]),
        ("models", ", ".join(config["models"])),
        ("environment", config["environment"]),
        ("entry script", f"{config['entry_script']} in {config['source_dir']}"),
        ("target", data["target"]),
        ("workers", config.get("workers")),
        ("auth", "key required" if config.get("auth") else "none"),
    ]
    return "\n".join(f"{label + ':':13} {value}" for label, value in fields if value is not None)


def _deploy(args: argparse.Namespace) -> int:
    ws = Workspace.current()
    keywords = options.api_keywords(options.DEPLOY, args)
    if args.inference_config:
        from mlmagic.deploy.inference_config import read_inference_config

        config = read_inference_config(args.inference_config, args.name)
        keywords["entry_script"] = keywords["entry_script"] or config.entry_script
        keywords["source_dir"] = keywords["source_dir"] or config.source_dir
        if not keywords["environment"] and config.environment is not None:
            keywords["environment"] = _build_with_password(ws, config, keywords, args.quiet)
    if not keywords["entry_script"] or not keywords["environment"]:
        raise MlmagicError("Give --entry and --env, or an --inference-config that names them.")
    events = ws.services.deploy(args.name, **keywords)
    with BuildProgress(f"service {args.name}", console(), quiet=args.quiet) as progress:
        service: Service = drain(events, progress.handle)
    print(f"{service.name} Healthy {service.scoring_uri}")
    if args.auth:
        print(f"primary key: {service.get_keys()[0]}")
    return 0


def _build_with_password(ws: Workspace, config: Any, keywords: dict[str, Any], quiet: bool) -> Any:
    """Register and build the file's environment now, while its registry password (if
    the file gives one) is readable, so the password never outlives the build."""
    from mlmagic.deploy.registry import registry_password

    env = ws.environments.resolve(config.environment)
    if config.registry_password is None:
        return env
    with (
        registry_password(env.spec.registry, config.registry_password),
        BuildProgress(f"environment {env.ref}", console(), quiet=quiet) as progress,
    ):
        drain(ws.environments.build(env, target=keywords.get("target")), progress.handle)
    return env


def _list(args: argparse.Namespace) -> int:
    frame = Workspace.current().services.list()
    output_of(args).rows(
        frame.to_dict("records"),
        _COLUMNS,
        id_key="name",
        empty="No services yet: mlmagic service deploy NAME --model M --entry F --env E",
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    service = Workspace.current().services.get(args.name)
    data = service_json(service)
    output_of(args).item(data, lambda: _describe(data), id_value=service.name)
    return 0


def _logs(args: argparse.Namespace) -> int:
    print(Workspace.current().services.get(args.name).get_logs(args.lines))
    return 0


def _reload(args: argparse.Namespace) -> int:
    service = Workspace.current().services.get(args.name)
    with console().status(f"rebuilding and restarting {service.name}"):
        service.reload()
    print(f"{service.name} {service.state} {service.scoring_uri}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    Workspace.current().services.get(args.name).delete()
    print(f"{args.name} deleted")
    return 0


def _keys(args: argparse.Namespace) -> int:
    service = Workspace.current().services.get(args.name)
    if args.regenerate:
        primary, secondary = service.regen_key(args.regenerate.capitalize())
    else:
        primary, secondary = service.get_keys()
    if args.json:
        Output(json=True).write_json({"primary": primary, "secondary": secondary})
    else:
        print(f"primary: {primary}\nsecondary: {secondary}")
    return 0


def add_service_commands(groups: Any) -> None:
    """The ``service`` noun and its commands."""
    commands = add_noun(groups, "service", help="Serve registered models over HTTP.")

    deploy = add_command(
        commands,
        "deploy",
        _deploy,
        help="Serve registered models from a container (or a process on the local target).",
        examples=[
            "mlmagic service deploy digits-svc --model digits:1 --entry score.py --env digits-env",
            "mlmagic service deploy digits-svc --model digits --inference-config inference.json",
        ],
    )
    deploy.add_argument("name", help="The service's name (lowercase letters, digits, '-').")
    options.add_options(deploy, options.DEPLOY, optional={"entry", "env"})
    deploy.add_argument(
        "--inference-config",
        metavar="JSON",
        help="An Azure ML inferenceconfig.json (entryScript, sourceDirectory, condaFile...).",
    )
    for dest, completer in (("model", completion.models), ("env", completion.environments)):
        action = next(a for a in deploy._actions if a.dest == dest)
        completion.complete_with(action, completer)

    listing = add_command(
        commands,
        "list",
        _list,
        help="List services with their state, checked now.",
        examples=["mlmagic service list", "mlmagic service list --json"],
    )
    add_output_options(listing)

    for name, func, help, examples in (
        ("show", _show, "Show a service: state, URLs, models.", ["NAME", "NAME --json"]),
        ("logs", _logs, "Print what the server printed.", ["NAME --lines 100"]),
        ("reload", _reload, "Rebuild from the entry script and restart.", ["NAME"]),
        ("delete", _delete, "Stop and remove a service.", ["NAME"]),
        ("keys", _keys, "Print or regenerate the scoring keys.", ["NAME --regenerate primary"]),
    ):
        command = add_command(
            commands,
            name,
            func,
            help=help,
            examples=[f"mlmagic service {name} {e}" for e in examples],
        )
        service = command.add_argument("name", metavar="NAME")
        completion.complete_with(service, completion.services)
        if name == "show":
            add_output_options(command)
        elif name == "logs":
            command.add_argument("--lines", type=int, default=5000, help="At most this many.")
        elif name == "keys":
            command.add_argument(
                "--regenerate",
                choices=("primary", "secondary"),
                help="Make a new key (restarts the server; the other key stays if known).",
            )
            command.add_argument("--json", action="store_true", help="Print JSON.")
