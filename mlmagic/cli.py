"""The ``mlmagic`` command: the same API for terminals and scripts.

    mlmagic env build FILE --name NAME [--format F] [--base IMAGE] [--python 3.X] ...
    mlmagic env list
    mlmagic env show NAME [--version N]
    mlmagic run submit SCRIPT --env NAME [options] [-- script args]
    mlmagic run list [--experiment E]
    mlmagic run logs ID [--follow]
    mlmagic run cancel ID
    mlmagic service deploy NAME --model M[:V] (--entry F --env E | --inference-config J)
    mlmagic service list | logs NAME | delete NAME

Errors print one line to stderr and exit 1; usage mistakes exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlmagic import options
from mlmagic.environment import Environment
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Status, drain
from mlmagic.exceptions import MlmagicError
from mlmagic.summary import describe
from mlmagic.workspace import Workspace

__all__ = ["main"]


def print_build_event(event: BuildEvent) -> None:
    """One terminal line per step, log line and outcome of a build."""
    if event.kind is BuildEventKind.STEP:
        print(f"==> {_short(event.step or '')}", flush=True)
    elif event.kind is BuildEventKind.LOG:
        print(f"    {event.message}", flush=True)
    elif event.kind is BuildEventKind.STEP_DONE and event.cached:
        print(f"    (cached) {_short(event.step or '')}", flush=True)
    elif event.kind is BuildEventKind.DONE:
        how = "cache hit" if event.cached else "built"
        print(f"==> {event.image} ({how} in {event.duration or 0:.2f}s)", flush=True)


def _short(text: str, width: int = 100) -> str:
    """A step label cut to one terminal line (RUN lines with mounts are long)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _env_build(args: argparse.Namespace) -> int:
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

    def show(event: BuildEvent) -> None:
        if not args.quiet or event.kind is BuildEventKind.DONE:
            print_build_event(event)

    events = ws.environments.build(env, **options.api_keywords(options.ENVIRONMENT_BUILD, args))
    built = drain(events, show)
    print(f"{built.ref} {built.status} {built.image}")
    return 0


def _env_list(args: argparse.Namespace) -> int:
    frame = Workspace.current().environments.list()
    if frame.empty:
        print("No environments yet: mlmagic env build FILE --name NAME")
        return 0
    print(frame.to_string(index=False))
    return 0


def _env_show(args: argparse.Namespace) -> int:
    print(describe(Workspace.current().environments.get(args.name, args.version)))
    return 0


def _run_submit(args: argparse.Namespace) -> int:
    run = Workspace.current().submit(
        args.script, args=args.script_args, **options.api_keywords(options.SUBMIT, args)
    )
    print(run.id, flush=True)
    if not args.wait:
        return 0
    for event in run.events():
        print_run_event(event)
    return 0 if run.status is Status.COMPLETED else 1


def print_run_event(event: RunEvent) -> None:
    """One terminal line per stage, log line, metric and outcome of a run."""
    if event.kind is RunEventKind.STAGE and event.stage:
        print(f"==> {event.stage.value}", flush=True)
    elif event.kind is RunEventKind.BUILD and event.build:
        print_build_event(event.build)
    elif event.kind is RunEventKind.LOG:
        print(event.message, flush=True)
    elif event.kind is RunEventKind.METRIC:
        print(f"    [metric] {event.name}={event.value} (step {event.step})", flush=True)
    elif event.kind is RunEventKind.END and event.status:
        code = f", exit code {event.exit_code}" if event.exit_code is not None else ""
        why = f": {event.message}" if event.message else ""
        print(f"==> {event.status.value}{code}{why}", flush=True)


def _run_list(args: argparse.Namespace) -> int:
    frame = Workspace.current().runs.list(**options.api_keywords(options.RUN_FILTERS, args))
    frame = options.filter_runs(frame, args)
    if frame.empty:
        print("No runs yet: mlmagic run submit SCRIPT --env NAME")
        return 0
    print(frame.to_string(index=False))
    return 0


def _run_logs(args: argparse.Namespace) -> int:
    run = Workspace.current().runs.get(args.run_id)
    if not args.follow:
        sys.stdout.write(run.logs())
        return 0
    for event in run.events():
        if event.kind is RunEventKind.LOG:
            print(event.message, flush=True)
    return 0


def _run_cancel(args: argparse.Namespace) -> int:
    run = Workspace.current().runs.get(args.run_id)
    run.cancel()
    print(f"{run.id} {run.status.value}")
    return 0


