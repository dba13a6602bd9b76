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

from mlmagic.deploy.service import deploy_options
from mlmagic.distributed.config import distribution_options
from mlmagic.environment import Environment, environment_options
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Status, drain
from mlmagic.exceptions import MlmagicError
from mlmagic.run.config import submit_options
from mlmagic.spec import FORMATS, SOLVERS
from mlmagic.workspace import TARGETS, Workspace

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
    env = Environment.from_text(args.name, path.read_text(), **environment_options(args))
    ws = Workspace.current()
    if args.no_build:
        env = ws.environments.register(env)
        print(f"{env.ref} registered ({env.image})")
        return 0

    def show(event: BuildEvent) -> None:
        if not args.quiet or event.kind is BuildEventKind.DONE:
            print_build_event(event)

    built = drain(ws.environments.build(env, rebuild=args.rebuild, target=args.target), show)
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
    from mlmagic.magics import describe

    print(describe(Workspace.current().environments.get(args.name, args.version)))
    return 0


def _run_submit(args: argparse.Namespace) -> int:
    run = Workspace.current().submit(
        args.script,
        args.env,
        args=args.script_args,
        distributed=distribution_options(args),
        **submit_options(args),
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
    frame = Workspace.current().runs.list(args.experiment)
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
    entry, source, env = args.entry, args.source_dir, args.env
    if args.inference_config:
        from mlmagic.deploy.inference_config import read_inference_config

        config = read_inference_config(args.inference_config, args.name)
        entry, source = entry or config.entry_script, source or config.source_dir
        env = env or config.environment
    if not entry or not env:
        raise MlmagicError("Give --entry and --env, or an --inference-config that names them.")
    events = ws.services.deploy(
        args.name,
        entry_script=entry,
        environment=env,
        **{**deploy_options(args), "source_dir": source},
    )
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
    build.add_argument("--format", choices=FORMATS)
    build.add_argument("--base", metavar="IMAGE")
    build.add_argument("--python", metavar="3.X")
    build.add_argument("--gpu", action="store_const", const=True)
    build.add_argument("--user-managed", action="store_const", const=True)
    build.add_argument("--solver", choices=SOLVERS)
    build.add_argument("--no-build", action="store_true", help="Register only.")
    build.add_argument("--rebuild", action="store_true", help="Ignore the cache.")
    build.add_argument("--quiet", action="store_true", help="Print only the outcome.")
    build.add_argument("--target", choices=TARGETS, help="docker, local or auto.")
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
    submit.add_argument("--env", required=True, help="NAME or NAME:VERSION.")
    submit.add_argument("--experiment", default="default")
    submit.add_argument("--source-dir")
    submit.add_argument("--gpus", default="none", help="none, all, auto, a count or ids.")
    submit.add_argument("--data", action="append", default=[], metavar="NAME=PATH")
    submit.add_argument("--shm-size")
    submit.add_argument("--memory")
    submit.add_argument("--cpus", type=float)
    submit.add_argument("--timeout", type=float)
    submit.add_argument("--name")
    submit.add_argument("--tag", action="append", default=[], metavar="K=V")
    submit.add_argument("--wait", action="store_true", help="Follow the run to its end.")
    submit.add_argument("--target", choices=TARGETS, help="docker, local or auto.")
    # -- distributed runs (issue 11): to be folded into the option table ----------------
    submit.add_argument("--distributed", metavar="FRAMEWORK", help="pytorch, tensorflow, mpi.")
    submit.add_argument("--nodes", type=int, help="Nodes (containers).")
    submit.add_argument("--procs-per-node", type=int, help="Processes on each node.")
    submit.add_argument("--workers", type=int, help="TensorFlow workers.")
    submit.add_argument("--parameter-servers", type=int, help="TensorFlow parameter servers.")
    submit.add_argument("--launcher", metavar="torchrun", help="Start PyTorch with torchrun.")
    # -- end of distributed runs ----------------------------------------------------------
    submit.set_defaults(func=_run_submit)
    listing = commands.add_parser("list", help="List runs.")
    listing.add_argument("--experiment")
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
    deploy.add_argument("--model", action="append", default=[], required=True)
    deploy.add_argument("--entry", help="The scoring script.")
    deploy.add_argument("--env", help="NAME or NAME:VERSION.")
    deploy.add_argument("--source-dir")
    deploy.add_argument(
        "--inference-config", help="An Azure ML inferenceconfig.json (entryScript, condaFile...)."
    )
    deploy.add_argument("--port", type=int)
    deploy.add_argument("--host")
    deploy.add_argument("--workers", type=int, default=1)
    deploy.add_argument("--auth", action="store_true")
    deploy.add_argument("--gpus")
    deploy.add_argument("--memory")
    deploy.add_argument("--cpus", type=float)
    deploy.add_argument("--target", choices=TARGETS, help="docker, local or auto.")
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
