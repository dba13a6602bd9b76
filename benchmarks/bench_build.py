"""Cold build and cache hit of an environment, next to a hand-written Dockerfile.

The alternative a user would pick is a Dockerfile that ``pip install``s a requirements
file, built with ``docker build``. Both build the same requirements on the same base image
in one run:

- cold: no image and no build cache (``docker builder prune -af`` first; this empties
  the machine's BuildKit cache);
- again: the same definition a second time (mlmagic: one image lookup; docker: a build
  whose every layer is cached).

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_build.py``
(writes ``benchmarks/results/build.md``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from mlmagic import Environment, Workspace
from mlmagic.build.context import host_ca_bundle

CELL = "scikit-learn==1.5.2\npandas>=2\n"
DOCKER = ["/usr/bin/docker"] if Path("/usr/bin/docker").exists() else ["docker"]


def prune() -> None:
    subprocess.run([*DOCKER, "builder", "prune", "-af"], check=True, capture_output=True)


def mlmagic_build(ws: Workspace) -> float:
    started = time.perf_counter()
    Environment.from_text("digits-env", CELL).build(ws, show_output=False)
    return time.perf_counter() - started


def docker_build(context: Path, base: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            *DOCKER,
            "build",
            "-q",
            "--secret",
            f"id=ca,src={host_ca_bundle()}",
            "-t",
            "bench-plain-digits",
            str(context),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    return time.perf_counter() - started


def main() -> None:
    base = os.environ.get("MLMAGIC_CPU_BASE_IMAGE", "python:3.11-slim")
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "plain"
        context.mkdir()
        (context / "requirements.txt").write_text(CELL)
        # What a user writes by hand (with the proxy's CA mounted, as mlmagic does).
        (context / "Dockerfile").write_text(
            f"FROM {base}\nCOPY requirements.txt /requirements.txt\n"
            "RUN --mount=type=secret,id=ca,target=/ca.pem "
            "python3 -m venv /env && PIP_CERT=/ca.pem /env/bin/pip install -r /requirements.txt\n"
        )
        ws = Workspace(Path(tmp) / ".mlmagic")
        env = Environment.from_text("digits-env", CELL).register(ws)
        assert env.image is not None
        ws.engine.remove_image(env.image)
        ws.engine.remove_image("bench-plain-digits")
        prune()
        ours_cold = mlmagic_build(ws)
        prune()
        plain_cold = docker_build(context, base)
        ours_again = min(mlmagic_build(ws) for _ in range(5))
        plain_again = min(docker_build(context, base) for _ in range(5))
        ws.engine.remove_image("bench-plain-digits")
    lines = [
        f"Cell: {CELL.strip().replace(chr(10), ', ')}; base {base}",
        "",
        "| | mlmagic s | docker build (pip) s | ratio |",
        "|---|---|---|---|",
        f"| cold | {ours_cold:.1f} | {plain_cold:.1f} | {ours_cold / plain_cold:.2f} |",
        f"| again (best of 5) | {ours_again:.3f} | {plain_again:.3f} | "
        f"{ours_again / plain_again:.3f} |",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "build.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
