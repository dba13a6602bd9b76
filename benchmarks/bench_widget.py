"""A 200,000-line run under the notebook widget in a real browser, next to the same run without it.

Both run the same script (it prints 200,000 lines) in the same cached image, from the same
kernel of a JupyterLab notebook that headless Chromium has open, in one session:

- widget: ``run = %submit big.py --env ... --wait``: the RunView follows the run's event
  stream and renders to the browser (at most ~10 updates a second);
- plain: ``ws.submit(...)`` then ``run.wait()``: the same event stream, nothing displayed.

Each figure is the cell's own wall time from submit until the run is over and every event
has been consumed. Also counted: the WebSocket frames and bytes the browser received during
each cell, whether "IOPub message rate exceeded" appeared, and the size of the notebook
saved afterwards (widget state and outputs only; no log text).

Usage: ``MLMAGIC_CPU_BASE_IMAGE=mlmagic-base:bookworm python benchmarks/bench_widget.py``
(needs the Docker engine, Chromium at /usr/bin/chromium and ``pip install -e '.[test]'``;
prints a table and writes ``benchmarks/results/widget.md``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import machine, update_row, update_section

from tests.e2e.lab import JupyterLab, chromium, new_notebook, run_cell

BIG = """\
for i in range({lines}):
    print(f"line {{i:06d}}: the quick brown fox jumps over the lazy dog", flush=False)
"""

WIDGET_CELL = """\
import time
t0 = time.perf_counter()
run = %submit big.py --env bench-env --experiment widget --wait
print(f"RESULT widget {time.perf_counter() - t0:.3f} {run.details['duration']:.3f}")
"""

PLAIN_CELL = """\
import time
from mlmagic import Workspace
t0 = time.perf_counter()
plain = Workspace.current().submit("big.py", "bench-env", experiment="plain")
plain.wait()
print(f"RESULT plain {time.perf_counter() - t0:.3f} {plain.details['duration']:.3f}")
"""

RESULT = re.compile(r"RESULT (\w+) ([\d.]+) ([\d.]+)")


class Frames:
    """WebSocket frames the page receives (the kernel's messages, widget updates)."""

    def __init__(self, page: Any) -> None:
        self.count = 0
        self.bytes = 0
        page.on("websocket", self._socket)

    def _socket(self, socket: Any) -> None:
        socket.on("framereceived", self._frame)

    def _frame(self, payload: Any) -> None:
        self.count += 1
        self.bytes += len(payload)


def measure(page: Any, frames: Frames, cell: str) -> dict[str, float]:
    before = (frames.count, frames.bytes)
    done = run_cell(page, cell, timeout=900)
    text = done.locator(".jp-OutputArea").inner_text()
    found = RESULT.search(text)
    if found is None:
        raise RuntimeError(f"No result in the cell's output:\n{text[-2000:]}")
    return {
        "cell_s": float(found.group(2)),
        "run_s": float(found.group(3)),
        "frames": frames.count - before[0],
        "megabytes": (frames.bytes - before[1]) / 1e6,
    }


def _commit() -> str:
    """The commit measured (runs of different widget code sit side by side in the results)."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _with_earlier_runs(out: Path, lines: int, text: str) -> str:
    """The results file with this run first and every earlier run kept below it."""
    earlier = ""
    if out.exists():
        previous = out.read_text().split("\n", 1)[-1].strip()
        previous = previous.replace("## Earlier runs\n\n", "", 1)
        previous = re.sub(r"^## .*earlier runs.*\n\n", "", previous, flags=re.M)
        earlier = f"\n## Earlier runs\n\n{previous}\n"
    return f"# The run widget with a {lines:,}-line log\n\n{text}\n{earlier}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "widget.md"))
    args = parser.parse_args()

    results: dict[str, list[dict[str, float]]] = {"widget": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "big.py").write_text(BIG.format(lines=args.lines))
        with JupyterLab(project, Path(tmp) / "jupyterlab") as lab, chromium() as browser:
            page = browser.new_context(viewport={"width": 1440, "height": 960}).new_page()
            frames = Frames(page)
            path = new_notebook(page, lab)
            run_cell(page, "%load_ext mlmagic")
            run_cell(page, "%%environment bench-env\nsix\n", timeout=600)
            for i in range(args.repeat):
                # Alternate, so drift on the machine falls on both.
                order = ["widget", "plain"] if i % 2 == 0 else ["plain", "widget"]
                for name in order:
                    cell = WIDGET_CELL if name == "widget" else PLAIN_CELL
                    results[name].append(measure(page, frames, cell))
                    print(name, results[name][-1], flush=True)
            iopub = "IOPub message rate exceeded" in page.content()
            page.keyboard.press("Control+s")
            time.sleep(2)
            notebook_kb = (lab.root / path).stat().st_size / 1024

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    widget, plain = median("widget", "cell_s"), median("plain", "cell_s")
    rows = [
        "| | cell s (median) | run s (container) | browser frames | browser MB |",
        "|---|---|---|---|---|",
    ]
    for name in ("widget", "plain"):
        rows.append(
            f"| {name} | {median(name, 'cell_s'):.2f} | {median(name, 'run_s'):.2f} | "
            f"{median(name, 'frames'):.0f} | {median(name, 'megabytes'):.2f} |"
        )
    summary = [
        f"{args.lines:,} lines, {args.repeat} runs each, alternating, in one JupyterLab session "
        f"({os.cpu_count()} CPUs; headless Chromium and the engine on the same machine).",
        "",
        *rows,
        "",
        f"widget / plain cell time: {widget / plain:.2f}",
        f'"IOPub message rate exceeded" seen: {"yes" if iopub else "no"}',
        f"saved notebook: {notebook_kb:.0f} KiB ({args.repeat} widgets of {args.lines:,} lines)",
    ]
    summary.append(f"Machine: {machine()} (shared). Code: {_commit()}.")
    text = "\n".join(summary)
    print(text)
    Path(args.out).write_text(_with_earlier_runs(Path(args.out), args.lines, text))
    frames = median("widget", "frames")
    update_row(
        "bench_widget.py",
        f"{widget / plain:.2f}x, {frames:.0f} frames, IOPub limit hit: {'yes' if iopub else 'no'}",
    )
    update_section("bench_widget", text)


if __name__ == "__main__":
    main()
