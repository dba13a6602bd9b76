"""Scoring throughput and latency: mlmagic.serve against the Azure ML inference server.

Side by side in one run, on loopback, with the same trivial ``score.py`` and the same
number of worker processes, the two servers take the same load at several concurrencies;
the table gives requests per second, p50 and p99 latency, and the ratio mlmagic / azureml.

    python benchmarks/bench_serve.py                      # 1 and 2 workers; c = 1, 8, 32
    python benchmarks/bench_serve.py --duration 3 --workers 1

The Azure ML server (``azureml-inference-server-http``: Flask under gunicorn) pins its own
Flask and gunicorn, so it is installed into a separate virtual environment, made on first
use and reused after (``--venv``, default ``benchmarks/.venv-azureml``). mlmagic.serve runs
from a copy of ``mlmagic/serve/`` alone, as in an inference image, under this interpreter,
which needs ``uvicorn``. The load comes from ``wrk`` when it is on PATH, else from a small
threaded Python client (``--load``). Every server listens on 127.0.0.1 and is stopped by
its PID.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVE_SOURCE = HERE.parent / "mlmagic" / "serve"

SCORE = """\
import json
import os

weights = None


def init():
    global weights
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.json")) as file:
        weights = json.load(file)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"predictions": [sum(w * x for w, x in zip(weights, row)) for row in rows]}
"""
WEIGHTS = [round(0.1 * i, 1) for i in range(8)]
PAYLOAD = json.dumps({"data": [[1.0] * 8, [2.0] * 8]})
EXPECTED = {"predictions": [sum(WEIGHTS), 2 * sum(WEIGHTS)]}

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, "
    .. "\\"p50_us\\": %%d, \\"p99_us\\": %%d, \\"errors\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class Server:
    """How to start one server under test."""

    name: str
    command: Callable[[int, int], list[str]]
    env: Callable[[int], dict[str, str]]


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_azureml_venv(venv: Path) -> Path:
    """The Python of a virtual environment with azureml-inference-server-http, made if needed."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "azmlinfsrv").exists():
        print(f"Installing azureml-inference-server-http into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "azureml-inference-server-http"],
            check=True,
        )
    return python


