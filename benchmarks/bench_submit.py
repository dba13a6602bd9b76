"""Time from submitting a run to its first output line, next to a plain ``docker run``.

Both start the same script in the same (cached) image on the same machine, in one run:

- mlmagic: ``ws.submit(...)`` until the first LOG event arrives from ``run.events()``
  (snapshot, record, resolve the cached image, create and start the container, launcher);
- docker: ``docker run --rm IMAGE python -u script.py`` until its first stdout line.

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_submit.py``
(prints a table and writes ``benchmarks/results/submit.md``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "first.py").write_text(SCRIPT)
        ws = Workspace(Path(tmp) / ".mlmagic")
        env = Environment.from_text("bench-env", "six\n").build(ws, show_output=False)
        assert env.image is not None
        # Warm both paths once (page cache, engine), then alternate.
        mlmagic_first_line(ws, project)
        docker_first_line(env.image, project)
        ours, plain = [], []
        for _ in range(args.repeat):
            ours.append(mlmagic_first_line(ws, project))
            plain.append(docker_first_line(env.image, project))
    rows = [
        ("mlmagic %submit → first line", statistics.median(ours), min(ours)),
        ("docker run → first line", statistics.median(plain), min(plain)),
    ]
    ratio = statistics.median(ours) / statistics.median(plain)
    lines = [
        "| path | median s | best s |",
        "|---|---|---|",
        *[f"| {name} | {median:.3f} | {best:.3f} |" for name, median, best in rows],
        "",
        f"ratio mlmagic / docker run (median): {ratio:.2f}  ({args.repeat} runs each)",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "submit.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
