"""A one-line script run on a Ray compute, next to ``ray job submit`` of it.

Both send the same script to the same cluster (one made by ``ws.computes.up``: a head
and one worker of the same environment image), in one run, alternating:

- to the first line: ``ws.submit(..., compute=...)`` until the first LOG event of
  ``run.events()`` (snapshot, record, submit, the log pump), against ``ray job submit``
  (Ray's own CLI, which submits then tails the log) until the script's line appears;
- to completion: the run's ``wait()`` (outputs copied, record closed) against
  ``ray job submit`` until it exits.

Goal: at most 1.2x. Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python
benchmarks/bench_ray.py`` (needs ``mlmagic[ray]``; starts and removes its cluster; prints a
table and writes ``benchmarks/results/ray.md`` and its README section).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Pair, machine, report_ratios

from mlmagic import Environment, Workspace
from mlmagic.computes.record import Compute
from mlmagic.events import RunEventKind

SCRIPT = "print('first line', flush=True)\n"
LINE = "first line"


def mlmagic_run(ws: Workspace, project: Path) -> tuple[float, float]:
    """Seconds to the first line and to the run's end."""
    started = time.perf_counter()
    run = ws.submit("first.py", "bench-env", compute="bench", source_dir=project)
    first = None
    for event in run.events():
        if event.kind is RunEventKind.LOG and LINE in (event.message or ""):
            first = time.perf_counter() - started
            break
    run.wait()
    assert run.status.value == "Completed", run.error
    assert first is not None
    return first, time.perf_counter() - started


def ray_cli(compute: Compute, project: Path) -> tuple[float, float]:
    """``ray job submit`` of the same script with the same interpreter."""
    token = compute.token()
    assert token is not None
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    started = time.perf_counter()
    process = subprocess.Popen(
        [ray, "job", "submit", "--address", compute.address, "--working-dir", str(project),
         "--entrypoint-resources", '{"mlmagic_worker": 1}', "--",
         compute.python, "-u", "first.py"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    first = None
    for line in process.stdout:
        if first is None and line.strip() == LINE:
            first = time.perf_counter() - started
    code = process.wait()
    assert code == 0 and first is not None, f"ray job submit exited {code}"
    return first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "first.py").write_text(SCRIPT)
        ws = Workspace(Path(tmp) / ".mlmagic")
        env = Environment.from_text("bench-env", "six\n").build(ws, show_output=False)
        compute = ws.computes.up("bench", env, workers=1)
        try:
            # Warm both paths once (package upload cache, imports), then alternate.
            mlmagic_run(ws, project)
            ray_cli(compute, project)
            times: dict[str, list[float]] = {k: [] for k in ("m1", "mend", "r1", "rend")}
            for _ in range(args.repeat):
                first, end = mlmagic_run(ws, project)
                times["m1"].append(first)
                times["mend"].append(end)
                first, end = ray_cli(compute, project)
                times["r1"].append(first)
                times["rend"].append(end)
        finally:
            ws.computes.down("bench")
    report_ratios(
        "ray",
        times,
        [
            Pair(
                "`ws.submit(..., compute=)` → first line",
                "m1",
                "`ray job submit` → first line",
                "r1",
                "bench_ray.py first line",
            ),
            Pair(
                "`ws.submit(..., compute=)` → run closed",
                "mend",
                "`ray job submit` → exits",
                "rend",
                "bench_ray.py completion",
            ),
        ],
        f"{args.repeat} runs each, alternating, on a compute of a head and one worker "
        f"container; goal ≤ 1.2x. Machine: {machine()} (load {load_before:.1f} at the "
        "start; shared).",
    )


if __name__ == "__main__":
    main()
