"""Time from submitting a distributed run to every rank running, next to bare ``docker run``s.

For 1, 2 and 4 nodes (one process each), in one run on one machine:

- mlmagic: ``ws.submit(..., distributed=PyTorchConfiguration(node_count=N, ...))`` until
  every rank's first line (``[rank K] up``) arrived from ``run.events()`` (snapshot,
  record, cached image, the run's network, N labelled containers, node launchers);
- docker: a shell loop that starts the same N containers of the same image at once
  (``for i in ...; do docker run --rm ... & done``) until each has printed its first line;
  once on the default bridge, once on a user-defined network as the gang's nodes need (to
  find each other by name), which costs the engine more per container.

It also measures how long a gang of 2 nodes x 2 processes takes to stop every other rank
once one rank fails (from that rank's exit record to the last stopped rank's).

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_distributed.py``
(prints the tables and writes ``benchmarks/results/distributed.md``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mlmagic import Environment, PyTorchConfiguration, Workspace
from mlmagic.events import RunEventKind

UP = "print('up', flush=True)\n"
FAIL = (
    "import os, sys, time\n"
    "print('up', flush=True)\n"
    "time.sleep(2)\n"
    "if os.environ['RANK'] == '3':\n"
    "    sys.exit(1)\n"
    "time.sleep(300)\n"
)


def mlmagic_all_running(ws: Workspace, project: Path, nodes: int) -> float:
    started = time.perf_counter()
    layout = PyTorchConfiguration(process_count=nodes, node_count=nodes)
    run = ws.submit("up.py", "bench-env", source_dir=project, distributed=layout)
    seen = 0
    for event in run.events():
        if event.kind is RunEventKind.LOG and event.message.endswith("] up"):
            seen += 1
            if seen == nodes:
                elapsed = time.perf_counter() - started
                break
    run.wait()
    return elapsed


def docker_all_running(image: str, project: Path, nodes: int, network: str = "") -> float:
    joined = f"--network {network} " if network else ""
    loop = (
        f"for i in $(seq {nodes}); do docker run --rm {joined}-v {project}:/src -w /src "
        f"{image} python -u up.py & done; wait"
    )
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", loop], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for _ in range(nodes):
        process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.wait()
    return elapsed


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
        mlmagic_all_running(ws, project, 1)
        docker_all_running(env.image, project, 1)
        network = f"mlmagic-bench-{Path(tmp).name}"
        subprocess.run(["docker", "network", "create", network], check=True, capture_output=True)
        try:
            for nodes in args.nodes:
                ours, plain, joined = [], [], []
                for _ in range(args.repeat):
                    ours.append(mlmagic_all_running(ws, project, nodes))
                    plain.append(docker_all_running(env.image, project, nodes))
                    joined.append(docker_all_running(env.image, project, nodes, network))
                medians = (statistics.median(x) for x in (ours, plain, joined))
                rows.append((nodes, *medians))
        finally:
            subprocess.run(["docker", "network", "rm", network], capture_output=True)
        stops = [stop_after_failure(ws, project) for _ in range(3)]
    lines = [
        "| nodes | mlmagic submit → every rank running | docker run loop | ratio | docker run "
        "loop on a user-defined network | ratio |",
        "|---|---|---|---|---|---|",
        *[
            f"| {n} | {ours:.3f} s | {plain:.3f} s | {ours / plain:.2f} | {joined:.3f} s | "
            f"{ours / joined:.2f} |"
            for n, ours, plain, joined in rows
        ],
        "",
        f"{args.repeat} runs of each; goal: ratio at most 1.5.",
        "",
        "A failing rank (2 nodes x 2 processes): every other rank stopped "
        f"{statistics.median(stops):.2f} s after it failed (median of 3, worst "
        f"{max(stops):.2f} s; goal: under 10 s).",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "distributed.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
