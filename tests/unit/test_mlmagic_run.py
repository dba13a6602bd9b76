"""mlmagic_run: the API of training scripts, the metrics format, and the launcher."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

import mlmagic_run

LAUNCHER = Path(mlmagic_run.__file__).resolve()
REPO = LAUNCHER.parent
ENV_VARS = ("MLMAGIC_METRICS_FILE", "MLMAGIC_OUTPUT_DIR", "MLMAGIC_PARAMS_FILE", "MLMAGIC_RUN_ID")


@pytest.fixture(autouse=True)
def fresh_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlmagic_run, "_steps", {})
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def inside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set the environment an executor gives a run; returns the logs folder."""
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.setenv("MLMAGIC_RUN_ID", "run-42")
    monkeypatch.setenv("MLMAGIC_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(logs / "metrics.jsonl"))
    monkeypatch.setenv("MLMAGIC_PARAMS_FILE", str(logs / "params.json"))
    return logs


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- outside mlmagic ------------------------------------------------------------------


def test_outside_mlmagic_log_prints(capsys: pytest.CaptureFixture[str]) -> None:
    mlmagic_run.log("accuracy", 0.93)
    mlmagic_run.log("accuracy", 0.95)
    mlmagic_run.log("loss", 0.12, step=10)
    mlmagic_run.log_params({"C": 0.5}, max_iter=200)
    assert capsys.readouterr().out.splitlines() == [
        "[mlmagic_run] accuracy=0.93 (step 0)",
        "[mlmagic_run] accuracy=0.95 (step 1)",
        "[mlmagic_run] loss=0.12 (step 10)",
        "[mlmagic_run] params: C=0.5, max_iter=200",
    ]


def test_outside_mlmagic_output_dir_and_run_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert mlmagic_run.output_dir() == tmp_path / "outputs"
    assert (tmp_path / "outputs").is_dir()
    assert mlmagic_run.run_id() is None


# -- inside mlmagic -------------------------------------------------------------------


def test_inside_output_dir_and_run_id(inside: Path, tmp_path: Path) -> None:
    assert mlmagic_run.output_dir() == tmp_path / "outputs"
    assert (tmp_path / "outputs").is_dir()
    assert mlmagic_run.run_id() == "run-42"


def test_metrics_are_json_lines_with_steps_per_name(
    inside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = time.time()
    mlmagic_run.log("accuracy", 0.5)
    mlmagic_run.log("loss", 2)
    mlmagic_run.log("accuracy", 0.75)
    mlmagic_run.log("loss", 1.5, step=10)
    mlmagic_run.log("loss", 1.25)  # continues after the explicit step

    records = lines_of(inside / "metrics.jsonl")
    assert [(r["name"], r["step"], r["value"]) for r in records] == [
        ("accuracy", 0, 0.5),
        ("loss", 0, 2.0),
        ("accuracy", 1, 0.75),
        ("loss", 10, 1.5),
        ("loss", 11, 1.25),
    ]
    assert all(set(r) == {"name", "step", "value", "time"} for r in records)
    assert all(before <= r["time"] <= time.time() for r in records)
    assert capsys.readouterr().out == ""  # inside mlmagic, nothing is printed


def test_values_anything_with_float(inside: Path) -> None:
    np = pytest.importorskip("numpy")

    class Tensor:
        def __float__(self) -> float:
            return 0.25

    for value in (True, 3, np.float32(0.5), np.int64(7), np.array(1.5), Decimal("2.5")):
        mlmagic_run.log("m", value)
    mlmagic_run.log("m", Fraction(1, 4))
    mlmagic_run.log("m", Tensor())
    values = [r["value"] for r in lines_of(inside / "metrics.jsonl")]
    assert values == [1.0, 3.0, 0.5, 7.0, 1.5, 2.5, 0.25, 0.25]
    assert all(isinstance(v, float) for v in values)


def test_nan_and_infinities_are_strict_json_and_read_back(inside: Path) -> None:
    for value in (math.nan, math.inf, -math.inf, 1.0):
        mlmagic_run.log("loss", value)
    text = (inside / "metrics.jsonl").read_text()
    assert '"value": "NaN"' in text
    assert '"value": "Infinity"' in text
    assert '"value": "-Infinity"' in text
    for line in text.splitlines():  # strict parsers (a browser's JSON.parse) accept them
        json.loads(line, parse_constant=lambda token: pytest.fail(f"bare {token}"))

    records, _ = mlmagic_run.read_metrics(inside / "metrics.jsonl")
    values = [r["value"] for r in records]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 1.0]


@pytest.mark.parametrize(
    ("name", "value", "step", "error", "words"),
    [
        ("", 1.0, None, ValueError, "must not be empty"),
        (None, 1.0, None, TypeError, "must be a string, not NoneType"),
        (3, 1.0, None, TypeError, "must be a string, not int"),
        ("acc", "0.9", None, TypeError, "'acc' must be a number"),
        ("acc", None, None, TypeError, "must be a number .* not NoneType"),
        ("acc", [1.0, 2.0], None, TypeError, "must be a number"),
        ("acc", 1.0, 1.5, TypeError, "step of 'acc' must be an integer, not float"),
        ("acc", 1.0, True, TypeError, "must be an integer, not bool"),
        ("acc", 1.0, -1, ValueError, "must be >= 0"),
    ],
)
def test_log_rejects_bad_input(
    inside: Path, name: object, value: object, step: object, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        mlmagic_run.log(name, value, step=step)  # type: ignore[arg-type]
    assert not (inside / "metrics.jsonl").exists()


def test_log_rejects_an_array_of_several_values(inside: Path) -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match="must be a single number"):
        mlmagic_run.log("acc", np.array([1.0, 2.0]))


def test_params_merge_into_one_json_file(inside: Path) -> None:
    np = pytest.importorskip("numpy")
    mlmagic_run.log_params({"C": 0.5, "kernel": "rbf"}, max_iter=200)
    mlmagic_run.log_params(C=1.0, tol=np.float64(1e-4), sizes=(64, np.int64(32)))
    mlmagic_run.log_params(path=Path("/data"), gamma=math.nan, params="a name like any other")

    params = json.loads((inside / "params.json").read_text())
    assert params == {
        "C": 1.0,
        "kernel": "rbf",
        "max_iter": 200,
        "tol": 1e-4,
        "sizes": [64, 32],
        "path": "/data",
        "gamma": "NaN",
        "params": "a name like any other",
    }
    assert sorted(p.name for p in inside.iterdir()) == ["params.json"]  # no temporary left


def test_params_survive_a_corrupt_file(inside: Path) -> None:
    (inside / "params.json").write_text("{not json")
    mlmagic_run.log_params(a=1)
    assert json.loads((inside / "params.json").read_text()) == {"a": 1}


def test_log_params_rejects_bad_input(inside: Path) -> None:
    with pytest.raises(TypeError, match="pass a dict or keyword arguments, not list"):
        mlmagic_run.log_params([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a string, not int"):
        mlmagic_run.log_params({1: "a"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="must not be empty"):
        mlmagic_run.log_params({"": 1})


def test_concurrent_processes_never_interleave_lines(inside: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import mlmagic_run
        for i in range(300):
            mlmagic_run.log("worker" + sys.argv[1] + "-" + "x" * 200, i / 7)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen([sys.executable, "-c", code, str(n)], env=env) for n in range(6)]
    assert [worker.wait(timeout=60) for worker in workers] == [0] * 6

    records = lines_of(inside / "metrics.jsonl")  # every line is whole JSON
    assert len(records) == 1800
    for n in range(6):
        steps = [r["step"] for r in records if r["name"].startswith(f"worker{n}-")]
        assert steps == list(range(300))


# -- read_metrics ---------------------------------------------------------------------


def test_read_metrics_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    assert mlmagic_run.read_metrics(path) == ([], 0)  # not there yet

    first = b'{"name": "a", "step": 0, "value": 1.5, "time": 1.0}\n'
    second = b'{"name": "b", "step": 3, "value": 2, "time": 2.0}\n'
    path.write_bytes(first + second[:20])
    records, offset = mlmagic_run.read_metrics(path)
    assert records == [{"name": "a", "step": 0, "value": 1.5, "time": 1.0}]
    assert offset == len(first)

    assert mlmagic_run.read_metrics(path, offset) == ([], offset)  # still half a line

    path.write_bytes(first + second)
    records, offset = mlmagic_run.read_metrics(path, offset)
    assert records == [{"name": "b", "step": 3, "value": 2.0, "time": 2.0}]
    assert isinstance(records[0]["value"], float)
    assert offset == len(first + second)
    assert mlmagic_run.read_metrics(path, offset) == ([], offset)


def test_read_metrics_skips_lines_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    good = '{"name": "a", "step": 1, "value": 0.5, "time": 1.0}'
    path.write_text(
        "\n".join(
            [
                "garbage",
                "",
                "[1, 2]",
                '{"name": "a", "step": 0}',
                '{"name": 1, "step": 0, "value": 1, "time": 1}',
                '{"name": "a", "step": "0", "value": 1, "time": 1}',
                '{"name": "a", "step": 0, "value": "high", "time": 1}',
                '{"name": "a", "step": 0, "value": true, "time": 1}',
                '{"name": "a", "step": 0, "value": null, "time": 1}',
                good,
                '{"name": "\u00e9t\u00e9", "step": 0, "value": NaN, "time": 1}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    records, offset = mlmagic_run.read_metrics(path)
    assert offset == path.stat().st_size
    assert [r["name"] for r in records] == ["a", "a", "\u00e9t\u00e9"]
    assert math.isnan(records[0]["value"])  # null, as other writers may put it
    assert records[1] == json.loads(good)
    assert math.isnan(records[2]["value"])


def test_read_metrics_reads_what_log_writes(inside: Path) -> None:
    mlmagic_run.log("\u00e9poque", 1)
    mlmagic_run.log("\u00e9poque", 2)
    records, offset = mlmagic_run.read_metrics(str(inside / "metrics.jsonl"))
    assert [(r["name"], r["step"], r["value"]) for r in records] == [
        ("\u00e9poque", 0, 1.0),
        ("\u00e9poque", 1, 2.0),
    ]
    assert offset == (inside / "metrics.jsonl").stat().st_size


# -- the launcher ---------------------------------------------------------------------


def launcher_command(tmp_path: Path, code: str) -> list[str]:
    return [
        sys.executable,
        str(LAUNCHER),
        "exec",
        "--log",
        str(tmp_path / "logs" / "std_log.txt"),
        "--exit-file",
        str(tmp_path / "exit.json"),
        "--",
        sys.executable,
        "-u",
        "-c",
        textwrap.dedent(code),
    ]


def launch(tmp_path: Path, code: str) -> tuple[int, bytes, bytes]:
    """Run ``code`` through the launcher: its exit code, its stdout, the log file."""
    done = subprocess.run(launcher_command(tmp_path, code), capture_output=True, timeout=120)
    assert done.stderr == b""
    return done.returncode, done.stdout, (tmp_path / "logs" / "std_log.txt").read_bytes()


def exit_record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "exit.json").read_text())


@pytest.mark.parametrize("code", [0, 3])
def test_launcher_exits_with_the_exit_code_and_writes_the_exit_file(
    tmp_path: Path, code: int
) -> None:
    before = time.time()
    returncode, stdout, log = launch(tmp_path, f"print('bye'); raise SystemExit({code})")
    assert returncode == code
    assert stdout == log == b"bye\n"
    record = exit_record(tmp_path)
    assert record["exit_code"] == code
    assert record["signal"] is None
    assert before <= record["ended"] <= time.time()


def test_launcher_exit_code_of_a_signal_is_128_plus_n(tmp_path: Path) -> None:
    returncode, _, log = launch(
        tmp_path, "import os, signal; print('dying'); os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert returncode == 128 + signal.SIGKILL
    assert log == b"dying\n"
    assert exit_record(tmp_path)["exit_code"] == 137
    assert exit_record(tmp_path)["signal"] == signal.SIGKILL


@pytest.mark.parametrize(
    ("sent", "child_code"),
    [
        (
            signal.SIGTERM,
            """
            import signal, sys, time
            def stop(signum, frame):
                print("got SIGTERM, saving"); sys.exit(0)
            signal.signal(signal.SIGTERM, stop)
            print("ready")
            time.sleep(60)
            """,
        ),
        (
            signal.SIGINT,
            """
            import sys, time
            print("ready")
            try:
                time.sleep(60)
            except KeyboardInterrupt:
                print("got SIGINT, saving"); sys.exit(0)
            """,
        ),
    ],
)
def test_launcher_forwards_stop_signals(
    tmp_path: Path, sent: signal.Signals, child_code: str
) -> None:
    log_path = tmp_path / "logs" / "std_log.txt"
    launcher = subprocess.Popen(
        launcher_command(tmp_path, child_code), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (log_path.exists() and b"ready" in log_path.read_bytes()):
            assert time.monotonic() < deadline, "the child never said it was ready"
            time.sleep(0.02)
        launcher.send_signal(sent)
        stdout, stderr = launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    assert launcher.returncode == 0
    expected = f"ready\ngot {sent.name}, saving\n".encode()
    assert log_path.read_bytes() == stdout == expected
    assert stderr == b""
    assert exit_record(tmp_path)["exit_code"] == 0


def test_launcher_keeps_the_order_of_stdout_and_stderr(tmp_path: Path) -> None:
    returncode, stdout, log = launch(
        tmp_path,
        """
        import sys
        for i in range(50):
            (sys.stdout if i % 2 else sys.stderr).write(f"line {i}\\n")
        """,
    )
    assert returncode == 0
    assert log == stdout == "".join(f"line {i}\n" for i in range(50)).encode()


def test_launcher_passes_carriage_returns_and_bytes_through(tmp_path: Path) -> None:
    returncode, stdout, log = launch(
        tmp_path,
        r"""
        import sys
        for p in (10, 50, 100):
            sys.stdout.write(f"\rtraining {p}%")
        sys.stdout.write("\n")
        sys.stdout.buffer.write(b"\xff not utf-8 \x00\n")
        """,
    )
    assert returncode == 0
    assert log == stdout == b"\rtraining 10%\rtraining 50%\rtraining 100%\n\xff not utf-8 \x00\n"


def test_launcher_passes_200k_lines_intact_and_fast(tmp_path: Path) -> None:
    code = "for i in range(200_000):\n    print(i)\n"
    start = time.perf_counter()
    returncode, stdout, log = launch(tmp_path, code)
    through_launcher = time.perf_counter() - start

    direct_file = tmp_path / "direct.txt"
    start = time.perf_counter()
    with direct_file.open("wb") as out:
        subprocess.run([sys.executable, "-u", "-c", code], stdout=out, check=True)
    direct = time.perf_counter() - start

    expected = "".join(f"{i}\n" for i in range(200_000)).encode()
    assert returncode == 0
    assert log == expected
    assert stdout == expected
    assert direct_file.read_bytes() == expected
    # Measured, not asserted (tests assert behaviour): shown with `pytest -s`.
    print(f"\n200k lines: launcher {through_launcher:.2f} s, straight to a file {direct:.2f} s")


def test_launcher_appends_to_an_existing_log(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "std_log.txt").write_bytes(b"earlier\n")
    _, _, log = launch(tmp_path, "print('later')")
    assert log == b"earlier\nlater\n"


def test_launcher_ends_when_the_command_ends_even_if_a_child_holds_the_pipe(
    tmp_path: Path,
) -> None:
    code = """
        import subprocess
        sleeper = subprocess.Popen(["sleep", "60"])
        print(sleeper.pid)
        raise SystemExit(4)
        """
    start = time.monotonic()
    returncode, _, log = launch(tmp_path, code)
    try:
        assert returncode == 4
        assert time.monotonic() - start < 30
    finally:
        os.kill(int(log.split()[0]), signal.SIGKILL)


def test_launcher_command_not_found(tmp_path: Path) -> None:
    log_path = tmp_path / "std_log.txt"
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), "exec", "--log", str(log_path), "--", "no-such-cmd"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 127
    assert b"cannot start 'no-such-cmd'" in log_path.read_bytes()
    assert b"cannot start 'no-such-cmd'" in done.stdout


def test_launcher_needs_a_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), "exec", "--log", str(tmp_path / "log"), "--"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "give the command to run after --" in done.stderr


# -- the error a script died of ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("print('training')\nraise ValueError('bad C')", "ValueError: bad C"),
        (
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    raise KeyError('C')",
            "KeyError: 'C'",
        ),
        (
            "try:\n    int('x')\nexcept ValueError as exc:\n"
            "    raise RuntimeError('training failed') from exc",
            "RuntimeError: training failed",
        ),
        (
            "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n"
            "    traceback.print_exc()\nprint('going on')\nraise TypeError('later')",
            "TypeError: later",
        ),
        ("raise ValueError('first line\\nsecond line')", "ValueError: first line"),
        ("def f():\n    f()\nf()", "RecursionError: maximum recursion depth exceeded"),
        ("print('training')\nraise SystemExit('no data in /mlmagic/data/train')", None),
        (
            "import argparse\nargparse.ArgumentParser(prog='train').parse_args(['--nope'])",
            "train: error: unrecognized arguments: --nope",
        ),
        ("print('x'\n", "SyntaxError: "),
    ],
    ids=[
        "plain",
        "during-handling",
        "raise-from",
        "earlier-printed-traceback",
        "multi-line-message",
        "recursion",
        "system-exit-message",
        "argparse-usage",
        "syntax-error",
    ],
)
def test_the_exit_file_says_which_error_ended_the_script(
    tmp_path: Path, code: str, error: str | None
) -> None:
    returncode, _, log = launch(tmp_path, code)
    assert returncode in (1, 2)
    recorded = exit_record(tmp_path)["error"]
    if error is None:  # SystemExit("message"): Python prints the message, no traceback
        assert recorded == "no data in /mlmagic/data/train"
    else:
        assert recorded.startswith(error)
    assert recorded.encode() in log  # a line the script printed, not made up


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups came in 3.11")
def test_the_exit_file_names_an_exception_group(tmp_path: Path) -> None:
    launch(tmp_path, "raise ExceptionGroup('2 workers failed', [ValueError('a'), OSError('b')])")
    assert exit_record(tmp_path)["error"] == "ExceptionGroup: 2 workers failed (2 sub-exceptions)"


@pytest.mark.parametrize(
    "code",
    [
        "print('all good')",
        "print('stopping early')\nraise SystemExit(3)",
        "import os, signal\nprint('x')\nos.kill(os.getpid(), signal.SIGKILL)",
    ],
    ids=["success", "exit-3-without-message", "killed"],
)
def test_the_exit_file_has_no_error_when_nothing_says_why(tmp_path: Path, code: str) -> None:
    launch(tmp_path, code)
    assert "exit_code" in exit_record(tmp_path) and "error" not in exit_record(tmp_path)


# -- the log's size limit ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_the_log_stops_at_its_limit_and_counts_the_rest(tmp_path: Path, how: str) -> None:
    code = "for i in range(1000):\n    print('line', i)\nraise ValueError('late')\n"
    command = launcher_command(tmp_path, code)
    env = dict(os.environ)
    if how == "argument":
        command[command.index("--") : command.index("--")] = ["--log-max-bytes", "200"]
    else:
        env["MLMAGIC_LOG_MAX_BYTES"] = "200"
    done = subprocess.run(command, capture_output=True, env=env, timeout=120)
    assert done.returncode == 1
    log = (tmp_path / "logs" / "std_log.txt").read_bytes()
    kept, note, rest = log.partition(b"[mlmagic_run] the log reached its limit of 200 bytes")
    assert note and kept.startswith(b"line 0\n") and kept.endswith(b"\n")
    printed = done.stdout.split(b"[mlmagic_run]")[0]
    # A line cut at the limit is ended by the note's own newline.
    body = kept if printed.startswith(kept) else kept[:-1]
    assert printed.startswith(body) and len(body) <= 200
    assert b"the script goes on" in rest and b"line 999" not in log
    # Every line past the limit is counted: the 1000 lines and the traceback's.
    dropped = printed.count(b"\n") - body.count(b"\n")
    assert f"{dropped} more lines ({len(printed) - len(body)} bytes)".encode() in rest
    # stdout is not limited, and the error is found past the limit.
    assert b"line 999\n" in done.stdout
    assert exit_record(tmp_path)["error"] == "ValueError: late"


def test_a_log_limit_below_zero_is_refused(tmp_path: Path) -> None:
    command = launcher_command(tmp_path, "print(1)")
    command[command.index("--") : command.index("--")] = ["--log-max-bytes", "-1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--log-max-bytes must be 0 (no limit) or more" in done.stderr


# -- reading garbage ---------------------------------------------------------------------


def test_read_metrics_says_which_lines_it_skipped_and_why(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    good = b'{"name": "a", "step": 0, "value": 1.0, "time": 1.0}\n'
    binary = b"\xff\xfe binary\n"
    path.write_bytes(good + binary + b"[1]\n" + good + b"\n")
    skipped: list[tuple[int, str]] = []
    with path.open("rb") as file:
        records, offset = mlmagic_run.read_metrics(
            file, on_skip=lambda at, why: skipped.append((at, why))
        )
    assert len(records) == 2 and offset == path.stat().st_size
    assert skipped == [
        (len(good), "not JSON"),
        (len(good) + len(binary), "JSON, but a list, not an object"),
    ]


def test_read_metrics_reads_at_most_its_limit_and_skips_a_line_longer(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    good = b'{"name": "a", "step": 0, "value": 1.0, "time": 1.0}\n'
    path.write_bytes(good * 3 + b"x" * 500 + b"\n" + good)
    skipped: list[str] = []
    found, offset = [], 0
    while offset < path.stat().st_size:
        records, offset = mlmagic_run.read_metrics(
            path, offset, limit=120, on_skip=lambda at, why: skipped.append(why)
        )
        found += records
    assert len(found) == 4 and offset == path.stat().st_size
    assert skipped[0] == "a line longer than 120 bytes"
