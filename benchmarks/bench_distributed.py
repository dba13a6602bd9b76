"""Time from submitting a distributed run to every rank running, next to bare ``docker run``s.

For 1, 2 and 4 nodes (one process each), in one run on one machine:

- mlmagic: ``ws.submit(..., distributed=PyTorchConfiguration(node_count=N, ...))`` (snapshot,
  record, cached image, the run's network, N labelled containers, node launchers);
- docker: a shell loop that starts the same N containers of the same image at once
  (``for i in ...; do docker run --rm ... & done``); once on the default bridge (the
  issue's baseline), once on a user-defined network as the gang's nodes need (to find
  each other by name), which costs the engine more per container.

Each rank's first statement prints the time (this machine's clock, which its containers
share), so both sides are timed to the same event, every rank running, with nothing of
how its line travels. How long the lines then take to reach the caller (``run.events()``,
which follows the run's log file, next to the ``docker run`` clients' own output) is
reported beside it.

It also measures how long a gang of 2 nodes x 2 processes takes to stop every other rank
once one rank fails (from that rank's exit record to the last stopped rank's).

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_distributed.py``
(prints the tables, writes ``benchmarks/results/distributed.md`` and updates the README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from report import machine, update_row, update_section

from mlmagic import Environment, PyTorchConfiguration, Workspace
from mlmagic.events import RunEventKind

# The rank's own clock when it runs: repr keeps every digit.
UP = "import time\nprint('up', repr(time.time()), flush=True)\n"
FAIL = (
    "import os, sys, time\n"
    "print('up', flush=True)\n"
    "time.sleep(2)\n"
    "if os.environ['RANK'] == '3':\n"
    "    sys.exit(1)\n"
    "time.sleep(300)\n"
)


def _said_up(line: str) -> float | None:
    """The time in a rank's ``up T`` line (labelled ``[rank K] up T`` by mlmagic)."""
    words = line.split()
    if len(words) >= 2 and words[-2] == "up":
        return float(words[-1])
    return None


def mlmagic_start(ws: Workspace, project: Path, nodes: int) -> tuple[float, float]:
    """Seconds from submit to every rank running, and to every rank's line at the caller."""
    wall, started = time.time(), time.perf_counter()
    layout = PyTorchConfiguration(process_count=nodes, node_count=nodes)
    run = ws.submit("up.py", "bench-env", source_dir=project, distributed=layout)
    ranks: list[float] = []
    for event in run.events():
        said = _said_up(event.message) if event.kind is RunEventKind.LOG else None
        if said is not None:
            ranks.append(said)
            if len(ranks) == nodes:
                delivered = time.perf_counter() - started
                break
    run.wait()
    return max(ranks) - wall, delivered


def docker_start(image: str, project: Path, nodes: int, network: str = "") -> tuple[float, float]:
    """The same two times for a shell loop of ``docker run``s."""
    joined = f"--network {network} " if network else ""
    loop = (
        f"for i in $(seq {nodes}); do docker run --rm {joined}-v {project}:/src -w /src "
        f"{image} python -u up.py & done; wait"
    )
    wall, started = time.time(), time.perf_counter()
    process = subprocess.Popen(["bash", "-c", loop], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ranks = [_said_up(process.stdout.readline()) or float("nan") for _ in range(nodes)]
    delivered = time.perf_counter() - started
    process.wait()
    return max(ranks) - wall, delivered


def stop_after_failure(ws: Workspace, project: Path) -> float:
    layout = PyTorchConfiguration(process_count=4, node_count=2)
    run = ws.submit("fail.py", "bench-env", source_dir=project, distributed=layout).wait()
    records = [json.loads(p.read_text()) for p in (run.paths.system / "gang").glob("rank-*")]
    failed = next(r for r in records if not r["stopped"])
    return max(r["ended"] for r in records) - failed["ended"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "up.py").write_text(UP)
        (project / "fail.py").write_text(FAIL)
        ws = Workspace(Path(tmp) / ".mlmagic")
        env = Environment.from_text("bench-env", "six\n").build(ws, show_output=False)
        assert env.image is not None
        # Warm both paths once (page cache, engine), then alternate.
        mlmagic_start(ws, project, 1)
        docker_start(env.image, project, 1)
        network = f"mlmagic-bench-{Path(tmp).name}"
        subprocess.run(["docker", "network", "create", network], check=True, capture_output=True)
        try:
            for nodes in args.nodes:
                ours, plain, joined = [], [], []
                for _ in range(args.repeat):
                    ours.append(mlmagic_start(ws, project, nodes))
                    plain.append(docker_start(env.image, project, nodes))
                    joined.append(docker_start(env.image, project, nodes, network))
                rows.append((nodes, *(_medians(x) for x in (ours, plain, joined))))
        finally:
            subprocess.run(["docker", "network", "rm", network], capture_output=True)
        stops = [stop_after_failure(ws, project) for _ in range(3)]
    ratios = ", ".join(f"{n} node{'s' * (n > 1)} {o[0] / p[0]:.2f}x" for n, o, p, _ in rows)
    lines = [
        "| nodes | mlmagic: every rank running | docker run loop | ratio | loop on a "
        "user-defined network | ratio | every line at the caller: mlmagic, loop | ratio |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {n} | {o[0]:.3f} s | {p[0]:.3f} s | **{o[0] / p[0]:.2f}** | {j[0]:.3f} s | "
            f"{o[0] / j[0]:.2f} | {o[1]:.3f} s, {p[1]:.3f} s | {o[1] / p[1]:.2f} |"
            for n, o, p, j in rows
        ],
        "",
        f"Medians of {args.repeat} runs of each, alternating; goal: ratio at most 1.5. "
        "A failing rank (2 nodes x 2 processes): every other rank stopped "
        f"{statistics.median(stops):.2f} s after it failed (median of 3, worst "
        f"{max(stops):.2f} s; goal: under 10 s). Machine: {machine()} (load "
        f"{load_before:.1f} at the start; shared).",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "distributed.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    update_row("bench_distributed.py", ratios)
    update_section("bench_distributed", text)


def _medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


if __name__ == "__main__":
    main()
