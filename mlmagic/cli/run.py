"""``mlmagic run submit|list|show|logs|cancel|download|metrics``: runs from a terminal."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mlmagic import options
from mlmagic.cli import completion
from mlmagic.cli.output import (
    Column,
    Output,
    console,
    human_duration,
    human_size,
    iso_time,
    relative_time,
)
from mlmagic.cli.parser import add_command, add_noun, add_output_options, output_of
from mlmagic.cli.progress import RunProgress
from mlmagic.events import RunEventKind, Status
from mlmagic.run.listing import run_records
from mlmagic.workspace import Workspace

if TYPE_CHECKING:
    from mlmagic.run.run import Run

__all__ = ["add_run_commands", "run_json"]

_COLUMNS = (
    Column("ID", "id"),
    Column("EXPERIMENT", "experiment", flexible=True),
    Column("STATUS", "status", styled=True),
    Column("ENVIRONMENT", "environment", flexible=True),
    Column("CREATED", "created", relative_time),
    Column("DURATION", "duration", human_duration),
    Column("NAME", "name", flexible=True),
)
_METRIC_COLUMNS = (
    Column("NAME", "name", flexible=True),
    Column("STEP", "step"),
    Column("VALUE", "value", lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)),
    Column("LOGGED", "time", relative_time),
)


def run_json(run: Run) -> dict[str, Any]:
    """What ``run show --json`` prints: the run's details, params, last metrics and files."""
    details = run.details
    for key in ("created", "started", "ended"):
        details[key] = iso_time(details[key])
    details["stages"] = {
        stage: {"started": iso_time(start), "ended": iso_time(end)}
        for stage, (start, end) in details["stages"].items()
    }
    metrics = run.metrics
    last = metrics.groupby("name")["value"].last() if not metrics.empty else {}
    return {
        **details,
        "params": run.params,
        "metrics": {str(k): float(v) for k, v in dict(last).items()},
        "files": run.files(),
    }


def _describe(data: dict[str, Any]) -> str:
    """``run show`` for people: one field a line, then the files."""
    fields = [
        ("run", data["id"]),
        ("status", data["status"]),
        ("experiment", data["experiment"]),
        ("name", data["name"]),
        ("script", " ".join([data["script"], *data["args"]])),
        ("environment", data["environment"]),
        ("target", data["target"]),
        ("exit code", data["exit_code"]),
        ("error", data["error"]),
        ("created", data["created"]),
        ("duration", human_duration(data["duration"])),
        ("snapshot", f"{data['snapshot_files']} files, {human_size(data['snapshot_bytes'])}"),
        ("tags", ", ".join(f"{k}={v}" for k, v in (data["tags"] or {}).items())),
        ("params", ", ".join(f"{k}={v}" for k, v in data["params"].items())),
        ("metrics", ", ".join(f"{k}={v:.4g}" for k, v in data["metrics"].items())),
    ]
    lines = [f"{label + ':':13} {value}" for label, value in fields if value not in (None, "")]
    if data["files"]:
        lines += ["files:", *(f"  {name}" for name in data["files"])]
    return "\n".join(lines)


def _submit(args: argparse.Namespace) -> int:
    run = Workspace.current().submit(
        args.script, args=args.script_args, **options.api_keywords(options.SUBMIT, args)
    )
    print(run.id, flush=True)
    if not args.wait:
        return 0
    try:
        with RunProgress(run.id, console()) as progress:
            for event in run.events():
                progress.handle(event)
    except KeyboardInterrupt:
        print(
            f"Stopped waiting; run {run.id} goes on (`mlmagic run cancel {run.id}` stops it).",
            file=sys.stderr,
        )
        return 130
    if run.status is Status.COMPLETED:
        return 0
    # Scripts see the run's own exit code, as if they had run the script themselves.
    return run.exit_code if run.exit_code else 1


#: How many runs a table shows without ``--limit`` (``gh run list`` shows 20 too): a table of
#: every run of a large workspace takes longer to draw than to read, and scrolls away.
_TABLE_LIMIT = 20