def version_in(python: Path | str, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return result.stdout.strip() or "not installed"


def mlmagic_server(work: Path, stack: str) -> Server:
    """mlmagic.serve with one HTTP stack: ``h11`` (with asyncio) or ``httptools`` (uvloop)."""
    loop = "uvloop" if stack == "httptools" else "asyncio"
    fixed = ["--entry", str(work / "score.py"), "--host", "127.0.0.1", "--http", stack]

    def command(port: int, workers: int) -> list[str]:
        options = ["--loop", loop, "--port", str(port), "--workers", str(workers)]
        return [sys.executable, "-m", "mlmagic.serve", *fixed, *options]

    return Server(f"mlmagic ({stack})", command, lambda workers: {})


def azureml_server(work: Path, python: Path) -> Server:
    """The Azure ML inference server, with its worker count from ``WORKER_COUNT``."""
    # azmlinfsrv always binds 0.0.0.0; its own entry point with the host patched to
    # loopback keeps everything else (gunicorn sync workers, logging) as shipped.
    launcher = (
        "import sys, azureml_inference_server_http.amlserver as s; "
        "s.DEFAULT_HOST = '127.0.0.1'; sys.argv[0] = 'azmlinfsrv'; s.run()"
    )

    def command(port: int, workers: int) -> list[str]:
        return [
            str(python),
            "-c",
            launcher,
            "--entry_script",
            str(work / "score.py"),
            "--port",
            str(port),
        ]

    return Server("azureml", command, lambda workers: {"WORKER_COUNT": str(workers)})


def post(port: int, connection: http.client.HTTPConnection | None = None) -> bytes:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/score", PAYLOAD, {"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST /score answered {response.status}: {body[:200]!r}")
    if connection is None or response.will_close:
        conn.close()
    return body


@contextmanager
def running(server: Server, workers: int, work: Path) -> Iterator[int]:
    """Start ``server``, wait until it scores correctly, yield its port, stop it by PID."""
    port = free_port()
    log = work / f"{server.name.split()[0]}-{workers}.log"
    env = {
        **os.environ,
        "AZUREML_MODEL_DIR": str(work / "model"),
        "PYTHONPATH": str(work / "vendored"),
        **server.env(workers),
    }
    with log.open("ab") as sink:
        process = subprocess.Popen(
            server.command(port, workers), cwd=work, env=env, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{server.name} exited; see {log}")
            try:
                if json.loads(post(port)) == EXPECTED:
                    break
            except (OSError, RuntimeError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not answer in 60 s; see {log}")
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load_wrk(port: int, concurrency: int, duration: int, work: Path) -> Measurement:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT % PAYLOAD)
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/score",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:  # wrk exits 0 even when its script fails
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    result = json.loads(lines[0].removeprefix("RESULT "))
    return Measurement(
        result["requests"] / (result["duration_us"] / 1e6),
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        result["errors"],
    )


def load_python(port: int, concurrency: int, duration: int, work: Path) -> Measurement:
    """``concurrency`` threads, each with a keep-alive connection, for ``duration`` s."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def client() -> None:
        nonlocal errors
        mine: list[float] = []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while (start := time.perf_counter()) < deadline:
            try:
                post(port, connection)
                mine.append(time.perf_counter() - start)
            except (OSError, RuntimeError, http.client.HTTPException):
                errors += 1
                connection.close()
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Measurement(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, errors)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(
    results: dict[tuple[int, int, str], Measurement], names: list[str], header: list[str]
) -> str:
    """The Markdown report: one row per (workers, concurrency, mlmagic variant)."""
    lines = [*header, ""]
    lines.append(
        "| workers | concurrency | server | req/s | azureml req/s | req/s ratio | p50 ms "
        "| azureml p50 ms | p50 ratio | p99 ms | azureml p99 ms | p99 ratio | errors |"
    )
    lines.append("|" + "---|" * 13)
    for workers, concurrency in sorted({key[:2] for key in results}):
        base = results[(workers, concurrency, "azureml")]
        for name in names:
            if name == "azureml":
                continue
            m = results[(workers, concurrency, name)]
            lines.append(
                f"| {workers} | {concurrency} | {name} | {m.requests_per_s:.0f} "
                f"| {base.requests_per_s:.0f} | {ratio(m.requests_per_s, base.requests_per_s)} "
                f"| {m.p50_ms:.2f} | {base.p50_ms:.2f} | {ratio(m.p50_ms, base.p50_ms)} "
                f"| {m.p99_ms:.2f} | {base.p99_ms:.2f} | {ratio(m.p99_ms, base.p99_ms)} "
                f"| {m.errors} / {base.errors} |"
            )
    lines += [
        "",
        "Ratios are mlmagic / azureml: above 1 is better for req/s, below 1 is better for "
        "latency. Errors: mlmagic / azureml (failed or non-200 requests).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=HERE / ".venv-azureml")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--http",
        nargs="+",
        choices=["h11", "httptools"],
        help="mlmagic.serve HTTP stacks to measure (default: h11, and httptools+uvloop "
        "when both are installed)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "serve.md")
    args = parser.parse_args()

    if importlib.util.find_spec("uvicorn") is None:
        parser.error("mlmagic.serve needs uvicorn: pip install 'uvicorn>=0.30'")
    fast = all(importlib.util.find_spec(m) for m in ("httptools", "uvloop"))
    variants = args.http or (["h11", "httptools"] if fast else ["h11"])
    tool = args.load if args.load != "auto" else "wrk" if shutil.which("wrk") else "python"
    measure = load_wrk if tool == "wrk" else load_python
    azureml_python = ensure_azureml_venv(args.venv.resolve())

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        (work / "score.py").write_text(SCORE)
        (work / "model").mkdir()
        (work / "model" / "weights.json").write_text(json.dumps(WEIGHTS))
        shutil.copytree(
            SERVE_SOURCE,
            work / "vendored" / "mlmagic" / "serve",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (work / "vendored" / "mlmagic" / "__init__.py").write_text("")
        under_test = [mlmagic_server(work, stack) for stack in variants]
        under_test.append(azureml_server(work, azureml_python))
        results: dict[tuple[int, int, str], Measurement] = {}
        for workers in args.workers:
            for server in under_test:
                with running(server, workers, work) as port:
                    measure(port, 8, 1, work)  # warm-up, not recorded
                    for concurrency in args.concurrency:
                        m = measure(port, concurrency, args.duration, work)
                        results[(workers, concurrency, server.name)] = m
                        print(
                            f"workers={workers} c={concurrency:<3} {server.name:<22} "
                            f"{m.requests_per_s:8.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
                            f"p99 {m.p99_ms:7.2f} ms  errors {m.errors}",
                            flush=True,
                        )

    azureml_version = version_in(azureml_python, "azureml-inference-server-http")
    clients = "one thread" if tool == "wrk" else "one thread per connection"
    header = [
        "# Scoring server: mlmagic.serve vs Azure ML inference server",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}",
        f"- mlmagic.serve: uvicorn {importlib.metadata.version('uvicorn')}, access log off "
        f"(its default); HTTP stacks: {', '.join(variants)}",
        f"- azureml-inference-server-http {azureml_version}"
        f" (gunicorn {version_in(azureml_python, 'gunicorn')} sync workers, Flask "
        f"{version_in(azureml_python, 'flask')}), its default logging",
        f"- load: {tool} ({clients}), {args.duration:g} s per row after a 1 s warm-up; "
        f"POST /score with a {len(PAYLOAD)}-byte JSON body; client and servers share the CPUs",
    ]
    text = report(results, [s.name for s in under_test], header)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
