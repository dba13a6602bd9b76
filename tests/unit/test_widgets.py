"""The build and run views, and the plain models behind them; no kernel needed.

ipywidgets makes a dummy comm when no kernel is there, so widgets are built and read
here as they would be in a notebook, without a browser (``tests/e2e`` has the browser).
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from mlmagic.engine.progress import ProgressParser
from mlmagic.events import (
    BuildEvent,
    BuildEventKind,
    RunEvent,
    RunEventKind,
    Stage,
    Status,
)
from mlmagic.widgets import BuildView, RunView
from mlmagic.widgets.model import LogTail, Metrics, MetricSeries, StageTimeline
from mlmagic.widgets.render import (
    JUPYTER_BASE_URL_VARIABLE,
    STYLE,
    format_duration,
    full_log_url,
    sparkline_svg,
)

# --- LogTail ----------------------------------------------------------------------------


def test_log_tail_keeps_the_last_lines_only() -> None:
    tail = LogTail(10)
    for i in range(1000):
        tail.append_line(f"line {i}")
    assert tail.lines() == [f"line {i}" for i in range(990, 1000)]
    assert (tail.total, tail.dropped, len(tail)) == (1000, 990, 10)


def test_log_tail_counts_the_unended_line_in_its_bound() -> None:
    tail = LogTail(3)
    for i in range(5):
        tail.append_line(f"line {i}")
    tail.append_line("progress 10%\r")
    assert tail.lines() == ["line 3", "line 4", "progress 10%"]


def test_carriage_return_redraws_the_line_like_a_terminal() -> None:
    tail = LogTail()
    tail.append_line("epoch 1")
    for percent in (10, 50, 90):
        tail.append_line(f"train {percent:3d}%|{'█' * (percent // 10)}\r")
    assert tail.lines() == ["epoch 1", "train  90%|█████████"]
    tail.append_line("train 100%|██████████| 10/10")
    tail.append_line("epoch 2")
    assert tail.lines() == ["epoch 1", "train 100%|██████████| 10/10", "epoch 2"]


def test_carriage_return_inside_one_line() -> None:
    tail = LogTail()
    # tqdm's redraws, all in one line when the collector splits on newlines only.
    tail.append_line("\r  0%|          | 0/3\r 33%|███       | 1/3\r100%|██████████| 3/3")
    # A shorter text overwrites only its own width, as a terminal (and Jupyter) shows it.
    tail.append_line("abcdef\rXY")
    assert tail.lines() == ["100%|██████████| 3/3", "XYcdef"]


def test_crlf_and_backspace() -> None:
    tail = LogTail()
    tail.append("a\r\nb\r\n")
    tail.append_line("abc\x08\x08X")
    assert tail.lines() == ["a", "b", "aXc"]


def test_partial_lines_of_a_raw_stream() -> None:
    tail = LogTail()
    tail.append("hel")
    tail.append("lo\nwor")
    assert tail.lines() == ["hello", "wor"]
    assert tail.total == 1
    tail.append("ld\n")
    assert tail.lines() == ["hello", "world"]
    tail.append("downloading 1%\r")
    tail.append("downloading 2%\r")
    tail.append("downloaded    \n")
    assert tail.lines() == ["hello", "world", "downloaded    "]


def test_ansi_sequences_are_stripped() -> None:
    tail = LogTail()
    tail.append_line("\x1b[1;31mERROR\x1b[0m: \x1b[4mbad\x1b[24m")
    tail.append_line("\x1b]8;;https://example.org\x07link\x1b]8;;\x07 and \x1b[2K\x1b[1Aup")
    tail.append_line("bell\x07 and nul\x00 gone, tab\tkept")
    assert tail.lines() == ["ERROR: bad", "link and up", "bell and nul gone, tab\tkept"]


def test_ansi_sequence_split_across_chunks() -> None:
    tail = LogTail()
    tail.append("green: \x1b[3")
    tail.append("2mok\x1b")
    tail.append("[0m\n")
    assert tail.lines() == ["green: ok"]
    tail.append_line("cut at the end of a line \x1b[3")
    assert tail.lines()[-1] == "cut at the end of a line "


def test_long_lines_are_cut() -> None:
    tail = LogTail(max_line_chars=50)
    tail.append_line("x" * 10_000)
    tail.append("y" * 10_000)
    assert [len(line) for line in tail.lines()] == [51, 51]


# --- metrics and stages -----------------------------------------------------------------


def test_metric_series_keeps_the_last_points_and_the_latest_value() -> None:
    series = MetricSeries("loss")
    for step in range(1000):
        series.add(1.0 / (step + 1), step)
    assert len(series.points) == 200
    assert series.points[0] == (800.0, 1.0 / 801)
    assert (series.latest, series.latest_step, series.count) == (1.0 / 1000, 999, 1000)
    series.add(float("nan"), 1000)
    assert len(series.points) == 200 and series.points[-1][0] == 999.0


def test_metrics_bound_the_number_of_series() -> None:
    metrics = Metrics(max_series=3)
    for i in range(10):
        metrics.add(f"m{i}", float(i))
    assert list(metrics.series) == ["m0", "m1", "m2"]
    assert len(metrics.dropped_names) == 7


def test_sparkline_is_an_svg_polyline() -> None:
    assert sparkline_svg([(0.0, 1.0)]) == ""
    svg = sparkline_svg([(0.0, 3.0), (1.0, 1.0), (2.0, 2.0)], width=100, height=20)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None and len(points.group(1).split()) == 3
    flat = sparkline_svg([(5.0, 1.0), (5.0, 1.0)])  # same step and value: no division by 0
    assert "<polyline" in flat


def test_stage_timeline_durations_and_states() -> None:
    timeline = StageTimeline()
    timeline.enter(Stage.QUEUED, 100.0)
    timeline.enter(Stage.PREPARING, 101.0)
    timeline.enter(Stage.RUNNING, 104.0)  # no Starting: it is skipped
    assert timeline.duration(Stage.QUEUED, 110.0) == 1.0
    assert timeline.duration(Stage.PREPARING, 110.0) == 3.0
    assert timeline.duration(Stage.RUNNING, 110.0) == 6.0  # so far
    assert timeline.duration(Stage.FINALIZING, 110.0) is None
    assert [timeline.state(stage) for stage in Stage] == [
        "done",
        "done",
        "skipped",
        "current",
        "pending",
    ]
    timeline.end(Status.FAILED, 112.0)
    assert timeline.duration(Stage.RUNNING, 999.0) == 8.0
    assert timeline.state(Stage.RUNNING) == "failed"
    assert timeline.state(Stage.FINALIZING) == "skipped"
    assert timeline.elapsed(999.0) == 12.0


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.214, 12.34, 245.0, 3720.0)] == [
        "0.21 s",
        "12.3 s",
        "4 min 05 s",
        "1 h 02 min",
    ]


# --- RunView ----------------------------------------------------------------------------


def _log(message: str) -> RunEvent:
    return RunEvent(RunEventKind.LOG, message=message)


def _run_through(view: RunView, status: Status, exit_code: int | None, t0: float = 1000.0) -> None:
    for offset, stage in enumerate(Stage):
        view.handle(RunEvent(RunEventKind.STAGE, stage=stage, time=t0 + 2 * offset))
    view.handle(
        RunEvent(
            RunEventKind.END,
            status=status,
            exit_code=exit_code,
            message=f"the run {status.value.lower()}",
            time=t0 + 11.0,
        )
    )
    view.finish()


def test_throttled_flushes_under_a_flood_of_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    view = RunView("train.py", tail_lines=200)
    flushes = 0
    real_flush = view._flush

    def counting_flush() -> None:
        nonlocal flushes
        flushes += 1
        real_flush()

    monkeypatch.setattr(view, "_flush", counting_flush)
    count = 200_000
    events = [_log(f"line-{i:06d}-end") for i in range(count)]
    started = time.perf_counter()
    for event in events:
        view.handle(event)
    handled = time.perf_counter() - started
    view.finish()
    elapsed = time.perf_counter() - started
    print(
        f"\nRunView.handle: {count:,} LOG events in {handled:.3f} s "
        f"({handled / count * 1e6:.2f} µs each, {count / handled:,.0f}/s), {flushes} flushes"
    )
    assert flushes <= elapsed * 10 + 2
    log_html = view._log_html.value
    assert f"line-{count - 1:06d}-end" in log_html
    assert "line-000000-end" not in log_html
    assert log_html.count("-end") == 200
    # Synced state is bounded by the tail, not by the 200,000 lines.
    assert len(log_html) < 200 * 40 + 2000


@pytest.mark.parametrize(
    "batch",
    [
        [f"plain {i}" for i in range(500)],
        ["a", "b" * 50, "c"],  # a line over the limit
        ["progress 10%\r", "progress 20%\r", "done", "after"],
        ["\x1b[32mgreen\x1b[0m", "tab\there", "bell\x07", "x"],
        ["\x1b[3", "1mcut escape", "plain", "back\x08space"],
        [],
    ],
)
def test_lines_taken_together_end_as_taken_one_by_one(batch: list[str]) -> None:
    one, many = LogTail(5, max_line_chars=40), LogTail(5, max_line_chars=40)
    for tail in (one, many):
        tail.append_line("before\r")  # an unended line the batch continues
    for line in batch:
        one.append_line(line)
    many.extend_lines(list(batch))
    assert (many.lines(), many.total) == (one.lines(), one.total)
    one.append_line("next")
    many.extend_lines(["next"])
    assert (many.lines(), many.total, many.dropped) == (one.lines(), one.total, one.dropped)


def test_a_plain_batch_keeps_the_last_lines_and_counts_all() -> None:
    one, many = LogTail(3), LogTail(3)
    lines = [f"line {i}" for i in range(1000)]
    for line in lines:
        one.append_line(line)
    many.extend_lines(lines)
    assert many.lines() == one.lines() == ["line 997", "line 998", "line 999"]
    assert many.total == one.total == 1000


def test_log_lines_show_in_order_with_build_lines_without_a_flush() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.PREPARING))
    view.handle(_log("first"))
    build = BuildEvent(BuildEventKind.LOG, message="installing six")
    view.handle(RunEvent(RunEventKind.BUILD, build=build))
    view.handle(_log("second"))
    lines = view.tail.lines()
    assert lines[0] == "first" and lines[-1] == "second" and "installing six" in lines[1]


def test_lines_from_several_threads_are_all_counted() -> None:
    view = RunView("train.py")

    def feed(name: str) -> None:
        for i in range(5000):
            view.handle(_log(f"{name} {i}"))

    threads = [threading.Thread(target=feed, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    view.finish()
    assert view.tail.total == 20_000


def test_stage_durations_are_shown() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.QUEUED, time=1000.0))
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.PREPARING, time=1000.5))
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.STARTING, time=1012.5))
    view.finish()
    header = view._header.value
    assert "Queued <small>0.50 s</small>" in header
    assert "Preparing <small>12.0 s</small>" in header
    assert 'class="mlmagic-current"' in header  # Starting, pulsing
    assert 'class="mlmagic-pending"' in header  # Running, Finalizing
    assert view.status is Status.STARTING


@pytest.mark.parametrize(
    ("status", "exit_code", "colour"),
    [
        (Status.COMPLETED, 0, "#2e7d32"),
        (Status.FAILED, 3, "#c62828"),
        (Status.CANCELED, None, "#757575"),
    ],
)
def test_final_status_has_its_colour(status: Status, exit_code: int | None, colour: str) -> None:
    view = RunView("train.py")
    view.handle(_log("hello"))
    _run_through(view, status, exit_code)
    header = view._header.value
    assert re.search(rf"background:{colour};[^>]*>{status.value}", header)
    if exit_code is not None:
        assert f"exit {exit_code}" in header
    assert "Finalizing <small>3.00 s</small>" in header
    assert view.text_summary().startswith(f"train.py · {status.value}")
    assert "11.0 s" in view.text_summary()


def test_failure_shows_the_end_of_the_log() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING))
    for i in range(100):
        view.handle(_log(f"step {i}"))
    view.handle(_log("ValueError: bad input"))
    view.handle(
        RunEvent(RunEventKind.END, status=Status.FAILED, exit_code=1, message="exited with 1")
    )
    header = view._header.value
    assert "ValueError: bad input" in header and "exited with 1" in header
    assert "step 99" in header and "step 10\n" not in header
    summary = view.text_summary()
    assert "exit 1" in summary and summary.endswith("ValueError: bad input")


def test_end_without_status_reads_the_exit_code() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.END, exit_code=2))
    assert view.status is Status.FAILED


def test_log_text_is_escaped() -> None:
    view = RunView("<b>train</b>")
    view.handle(_log('<script>alert("x")</script> & <img src=x onerror=alert(1)>'))
    view.handle(RunEvent(RunEventKind.METRIC, name="<svg onload=x>", step=0, value=1.0))
    view.finish()
    rendered = view._header.value + view._log_html.value + view._metrics_html.value
    for raw in ("<script", "<img", "<b>train", "<svg onload"):
        assert raw not in rendered
    assert '&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;img' in view._log_html.value
    assert "&lt;b&gt;train&lt;/b&gt;" in view._header.value
    assert "&lt;svg onload=x&gt;" in view._metrics_html.value


def test_tqdm_progress_and_ansi_in_run_logs() -> None:
    view = RunView("train.py")
    view.handle(_log("\x1b[32mstarting\x1b[0m"))
    # A collector that cuts tqdm's stream after each \r: every redraw but the last ends so.
    for i in range(1, 100):
        view.handle(_log(f"{i:3d}%|{'#' * (i // 10):<10}|\r"))
    view.handle(_log(f"100%|{'#' * 10}|"))
    view.handle(_log("done"))
    view.finish()
    assert view.tail.lines() == ["starting", "100%|##########|", "done"]
    assert "\x1b" not in view._log_html.value


def test_build_events_show_in_the_log_with_step_labels() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.PREPARING))
    step = "[2/3] RUN uv pip install scikit-learn"
    for build in (
        BuildEvent(BuildEventKind.START, image="mlmagic-env:abc123"),
        BuildEvent(BuildEventKind.STEP, step=step, step_index=2, step_count=3),
        BuildEvent(BuildEventKind.LOG, step=step, message="Resolved 5 packages"),
        BuildEvent(BuildEventKind.STEP_DONE, step=step, step_index=2, step_count=3, duration=4.2),
        BuildEvent(BuildEventKind.DONE, image="mlmagic-env:abc123"),
    ):
        view.handle(RunEvent(RunEventKind.BUILD, build=build))
    view.finish()
    lines = view.tail.lines()
    assert f"▸ {step}" in lines
    assert "[2/3] Resolved 5 packages" in lines
    assert f"✓ {step} (4.2 s)" in lines
    assert "✓ environment mlmagic-env:abc123 built" in lines
    assert "font-weight:600" in view._log_html.value  # step lines stand out


def test_metrics_show_latest_value_and_sparkline() -> None:
    view = RunView("train.py")
    for step in range(500):
        view.handle(RunEvent(RunEventKind.METRIC, name="loss", step=step, value=1 / (step + 1)))
    view.handle(RunEvent(RunEventKind.METRIC, name="accuracy", value=0.97))
    view.finish()
    html = view._metrics_html.value
    rows = html.split("<tr>")[1:]
    assert "loss" in rows[0] and "0.002" in rows[0] and "step 499" in rows[0]
    assert "<svg" in rows[0] and "<polyline" in rows[0]
    assert "accuracy" in rows[1] and "0.97" in rows[1] and "<svg" not in rows[1]
    assert len(view.metrics.series["loss"].points) == 200
    assert "loss 0.002" in view.text_summary()


def test_cancel_button_calls_back_and_retires_at_the_end() -> None:
    calls: list[str] = []
    view = RunView("train.py", on_cancel=lambda: calls.append("cancel"), run_id="run-42")
    button = view.cancel_button
    assert button.layout.display != "none" and not button.disabled
    button.click()
    assert calls == ["cancel"]
    assert button.disabled  # until the run ends, a second click does nothing
    view.handle(RunEvent(RunEventKind.END, status=Status.CANCELED, message="canceled by user"))
    assert button.disabled and button.layout.display == "none"
    button.click()
    assert calls == ["cancel"]
    assert view.run_id_field.value == "run-42"


def test_cancel_failure_lets_the_user_try_again() -> None:
    def refuse() -> None:
        raise RuntimeError("engine down")

    view = RunView("train.py", on_cancel=refuse)
    with pytest.raises(RuntimeError):
        view._cancel_clicked(view.cancel_button)
    assert not view.cancel_button.disabled


def test_no_cancel_callback_no_button_and_run_id_field_is_read_only() -> None:
    view = RunView("train.py")
    assert view.cancel_button.layout.display == "none"
    assert view.run_id_field.layout.display == "none"
    view.run_id = "run-7"
    assert view.run_id_field.layout.display != "none"
    view.run_id_field.value = "edited in the browser"
    assert view.run_id_field.value == "run-7"


def test_no_thread_is_left_after_the_end() -> None:
    before = threading.active_count()
    view = RunView("train.py", on_cancel=lambda: None)
    _run_through(view, Status.COMPLETED, 0)
    assert threading.active_count() == before


def test_views_display_as_their_widget() -> None:
    view = RunView("train.py")
    bundle = view._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.widget.model_id
    assert bundle["text/plain"].startswith("train.py · Queued")
    assert "train.py" in bundle["text/html"] and "Queued" in bundle["text/html"]


def test_a_run_reads_well_without_widgets_and_keeps_log_text_out() -> None:
    view = RunView("train.py", run_id="digits_1")
    for i in range(200_000):
        view.handle(RunEvent(RunEventKind.LOG, message=f"secret log line {i}"))
    view.handle(RunEvent(RunEventKind.METRIC, name="accuracy", value=0.97, step=3))
    _run_through(view, Status.COMPLETED, 0)
    bundle = view._repr_mimebundle_()
    text, page = bundle["text/plain"], bundle["text/html"]
    assert text.startswith("train.py · Completed · exit 0 · 11.0 s")
    assert "metrics: accuracy 0.97" in text
    assert "Completed · exit 0" in page and "Finalizing" in page and "accuracy" in page
    assert "secret log line" not in text + page  # the log stays in the workspace
    assert len(page) < 10_000


def test_a_failed_run_summary_has_the_end_of_its_log() -> None:
    view = RunView("train.py")
    for i in range(100):
        view.handle(RunEvent(RunEventKind.LOG, message=f"line {i}"))
    _run_through(view, Status.FAILED, 1)
    page = view.html_summary()
    assert "the run failed" in page and "line 99" in page and "line 84" not in page


def test_a_build_reads_well_without_widgets() -> None:
    view = BuildView("digits-env:2")
    view.handle(BuildEvent(BuildEventKind.STEP, step="[1/2] RUN uv venv", step_index=1))
    view.handle(BuildEvent(BuildEventKind.STEP_DONE, step="[1/2] RUN uv venv", step_index=1))
    view.handle(BuildEvent(BuildEventKind.STEP, step="[2/2] RUN pip install x", step_index=2))
    for i in range(1000):
        view.handle(BuildEvent(BuildEventKind.LOG, message=f"output {i}"))
    view.handle(
        BuildEvent(BuildEventKind.ERROR, message="exit code 1", step="[2/2] RUN pip install x")
    )
    view.finish(ok=False, summary="digits-env:2 failed")
    bundle = view._repr_mimebundle_()
    assert "failed step: [2/2] RUN pip install x" in bundle["text/plain"]
    page = bundle["text/html"]
    assert "digits-env:2 failed" in page and "[1/2] RUN uv venv" in page
    assert "output 999" in page and "output 900" not in page


@pytest.fixture
def ipython():  # type: ignore[no-untyped-def]
    """A real IPython shell, whose display publisher tests can capture."""
    import sys

    from IPython.core.interactiveshell import InteractiveShell

    main = sys.modules["__main__"]
    yield InteractiveShell.instance()
    sys.modules["__main__"] = main


def test_a_displayed_view_publishes_its_final_state_again(ipython) -> None:  # type: ignore[no-untyped-def]
    from IPython.display import display
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        view = RunView("train.py", run_id="digits_1")
        display(view)
        view.handle(RunEvent(RunEventKind.METRIC, name="loss", value=0.5))
        _run_through(view, Status.COMPLETED, 0)
    shown, updated = captured.outputs
    widget = "application/vnd.jupyter.widget-view+json"
    assert shown.data[widget] == updated.data[widget]
    assert shown.transient["display_id"] == updated.transient["display_id"]
    assert updated.update and not shown.update
    assert shown.data["text/plain"].startswith("train.py · Queued")
    assert updated.data["text/plain"].startswith("train.py · Completed · exit 0")
    assert "loss 0.5" in updated.data["text/plain"] and "loss" in updated.data["text/html"]


def test_a_view_never_displayed_publishes_nothing(ipython) -> None:  # type: ignore[no-untyped-def]
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        view = BuildView("digits-env:2")
        view.finish(ok=True, summary="ready")
    assert captured.outputs == []


def test_the_full_log_link_goes_to_the_jupyter_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JUPYTER_BASE_URL_VARIABLE, "/user/ann/")
    view = RunView("train.py", run_id="digits_20240101-120000_ab12cd")
    link = view.full_log.value
    assert 'href="/user/ann/mlmagic/api/runs/digits_20240101-120000_ab12cd/log"' in link
    assert 'target="_blank"' in link and "full log" in link
    assert full_log_url("a b/c") == "/user/ann/mlmagic/api/runs/a%20b%2Fc/log"
    monkeypatch.setenv(JUPYTER_BASE_URL_VARIABLE, "/")
    assert full_log_url("r1") == "/mlmagic/api/runs/r1/log"


def test_the_run_id_links_to_the_run_details_tab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JUPYTER_BASE_URL_VARIABLE, "/user/ann/")
    view = RunView("train.py")
    assert view.details_link.value == ""
    view.run_id = "digits_20240101-120000_ab12cd"
    link = view.details_link.value
    assert 'href="/user/ann/lab?mlmagic-details=digits_20240101-120000_ab12cd"' in link
    assert "run details" in link
    monkeypatch.delenv(JUPYTER_BASE_URL_VARIABLE)
    view.run_id = "digits_1"
    assert view.details_link.value == ""


def test_without_the_server_the_widget_says_how_to_read_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(JUPYTER_BASE_URL_VARIABLE, raising=False)
    view = RunView("train.py")
    assert view.full_log.value == ""
    view.run_id = "digits_1"
    assert "href" not in view.full_log.value
    assert "mlmagic run logs digits_1" in view.full_log.value


# --- BuildView --------------------------------------------------------------------------

BUILDKIT_OUTPUT = """\
#4 [1/3] FROM docker.io/library/mlmagic-base:bookworm
#4 DONE 0.0s
#6 [2/3] RUN uv venv /opt/mlmagic/env
#6 CACHED
#7 [3/3] RUN uv pip install nosuchpackage
#7 0.101 \x1b[31merror\x1b[0m: No solution found <nosuchpackage>
#7 ERROR: executor failed running: exit code: 1
"""


def test_build_steps_cached_done_and_failed() -> None:
    view = BuildView("digits-env:2", tail_lines=50)
    view.handle(BuildEvent(BuildEventKind.START, image="mlmagic-env:abc123", time=100.0))
    parser = ProgressParser()
    for line in BUILDKIT_OUTPUT.splitlines():
        for event in parser.feed(line):
            view.handle(event)
    view.handle(BuildEvent(BuildEventKind.ERROR, message="exit code: 1", step=parser.failed_step))
    view.finish(ok=False, summary="digits-env:2 failed in [3/3] RUN uv pip install nosuchpackage")
    states = {step.label: step.state for step in view.steps.ordered()}
    assert states == {
        "[1/3] FROM docker.io/library/mlmagic-base:bookworm": "done",
        "[2/3] RUN uv venv /opt/mlmagic/env": "cached",
        "[3/3] RUN uv pip install nosuchpackage": "failed",
    }
    assert view.state == "failed"
    steps_html = view._steps_html.value
    assert steps_html.index("cached") < steps_html.index("failed")
    assert "#c62828" in view._header.value and "digits-env:2 failed in" in view._header.value
    assert "&lt;nosuchpackage&gt;" in view._log_html.value
    assert "\x1b" not in view._log_html.value
    summary = view.text_summary()
    assert "failed step: [3/3] RUN uv pip install nosuchpackage" in summary
    assert "No solution found" in summary


def test_build_cache_hit() -> None:
    view = BuildView("digits-env:2")
    view.handle(BuildEvent(BuildEventKind.START, image="mlmagic-env:abc123", time=100.0))
    view.handle(
        BuildEvent(
            BuildEventKind.DONE, image="mlmagic-env:abc123", cached=True, duration=0.21, time=100.21
        )
    )
    summary = "digits-env:2 ready · mlmagic-env:abc123 · cache hit · 0.21 s"
    view.finish(ok=True, summary=summary)
    header = view._header.value
    assert view.state == "cache hit" and "#00796b" in header
    assert "mlmagic-env:abc123" in header and "0.21 s" in header and summary in header
    assert view.text_summary() == summary


def test_build_ready_folds_its_log() -> None:
    view = BuildView("digits-env:3")
    view.handle(BuildEvent(BuildEventKind.STEP, step="[1/1] RUN true", step_index=1, step_count=1))
    assert "<details open>" in view._log_html.value
    view.handle(BuildEvent(BuildEventKind.STEP_DONE, step="[1/1] RUN true", duration=1.5))
    view.handle(BuildEvent(BuildEventKind.DONE, image="mlmagic-env:def456", duration=2.0))
    view.finish(ok=True, summary="digits-env:3 ready")
    assert view.state == "ready" and "#2e7d32" in view._header.value
    assert "<details>" in view._log_html.value
    assert "1.50 s" in view._steps_html.value


def test_build_tail_lines_and_quiet_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    view = BuildView("digits-env:2", tail_lines=5)
    for i in range(50):
        view.handle(BuildEvent(BuildEventKind.LOG, message=f"line {i}"))
    view.finish(ok=True, summary="done")
    assert view.tail.lines() == [f"line {i}" for i in range(45, 50)]

    quiet = BuildView("digits-env:2", quiet=True)
    assert quiet.widget.children == (quiet._header,)
    quiet.handle(BuildEvent(BuildEventKind.STEP, step="[1/1] RUN false", step_index=1))
    quiet.handle(BuildEvent(BuildEventKind.LOG, message="boom"))
    quiet.finish(ok=False, summary="digits-env:2 failed")
    assert "digits-env:2 failed" in quiet._header.value
    assert "boom" in quiet._header.value  # the final line says why
    assert quiet._log_html.value == ""


def test_build_view_flushes_are_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    view = BuildView("digits-env:2")
    flushes = 0
    real_flush = view._flush

    def counting_flush() -> None:
        nonlocal flushes
        flushes += 1
        real_flush()

    monkeypatch.setattr(view, "_flush", counting_flush)
    started = time.perf_counter()
    for i in range(50_000):
        view.handle(BuildEvent(BuildEventKind.LOG, step="[2/5] RUN pip", message=f"l{i}"))
    view.finish(ok=True, summary="ok")
    assert flushes <= (time.perf_counter() - started) * 10 + 2
    assert "[2/5] l49999" in view._log_html.value


def test_the_style_sheet_is_sent_once_not_with_every_header() -> None:
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING))
    view.handle(_log("line"))
    view.finish()
    header = view._header.value
    assert "train.py" in header and "Running" in header and "<style>" not in header
    values = [str(getattr(child, "value", "")) for child in view.widget.children]
    assert [value for value in values if "<style>" in value] == [STYLE]
    # A saved notebook's static HTML still carries it.
    assert STYLE in view.html_summary()


def test_a_log_box_replaced_at_every_flush_is_redrawn_twice_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlmagic.widgets import run as run_view

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(run_view, "_monotonic", lambda: clock[0])
    view = RunView("train.py", tail_lines=10)
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING))
    draws: list[float] = []
    view._log_html.observe(lambda _change: draws.append(clock[0]), names="value")
    for step in range(20):  # 2 s of 500 lines a second: every flush would replace the box
        clock[0] += 0.1
        for i in range(50):
            view.handle(_log(f"fast {step} {i}"))
    assert 3 <= len(draws) <= 5, draws
    fast = len(draws)
    for step in range(10):  # a line a flush: every flush shows it
        clock[0] += 0.1
        view.handle(_log(f"slow {step}"))
    assert len(draws) - fast >= 9
    view.handle(_log("last"))
    view.finish()
    assert "last" in view._log_html.value and view.tail.total == 1011


def test_the_stepper_redraws_on_a_stage_and_its_clocks_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlmagic.widgets import run as run_view

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(run_view, "_monotonic", lambda: clock[0])
    view = RunView("train.py")
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.RUNNING, time=clock[0]))
    draws: list[str] = []
    view._header.observe(lambda change: draws.append(change["new"]), names="value")
    for step in range(20):  # 2 s of flushes, ten a second
        clock[0] += 0.1
        view.handle(_log(f"line {step}"))
    assert 1 <= len(draws) <= 3, len(draws)
    view.handle(RunEvent(RunEventKind.STAGE, stage=Stage.FINALIZING, time=clock[0]))
    assert "mlmagic-current" in draws[-1] and "Finalizing" in draws[-1]
    view.handle(RunEvent(RunEventKind.END, exit_code=0, time=clock[0]))
    assert "Completed" in draws[-1]
