"""Soak: many runs submitted from several processes at once while a service is scored.

One workspace, on the docker (default) or local target:

1. an environment is built and a trivial model deployed as a service;
2. ``--processes`` worker processes (``spawn``) each submit their share of ``--runs``
   runs at once, then wait for them; every run prints ``--lines`` numbered lines;
3. meanwhile a thread of this process scores the service without pause;
4. then the checks: ``PRAGMA integrity_check`` of the workspace database is ``ok``, every
   run is terminal and Completed, every run's log holds exactly its numbered lines, no
   scoring request failed, and no container of the workspace is left.

Usage::

    MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/soak.py
    python benchmarks/soak.py --runs 8 --lines 200 --json   # the docker-tier test's size

It prints a table (or, with ``--json``, one JSON object) and exits non-zero when a check
fails; without ``--json`` it writes ``benchmarks/results/soak.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mlmagic import Environment, Workspace

SCRIPT = "import sys\nn = int(sys.argv[1])\nfor i in range(n):\n    print('line', i)\n"
SCORE = (
    "import json\n\ndef init():\n    pass\n\n"
    "def run(raw_data):\n    return {'sum': sum(json.loads(raw_data))}\n"
)
RESULTS = Path(__file__).parent / "results" / "soak.md"


def _worker(root: str, project: str, count: int, lines: int, ids: Any) -> None:
    """Submit ``count`` runs at once, then wait for each (a process of its own)."""
    ws = Workspace(root)
    runs = [
        ws.submit("loud.py", "soak-env", source_dir=project, args=[str(lines)])
        for _ in range(count)
    ]
    for run in runs:
        run.wait(timeout=1800)
        ids.put(run.id)


def _score(service: Any, stop: threading.Event, counts: dict[str, int]) -> None:
    while not stop.is_set():
        try:
            answer = service.run([1, 2, 3])
            counts["ok" if answer == {"sum": 6} else "wrong"] += 1
        except Exception:  # every failure counts, whatever it is
            counts["failed"] += 1


def _log_complete(text: str, lines: int) -> bool:
    return text.splitlines() == [f"line {i}" for i in range(lines)]


def soak(root: Path, project: Path, runs: int, processes: int, lines: int) -> dict[str, Any]:
    """Do the soak in the workspace at ``root``; return what was measured and checked."""
    ws = Workspace(root)
    Environment.from_text("soak-env", "six\n").build(ws, show_output=False)
    (project / "loud.py").write_text(SCRIPT)
    app = project / "app"
    app.mkdir()
    (app / "score.py").write_text(SCORE)
    weights = project / "weights.json"
    weights.write_text("[1]")
    model = ws.models.register("soak-model", weights)
    service = ws.deploy(
        "soak-svc", models=[model], entry_script="score.py", environment="soak-env", source_dir=app
    )
    counts = {"ok": 0, "wrong": 0, "failed": 0}
    stop = threading.Event()
    scorer = threading.Thread(target=_score, args=(service, stop, counts), daemon=True)
    context = multiprocessing.get_context("spawn")
    ids = context.Queue()
    shares = [runs // processes + (1 if i < runs % processes else 0) for i in range(processes)]
    workers = [
        context.Process(target=_worker, args=(str(root), str(project), share, lines, ids))
        for share in shares
    ]
    started = time.perf_counter()
    scorer.start()
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        stop.set()
        scorer.join()
        elapsed = time.perf_counter() - started
        service.delete()
    with sqlite3.connect(root / "mlmagic.db") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    records = ws.store.runs()
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.status.value] = statuses.get(record.status.value, 0) + 1
    complete = sum(_log_complete(ws.runs.get(r.id).logs(), lines) for r in records)
    left = [c for c in _containers(ws)]
    return {
        "runs": runs,
        "processes": processes,
        "lines": lines,
        "target": ws.resolve_target(None),
        "seconds": round(elapsed, 1),
        "workers_ok": all(w.exitcode == 0 for w in workers),
        "recorded": len(records),
        "statuses": statuses,
        "all_terminal": all(r.status.is_terminal for r in records),
        "logs_complete": complete,
        "integrity_check": integrity,
        "requests": counts,
        "containers_left": len(left),
    }


def _containers(ws: Workspace) -> list[str]:
    """Containers of the workspace the engine still holds (docker target only)."""
    if ws.resolve_target(None) != "docker":
        return []
    client = ws.engine._client  # the benchmark looks behind the engine boundary
    found = client.containers.list(all=True, filters={"label": f"mlmagic.workspace={ws.root}"})
    return [c.id for c in found]


def passed(result: dict[str, Any]) -> bool:
    """Whether every check of the soak holds."""
    return (
        result["workers_ok"]
        and result["recorded"] == result["runs"]
        and result["statuses"] == {"Completed": result["runs"]}
        and result["logs_complete"] == result["runs"]
        and result["integrity_check"] == "ok"
        and result["requests"]["ok"] > 0
        and result["requests"]["failed"] == result["requests"]["wrong"] == 0
        and result["containers_left"] == 0
    )


def report(result: dict[str, Any]) -> str:
    """The result as the Markdown kept in ``results/soak.md``."""
    requests = result["requests"]
    rows = [
        ("runs submitted (processes at once)", f"{result['runs']} ({result['processes']})"),
        ("target", result["target"]),
        ("lines printed per run", result["lines"]),
        ("wall time, submit to last run's end", f"{result['seconds']} s"),
        ("runs recorded", result["recorded"]),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items()))),
        ("logs complete (every numbered line)", f"{result['logs_complete']} / {result['runs']}"),
        ("PRAGMA integrity_check", result["integrity_check"]),
        ("scoring requests ok / wrong / failed", "{ok} / {wrong} / {failed}".format(**requests)),
        ("run containers left", result["containers_left"]),
        ("verdict", "pass" if passed(result) else "FAIL"),
    ]
    machine = f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}"
    lines = ["# Soak", "", f"Machine: {machine}.", "", "| check | result |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print JSON; write no report")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        result = soak(Path(tmp) / ".mlmagic", project, args.runs, args.processes, args.lines)
    if args.json:
        print(json.dumps(result))
    else:
        text = report(result)
        print(text)
        RESULTS.write_text(text)
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