def _service_deploy(args: argparse.Namespace) -> int:
    ws = Workspace.current()
    keywords = options.api_keywords(options.DEPLOY, args)
    if args.inference_config:
        from mlmagic.deploy.inference_config import read_inference_config

        config = read_inference_config(args.inference_config, args.name)
        keywords["entry_script"] = keywords["entry_script"] or config.entry_script
        keywords["source_dir"] = keywords["source_dir"] or config.source_dir
        keywords["environment"] = keywords["environment"] or config.environment
    if not keywords["entry_script"] or not keywords["environment"]:
        raise MlmagicError("Give --entry and --env, or an --inference-config that names them.")
    events = ws.services.deploy(args.name, **keywords)
    service = drain(events, print_build_event)
    print(f"{service.name} Healthy {service.scoring_uri}")
    if args.auth:
        print(f"primary key: {service.get_keys()[0]}")
    return 0


def _service_list(args: argparse.Namespace) -> int:
    frame = Workspace.current().services.list()
    print(frame.to_string(index=False) if not frame.empty else "No services.")
    return 0


def _service_logs(args: argparse.Namespace) -> int:
    print(Workspace.current().services.get(args.name).get_logs(args.lines))
    return 0


def _service_delete(args: argparse.Namespace) -> int:
    Workspace.current().services.get(args.name).delete()
    print(f"{args.name} deleted")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlmagic", description="Environments, runs and services on your Docker engine."
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="{env,run,service}")

    env = groups.add_parser("env", help="Build and inspect environments.")
    commands = env.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="Build an environment from a file.")
    build.add_argument("file", help="requirements.txt, environment.yml, Dockerfile or YAML.")
    build.add_argument("--name", required=True, help="The environment's name.")
    options.add_options(build, options.ENVIRONMENT + options.ENVIRONMENT_BUILD)
    build.set_defaults(func=_env_build)
    listing = commands.add_parser("list", help="List environment versions.")
    listing.set_defaults(func=_env_list)
    show = commands.add_parser("show", help="Show one environment.")
    show.add_argument("name")
    show.add_argument("--version", type=int)
    show.set_defaults(func=_env_show)

    run = groups.add_parser("run", help="Submit and follow training runs.")
    commands = run.add_subparsers(dest="command", required=True)
    submit = commands.add_parser(
        "submit", help="Run a script in a container; arguments after -- go to the script."
    )
    submit.add_argument("script", help="The script, relative to --source-dir.")
    options.add_options(submit, options.SUBMIT)
    submit.set_defaults(func=_run_submit)
    listing = commands.add_parser("list", help="List runs.")
    options.add_options(listing, options.RUN_FILTERS)
    listing.set_defaults(func=_run_list)
    logs = commands.add_parser("logs", help="Print a run's log.")
    logs.add_argument("run_id")
    logs.add_argument("--follow", "-f", action="store_true", help="Follow a live run.")
    logs.set_defaults(func=_run_logs)
    cancel = commands.add_parser("cancel", help="Cancel a run.")
    cancel.add_argument("run_id")
    cancel.set_defaults(func=_run_cancel)

    service = groups.add_parser("service", help="Deploy models as HTTP services.")
    commands = service.add_subparsers(dest="command", required=True)
    deploy = commands.add_parser("deploy", help="Serve registered models from a container.")
    deploy.add_argument("name")
    options.add_options(deploy, options.DEPLOY, optional={"entry", "env"})
    deploy.add_argument(
        "--inference-config", help="An Azure ML inferenceconfig.json (entryScript, condaFile...)."
    )
    deploy.set_defaults(func=_service_deploy)
    listing = commands.add_parser("list", help="List services.")
    listing.set_defaults(func=_service_list)
    logs = commands.add_parser("logs", help="Print a service's log.")
    logs.add_argument("name")
    logs.add_argument("--lines", type=int, default=5000)
    logs.set_defaults(func=_service_logs)
    delete = commands.add_parser("delete", help="Delete a service.")
    delete.add_argument("name")
    delete.set_defaults(func=_service_delete)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` belongs to the script, not to us.
    script_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, script_args = argv[:at], argv[at + 1 :]
    args = _parser().parse_args(argv)
    args.script_args = script_args
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MlmagicError as exc:
        print(f"mlmagic: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlmagic: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
