"""Listings of a large workspace: how their cost grows from 100 to 10,000 runs.

Makes a workspace of N runs (N/10 environment versions) through the store and the run's
own files, as finished runs leave them (params.json and metrics.jsonl written with
``mlmagic_run``), without starting a container; then times, median of several calls each:

- ``ws.runs.list()`` (first call: it reads every run's files once and caches the summaries;
  then the same listing again, which the workspace keeps until a run changes; the listing
  after a value it shows changed, and after a new run, which patch the kept listing),
  ``%runs`` in an ``InteractiveShell`` (the same ways, and as displayed: the frame's text
  and HTML), ``ws.runs.list("digits")`` (an experiment of
  100 runs whatever N is), ``ws.environments.list()``, ``mlmagic run list`` (in process:
  the table of the newest 20, and ``--json`` of every run; and as a whole command with its
  interpreter start),
- the panel's poll: the server's work for ``GET runs`` (first, full) and then for an idle
  poll with ``since`` (nothing changed).

Prints a table with each time's ratio to its goal and its growth from 100 runs, and
rewrites the section of ``benchmarks/README.md`` between its markers.

    python benchmarks/bench_scale.py [--sizes 100 1000 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import machine, update_row, update_section

import mlmagic_run
from mlmagic.events import Status
from mlmagic.records import RunRecord
from mlmagic.run.config import RunConfig
from mlmagic.run.paths import RunPaths
from mlmagic.workspace import Workspace

HERE = Path(__file__).resolve().parent
GOALS_MS = {"list": 100.0, "poll": 10.0}


def make_workspace(root: Path, runs: int) -> Workspace:
    """A workspace with ``runs`` finished runs and ``runs // 10`` environment versions."""
    ws = Workspace(root)
    store = ws.store
    packages = [f"package-{i}==1.{i}.0" for i in range(60)]
    for version in range(runs // 10):
        name = f"env-{version % 20}"
        store.register_environment(
            name,
            {
                "spec": {"format": "pip", "packages": packages, "python": "3.11"},
                "cache_key": f"key-{version}",
                "image": f"mlmagic/{name}:{version}",
                "status": "ready",
                "dockerfile": "FROM mlmagic-base:bookworm\n" + "RUN true\n" * 40,
                "packages": packages,
            },
        )
    start = time.time() - runs
    for i in range(runs):
        experiment = "digits" if i % max(1, runs // 100) == 0 else f"exp-{i % 7}"
        add_finished_run(ws, f"{experiment}_{i:06d}", i, start + i)
    return ws


def add_finished_run(ws: Workspace, run_id: str, i: int = 0, created: float | None = None) -> None:
    """A run as a finished run leaves it: its record, params, five steps of two metrics."""
    experiment = run_id.rsplit("_", 1)[0]
    created = time.time() if created is None else created
    config = RunConfig(
        script="train.py",
        environment="env-0:1",
        source_dir="/src",
        args=("--C", str(i)),
        experiment=experiment,
        name=f"try {i}",
    )
    store = ws.store
    store.insert_run(
        RunRecord(
            id=run_id,
            experiment=experiment,
            status=Status.QUEUED,
            config=config,
            env_name="env-0",
            env_version=1,
            image="mlmagic/env-0:1",
            created=created,
        )
    )
    paths = RunPaths(ws.path("runs", run_id))
    paths.create()
    os.environ["MLMAGIC_METRICS_FILE"] = str(paths.metrics)
    os.environ["MLMAGIC_PARAMS_FILE"] = str(paths.params)
    mlmagic_run.log_params(C=i, kernel="rbf")
    for step in range(5):
        mlmagic_run.log("accuracy", 0.5 + step / 10 + i * 1e-9, step=step)
        mlmagic_run.log("loss", 1.0 / (step + 1), step=step)
    store.start_stage(run_id, "Running", when=created + 0.1)
    store.finish_run(run_id, status="Completed", exit_code=0, ended=created + 0.9)
    for key in ("MLMAGIC_METRICS_FILE", "MLMAGIC_PARAMS_FILE"):
        os.environ.pop(key, None)


def median_ms(
    call: Callable[[], object], repeat: int, before: Callable[[], object] | None = None
) -> float:
    """The median wall time of ``call``; ``before`` runs ahead of each call, untimed."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(root: Path, runs: int, repeat: int) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell

    from mlmagic import cli
    from mlmagic.server.handlers import list_runs

    ws = make_workspace(root, runs)
    assert len(ws.store.runs()) == runs
    times: dict[str, float] = {}
    began = time.perf_counter()
    frame = ws.runs.list()
    times["ws.runs.list() first (fills the cache)"] = (time.perf_counter() - began) * 1000
    assert len(frame) == runs and frame["accuracy"].notna().all(), "metrics were lost"
    times["ws.runs.list()"] = median_ms(ws.runs.list, repeat)
    # The same listing when a run changed since the last one (another process may have
    # written it): a value it lists changes, so the kept listing is patched with that row.
    changed = ws.store.runs(limit=1)[0].id
    codes = itertools.count(1)

    def change() -> None:
        ws.store.update_run(changed, exit_code=next(codes))

    times["ws.runs.list() after a run changed"] = median_ms(ws.runs.list, repeat, before=change)
    times["ws.runs.list() after a new run"] = median_ms(
        ws.runs.list, repeat, before=lambda: add_finished_run(ws, f"new_{next(codes):06d}")
    )
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmagic")
    os.chdir(root.parent)
    times["%runs"] = median_ms(lambda: shell.run_line_magic("runs", ""), repeat)
    times["%runs after a run changed"] = median_ms(
        lambda: shell.run_line_magic("runs", ""), repeat, before=change
    )
    # As a notebook shows it: the text and HTML of the frame (pandas draws only the rows
    # it shows, display.max_rows).
    times["%runs after a run changed, displayed"] = median_ms(
        lambda: shell.display_formatter.format(shell.run_line_magic("runs", "")),
        repeat,
        before=change,
    )
    times['ws.runs.list("digits")'] = median_ms(lambda: ws.runs.list("digits"), repeat)
    times["ws.environments.list()"] = median_ms(ws.environments.list, repeat)

    def cli_list(*extra: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli.main(["run", "list", *extra])

    # Each call is a new process's first listing: nothing kept. The table shows the
    # newest 20 unless --limit; --json lists every run.
    times["mlmagic run list (in process)"] = median_ms(cli_list, repeat)
    times["mlmagic run list --json (in process, every run)"] = median_ms(
        lambda: cli_list("--json"), max(3, repeat // 2)
    )
    command = [sys.executable, "-m", "mlmagic.cli", "run", "list"]
    times["mlmagic run list (whole command)"] = median_ms(
        lambda: subprocess.run(command, check=True, capture_output=True, cwd=root.parent),
        max(3, repeat // 2),
    )
    first = list_runs(ws, experiment=None, limit=100, since=None)
    times["panel poll, first (server work)"] = median_ms(
        lambda: list_runs(ws, experiment=None, limit=100, since=None), repeat
    )
    idle = list_runs(ws, experiment=None, limit=100, since=first["cursor"])
    assert idle["runs"] == [] and not idle["full"], "an idle poll returned rows"
    times["panel poll, idle (server work)"] = median_ms(
        lambda: list_runs(ws, experiment=None, limit=100, since=first["cursor"]), repeat
    )
    return times


def goal(name: str) -> float | None:
    if name.startswith("panel poll, idle"):
        return GOALS_MS["poll"]
    if "first" in name or "whole command" in name or "--json" in name:
        return None
    return GOALS_MS["list"]


def table(results: dict[int, dict[str, float]]) -> str:
    sizes = sorted(results)
    head = ["listing", *[f"{n:,} runs ms" for n in sizes], "goal ms", "ratio to goal"]
    head.append(f"growth {sizes[0]:,}→{sizes[-1]:,}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in results[sizes[0]]:
        cells = [f"{results[n][name]:.3g}" for n in sizes]
        target = goal(name)
        last = results[sizes[-1]][name]
        ratio = f"{last / target:.2f}" if target else "-"
        growth = f"{last / results[sizes[0]][name]:.1f}x"
        lines.append(f"| {name} | {' | '.join(cells)} | {target or '-'} | {ratio} | {growth} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    results = {}
    home = Path.cwd()
    with tempfile.TemporaryDirectory() as folder:
        for runs in args.sizes:
            began = time.perf_counter()
            results[runs] = measure(Path(folder, str(runs), ".mlmagic"), runs, args.repeat)
            print(f"{runs} runs measured in {time.perf_counter() - began:.0f} s", flush=True)
        os.chdir(home)
    where = f"{machine()}, SQLite {sqlite3.sqlite_version}"
    report = f"{table(results)}\n\nMachine: {where}; medians of {args.repeat} calls."
    print(report)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "scale.md").write_text(f"# bench_scale\n\n{report}\n")
    if not args.no_readme and max(results) >= 10_000:
        big = results[max(results)]
        listings = [f"{k} {v:.3g}" for k, v in big.items() if goal(k) == GOALS_MS["list"]]
        update_row(
            "bench_scale.py listings", f"ms at {max(results):,} runs: {'; '.join(listings)}", where
        )
        idle = big["panel poll, idle (server work)"]
        update_row("bench_scale.py idle poll", f"{idle:.3g} ms at {max(results):,} runs", where)
        update_section("bench_scale", report)


if __name__ == "__main__":
    main()
