"""A one-line script submitted, next to a plain ``docker run`` of it.

Both start the same script in the same (cached) image on the same machine, in one run,
alternating:

- to the first line: ``ws.submit(...)`` until the first LOG event arrives from
  ``run.events()`` (snapshot, record, resolve the cached image, create and start the
  container, launcher), against ``docker run --rm IMAGE python -u script.py`` until its
  first stdout line;
- the whole cell: ``%submit first.py --env bench-env --wait`` run by an
  ``InteractiveShell`` (the widget included, fed to the run's end), against the whole
  ``docker run --rm`` until it exits. Goal: at most 1.3x.

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_submit.py``
(prints a table and writes ``benchmarks/results/submit.md`` and its README section).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Pair, machine, report_ratios

from mlmagic import Environment, Workspace
from mlmagic.events import RunEventKind

SCRIPT = "print('first line', flush=True)\n"


def mlmagic_first_line(ws: Workspace, project: Path) -> float:
    started = time.perf_counter()
    run = ws.submit("first.py", "bench-env", source_dir=project)
    for event in run.events():
        if event.kind is RunEventKind.LOG:
            elapsed = time.perf_counter() - started
            break
    run.wait()
    return elapsed


def cell_whole(shell: object, project: Path) -> float:
    """``%submit first.py --env bench-env --wait`` as a notebook cell runs it."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run = shell.run_line_magic("submit", "first.py --env bench-env --wait")  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    assert run.status.value == "Completed" and "first line" in run.logs()
    return elapsed


def docker_whole(image: str, project: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "-v", f"{project}:/src", "-w", "/src", image, "python",
         "first.py"],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def docker_first_line(image: str, project: Path) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{project}:/src",
            "-w",
            "/src",
            image,
            "python",
            "-u",
            "first.py",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.wait()
    return elapsed


def main() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "first.py").write_text(SCRIPT)
        ws = Workspace(project / ".mlmagic")
        env = Environment.from_text("bench-env", "six\n").build(ws, show_output=False)
        assert env.image is not None
        os.chdir(project)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "mlmagic")
        # Warm every path once (page cache, engine, imports), then alternate.
        mlmagic_first_line(ws, project)
        docker_first_line(env.image, project)
        cell_whole(shell, project)
        docker_whole(env.image, project)
        times: dict[str, list[float]] = {k: [] for k in ("first", "docker first", "cell", "run")}
        for _ in range(args.repeat):
            times["first"].append(mlmagic_first_line(ws, project))
            times["docker first"].append(docker_first_line(env.image, project))
            times["cell"].append(cell_whole(shell, project))
            times["run"].append(docker_whole(env.image, project))
        os.chdir(Path(tmp).parent)
    report_ratios(
        "submit",
        times,
        [
            Pair(
                "`%submit first.py --wait`, whole cell (widget included)",
                "cell",
                "`docker run --rm` until it exits",
                "run",
                "bench_submit.py whole cell",
            ),
            Pair(
                "`ws.submit` → first line",
                "first",
                "`docker run` → first line",
                "docker first",
                "bench_submit.py first line",
                goal=False,
            ),
        ],
        f"{args.repeat} runs each, alternating; goal: whole cell ≤ 1.3x. Machine: "
        f"{machine()} (load {load_before:.1f} at the start; shared).",
        places=3,
    )


if __name__ == "__main__":
    main()
