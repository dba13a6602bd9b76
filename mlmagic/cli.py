"""The ``mlmagic`` command: the same API for terminals and scripts.

    mlmagic env build FILE --name NAME [--format F] [--base IMAGE] [--python 3.X] ...
    mlmagic env list
    mlmagic env show NAME [--version N]
    mlmagic run submit SCRIPT --env NAME [options] [-- script args]
    mlmagic run list [--experiment E]
    mlmagic run logs ID [--follow]
    mlmagic run cancel ID

Errors print one line to stderr and exit 1; usage mistakes exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlmagic.environment import Environment
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Status
from mlmagic.exceptions import MlmagicError
from mlmagic.spec import FORMATS, SOLVERS
from mlmagic.workspace import Workspace

__all__ = ["main"]


def print_build_event(event: BuildEvent) -> None:
    """One terminal line per step, log line and outcome of a build."""
    if event.kind is BuildEventKind.STEP:
        print(f"==> {event.step}", flush=True)
    elif event.kind is BuildEventKind.LOG:
        print(f"    {event.message}", flush=True)
    elif event.kind is BuildEventKind.STEP_DONE and event.cached:
        print(f"    (cached) {event.step}", flush=True)
    elif event.kind is BuildEventKind.DONE:
        how = "cache hit" if event.cached else "built"
        print(f"==> {event.image} ({how} in {event.duration or 0:.2f}s)", flush=True)


def _env_build(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise MlmagicError(
            f"{path} is not a file: give the path of a requirements.txt, "
            "environment.yml, Dockerfile or mlmagic YAML file."
        )
    env = Environment.from_text(
        args.name,
        path.read_text(),
        format=args.format,
        base_image=args.base,
        python=args.python,
        gpu=args.gpu,
        user_managed=args.user_managed,
        solver=args.solver,
    )
    ws = Workspace.current()
    if args.no_build:
        env = ws.environments.register(env)
        print(f"{env.ref} registered ({env.image})")
        return 0
    events = ws.environments.build(env, rebuild=args.rebuild)
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            built: Environment = stop.value
            break
        if not args.quiet or event.kind is BuildEventKind.DONE:
            print_build_event(event)
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
        source_dir=args.source_dir,
        experiment=args.experiment,
        name=args.name,
        tags=args.tag,
        gpus=args.gpus,
        data=args.data,
        shm_size=args.shm_size,
        memory=args.memory,
        cpus=args.cpus,
        timeout=args.timeout,
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlmagic", description="Environments, runs and services on your Docker engine."
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="{env,run}")

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
