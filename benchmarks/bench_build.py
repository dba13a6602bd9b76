"""Environment builds: the first build, a rebuild after a one-line change, a cache hit;
mlmagic next to the Dockerfile a user would write by hand, in one run.

The hand-written alternative is a venv and ``pip install -r requirements.txt`` in one
``RUN``, built with ``docker build`` (BuildKit). Both build the same requirements on the
same base image:

- first: ``scikit-learn==1.5.2`` and ``pandas>=2`` on a base image made for this run (a
  copy of the base with one file of its own), so no build of an earlier run or of anybody
  else can be a cache hit; the machine's BuildKit cache is left alone (it is shared), so
  uv's cache mount may already hold the wheels, for both builds alike;
- one-line change: the same plus ``tqdm`` (mlmagic keeps the layers of the pinned
  packages, see ``build/dockerfile.py``; the hand-written file reinstalls everything);
- again: the changed definition a second time (mlmagic: one image lookup).

Then the image stays a pure function of its definition: the changed definition is built
once more on a second fresh base, with nothing built before it, and its resolved packages
must equal those of the rebuild. uv's own lines of the rebuild show what its cache served.

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_build.py``
(several minutes; writes ``results/build.md`` and its section of ``README.md``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import machine, update_row, update_section

from mlmagic import Environment, Workspace
from mlmagic.build.context import host_ca_bundle
from mlmagic.config import MLMagic
from mlmagic.events import BuildEventKind

FIRST = "scikit-learn==1.5.2\npandas>=2\n"
CHANGED = FIRST + "tqdm\n"
DOCKER = ["/usr/bin/docker"] if Path("/usr/bin/docker").exists() else ["docker"]
HERE = Path(__file__).resolve().parent


def docker(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [*DOCKER, *args],
        check=True,
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    ).stdout


def fresh_base(base: str) -> str:
    """A base image of its own: ``base`` plus one file, so nothing built before matches."""
    tag = f"mlmagic-bench-base:{secrets.token_hex(4)}"
    docker("build", "-q", "-t", tag, "-", stdin=f"FROM {base}\nRUN echo {tag} > /etc/bench\n")
    return tag


def mlmagic_build(ws: Workspace, text: str) -> tuple[float, Environment, list[str]]:
    log: list[str] = []
    started = time.perf_counter()
    events = ws.environments.build(Environment.from_text("digits-env", text))
    try:
        while True:
            event = next(events)
            if event.kind is BuildEventKind.LOG and event.message:
                log.append(event.message)
    except StopIteration as stop:
        env: Environment = stop.value
    return time.perf_counter() - started, env, log


def plain_build(context: Path, base: str, text: str) -> float:
    (context / "requirements.txt").write_text(text)
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY requirements.txt /requirements.txt\n"
        "RUN --mount=type=secret,id=ca,target=/ca.pem "
        "python3 -m venv /env && PIP_CERT=/ca.pem /env/bin/pip install -r /requirements.txt\n"
    )
    started = time.perf_counter()
    docker("build", "-q", "--secret", f"id=ca,src={host_ca_bundle()}", "-t", "bench-plain-digits",
           str(context))  # fmt: skip
    return time.perf_counter() - started


def workspace(root: Path, base: str) -> Workspace:
    config = MLMagic()
    config.cpu_base_image = base
    return Workspace(root, config=config)


def main() -> None:
    base = os.environ.get("MLMAGIC_CPU_BASE_IMAGE", "python:3.11-slim")
    made: list[str] = []
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            first_base, second_base = fresh_base(base), fresh_base(base)
            made += [first_base, second_base]
            ws = workspace(Path(tmp) / "a" / ".mlmagic", first_base)
            ours_first, env1, _ = mlmagic_build(ws, FIRST)
            ours_change, env2, change_log = mlmagic_build(ws, CHANGED)
            ours_again, _, _ = mlmagic_build(ws, CHANGED)
            made += [str(env1.image), str(env2.image)]
            context = Path(tmp) / "plain"
            context.mkdir()
            plain_first = plain_build(context, first_base, FIRST)
            plain_change = plain_build(context, first_base, CHANGED)
            plain_again = plain_build(context, first_base, CHANGED)
            made.append("bench-plain-digits")
            alone = workspace(Path(tmp) / "b" / ".mlmagic", second_base)
            _, env_alone, _ = mlmagic_build(alone, CHANGED)
            made.append(str(env_alone.image))
            pure = env_alone.packages == env2.packages and bool(env2.packages)
    finally:
        for image in made:
            subprocess.run([*DOCKER, "rmi", "-f", image], capture_output=True)
    uv_lines = [line for line in change_log if any(w in line for w in ("Resolved", "Prepared",
                "Installed", "Downloaded", "CACHED"))]  # fmt: skip
    rows = [
        "| | mlmagic s | docker build (pip) s |",
        "|---|---|---|",
        f"| first build | {ours_first:.1f} | {plain_first:.1f} |",
        f"| after adding one line | {ours_change:.1f} | {plain_change:.1f} |",
        f"| change / first | **{ours_change / ours_first:.2f}** | "
        f"{plain_change / plain_first:.2f} |",
        f"| same definition again | {ours_again:.3f} | {plain_again:.3f} |",
    ]
    text = "\n".join(
        [
            f"Requirements: {FIRST.strip().replace(chr(10), ', ')}, then + tqdm; base "
            f"{base} (a fresh copy per run). Goal: change / first ≤ 0.3.",
            "",
            *rows,
            "",
            f"Pure function of the definition: the changed definition built alone on a "
            f"fresh base resolves to the same packages as the rebuild: "
            f"{'yes' if pure else 'NO'}.",
            "",
            "uv in the rebuild (its cache mount serves what it does not download):",
            "",
            *[f"    {line.strip()}" for line in uv_lines[-8:]],
            "",
            f"Machine: {machine()} (load {load_before:.1f} at the start; shared).",
        ]
    )
    print(text)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "build.md").write_text(f"# bench_build\n\n{text}\n")
    update_row("bench_build.py rebuild", f"{ours_change / ours_first:.2f}x (pure: {pure})")
    update_row("bench_build.py first build", f"{ours_first / plain_first:.2f}x")
    update_section("bench_build", text)


if __name__ == "__main__":
    main()