def _list(args: argparse.Namespace) -> int:
    keywords = options.api_keywords(options.RUN_FILTERS, args)
    shortened = not (args.json or args.quiet) and keywords.get("limit") is None
    if shortened:  # one more than shown, to know whether there are more
        keywords["limit"] = _TABLE_LIMIT + 1
    # Rows, not a frame: no pandas to import; the table and the ids need no run's params
    # or metrics (only --json shows them), so no run's files are read for them.
    rows = run_records(Workspace.current(), **keywords, summaries=args.json)
    more = shortened and len(rows) > _TABLE_LIMIT
    rows = rows[:_TABLE_LIMIT] if more else rows
    if args.json:
        for row in rows:
            row["created"] = iso_time(row["created"])
    output_of(args).rows(
        rows, _COLUMNS, id_key="id", empty="No runs yet: mlmagic run submit SCRIPT --env NAME"
    )
    if more:
        print(
            f"The newest {_TABLE_LIMIT} runs; there are more: --limit N shows N, --json all.",
            file=sys.stderr,
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    run = Workspace.current().runs.get(args.run_id)
    data = run_json(run)
    output_of(args).item(data, lambda: _describe(data), id_value=run.id)
    return 0


def _logs(args: argparse.Namespace) -> int:
    run = Workspace.current().runs.get(args.run_id)
    if not args.follow:
        sys.stdout.write(run.logs())
        return 0
    for event in run.events():
        if event.kind is RunEventKind.LOG:
            print(event.message, flush=True)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    run = Workspace.current().runs.get(args.run_id)
    run.cancel()
    print(f"{run.id} {run.status.value}")
    return 0


def _download(args: argparse.Namespace) -> int:
    run = Workspace.current().runs.get(args.run_id)
    print(run.download(args.path, args.dest))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    frame = Workspace.current().runs.get(args.run_id).metrics
    if args.name:
        frame = frame[frame["name"] == args.name]
    rows = [
        {**row, "time": iso_time(row["time"].timestamp()) if args.json else row["time"].timestamp()}
        for row in frame.to_dict("records")
    ]
    Output(json=args.json).rows(
        rows, _METRIC_COLUMNS, id_key="name", empty=f"Run {args.run_id} logged no metrics."
    )
    return 0


def add_run_commands(groups: Any) -> None:
    """The ``run`` noun and its commands."""
    commands = add_noun(groups, "run", help="Submit, follow and inspect training runs.")

    submit = add_command(
        commands,
        "submit",
        _submit,
        help="Run a script or notebook in an environment; arguments after -- go to the script.",
        description="""
        Run a script in an environment; arguments after -- go to the script. A notebook
        (.ipynb) runs cell by cell, its parameters given with -p/-r; the executed copy is
        the run's outputs/NAME.ipynb.

        Prints the run's id at once. With --wait it follows the run (stages, build, metrics
        and log) and exits with the run's own exit code when the script fails.""",
        examples=[
            "mlmagic run submit train.py --env digits-env",
            "mlmagic run submit train.py --env digits-env:2 --wait -- --C 0.5",
            "mlmagic run submit train.py --env torch-env --gpus all --data mnist=./data",
            "mlmagic run submit train.ipynb --env torch-env -p lr=0.01 -p epochs=5 --wait",
        ],
    )
    submit.add_argument("script", help="The script or notebook, relative to --source-dir.")
    options.add_options(submit, options.SUBMIT)
    completion.complete_with(_action(submit, "env"), completion.environments)

    listing = add_command(
        commands,
        "list",
        _list,
        help="List runs, newest first (a table: the newest 20, unless --limit).",
        examples=[
            "mlmagic run list --experiment digits --status failed",
            "mlmagic run list --limit 5 --json",
            "mlmagic run list -q --status running",
        ],
    )
    options.add_options(listing, options.RUN_FILTERS)
    add_output_options(listing)

    for name, func, help, examples in (
        ("show", _show, "Show a run: status, script, params, metrics, files.", ["ID", "ID --json"]),
        ("logs", _logs, "Print a run's log (--follow: until it ends).", ["ID", "ID --follow"]),
        ("cancel", _cancel, "Stop a run.", ["ID"]),
        (
            "download",
            _download,
            "Copy a run's outputs (or one file of them).",
            ["ID", "ID outputs/model.pkl --dest ."],
        ),
        (
            "metrics",
            _metrics,
            "List the metric values a run logged.",
            ["ID", "ID --name acc --json"],
        ),
    ):
        command = add_command(
            commands, name, func, help=help, examples=[f"mlmagic run {name} {e}" for e in examples]
        )
        run_id = command.add_argument("run_id", metavar="ID", help="The run's id.")
        completion.complete_with(run_id, completion.runs)
        if name == "show":
            add_output_options(command)
        elif name == "logs":
            command.add_argument("-f", "--follow", action="store_true", help="Follow a live run.")
        elif name == "download":
            command.add_argument(
                "path",
                nargs="?",
                default="outputs",
                help="outputs/... or logs/... (default: outputs).",
            )
            command.add_argument("--dest", default=".", help="Where to copy it (default: .).")
        elif name == "metrics":
            command.add_argument("--name", help="Only this metric.")
            command.add_argument("--json", action="store_true", help="Print JSON, for scripts.")


def _action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    """The action of option ``dest`` in ``parser``."""
    return next(action for action in parser._actions if action.dest == dest)
