"""The studio's REST routes (run overview, metrics, files, comparison, models, lineage,
environments), through a real Jupyter server with the extension, as in test_server.py.

Records and run folders are written the way a kernel and a run's script write them
(metrics through ``mlmagic_run.log``); no container engine is involved.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import mlmagic_run
from mlmagic import Environment, Workspace
from mlmagic.run.paths import RunPaths
from mlmagic.server.run_files import BadFileName, content_headers, plain_name
from mlmagic.server.studio import lab_path
from tests.unit import test_server as base
from tests.unit.test_server import _error, add_run, add_service

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# The extension's server, its workspace and the JSON caller of the panel's own tests.
jp_server_config, ws, api = base.jp_server_config, base.ws, base.api

DONE = "digits_20240101-120000_aaaaaa"
LIVE = "digits_20240101-120100_bbbbbb"


def _finished(ws: Workspace, run_id: str = DONE) -> RunPaths:
    now = time.time()
    return add_run(ws, run_id, "Completed", started=now - 10, ended=now, exit_code=0)


def _log(monkeypatch: pytest.MonkeyPatch, paths: RunPaths, *values: tuple[str, int, float],
         rank: int | None = None) -> None:  # fmt: skip
    """Log ``(name, step, value)`` as the run's script does, from ``rank`` if given."""
    monkeypatch.setenv("MLMAGIC_METRICS_FILE", str(paths.metrics))
    if rank is None:
        monkeypatch.delenv("MLMAGIC_RANK", raising=False)
    else:
        monkeypatch.setenv("MLMAGIC_RANK", str(rank))
    for name, step, value in values:
        mlmagic_run.log(name, value, step=step)


async def _get(jp_fetch: Any, *path: str) -> Any:
    return await jp_fetch("mlmagic", "api", *path)


# --- a run ------------------------------------------------------------------------------


async def test_the_overview_has_params_models_and_the_environment_version(
    api: Any, ws: Workspace
) -> None:
    paths = _finished(ws)
    paths.params.write_text(json.dumps({"C": 0.5, "kernel": "rbf"}))
    (paths.outputs / "model.pkl").write_bytes(b"weights")
    run = ws.runs.get(DONE)
    run.register_model("digits", "outputs/model.pkl")
    overview = await api("runs", DONE, "overview")
    assert overview["status"] == "Completed" and overview["live"] is False
    assert overview["params"] == {"C": 0.5, "kernel": "rbf"}
    (model,) = overview["models"]
    assert (model["ref"], model["run_id"], model["file"]) == ("digits:1", DONE, "model.pkl")
    env = overview["environment_version"]
    assert env["ref"] == "six-env:1" and env["status"] == "registered"
    assert env["image"] == ws.environments.get("six-env", 1).image
    assert list(overview["stages"]) == ["Queued"]


async def test_metrics_follow_a_live_run_with_since(
    api: Any, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = add_run(ws, LIVE, "Running", started=time.time() - 5,
                    stages=("Queued", "Preparing", "Starting", "Running"))  # fmt: skip
    _log(monkeypatch, paths, ("loss", 1, 1.0), ("loss", 2, 0.5), ("acc", 1, float("nan")))
    first = await api("runs", LIVE, "metrics")
    assert [(m["name"], m["step"], m["value"]) for m in first["metrics"]] == [
        ("loss", 1, 1.0),
        ("loss", 2, 0.5),
        ("acc", 1, None),  # NaN: JSON has no word for it
    ]
    assert first["live"] is True and first["status"] == "Running"
    assert first["cursor"] == paths.metrics.stat().st_size

    idle = await api("runs", LIVE, "metrics", params={"since": str(first["cursor"])})
    assert idle["metrics"] == [] and idle["cursor"] == first["cursor"]

    _log(monkeypatch, paths, ("loss", 3, 0.25), ("loss", 3, 0.3), rank=1)
    with open(paths.metrics, "ab") as file:
        file.write(b'{"name": "loss", "st')  # a line the script is still writing
    more = await api("runs", LIVE, "metrics", params={"since": str(first["cursor"])})
    assert [(m["step"], m["value"], m["rank"]) for m in more["metrics"]] == [
        (3, 0.25, 1),
        (3, 0.3, 1),
    ]
    assert more["cursor"] < paths.metrics.stat().st_size  # the partial line waits

    ws.store.update_run(LIVE, status="Completed", ended=time.time())
    done = await api("runs", LIVE, "metrics", params={"since": str(more["cursor"])})
    assert done["live"] is False and done["metrics"] == []


async def test_files_are_listed_with_sizes_without_following_links(
    api: Any, ws: Workspace, tmp_path: Path
) -> None:
    paths = _finished(ws)
    (paths.outputs / "sub").mkdir()
    (paths.outputs / "sub" / "report.txt").write_text("hello\n")
    (paths.outputs / "model.pkl").write_bytes(b"x" * 1000)
    (paths.logs / "train.log").write_text("line\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host file")
    (paths.outputs / "link.txt").symlink_to(outside / "secret.txt")
    (paths.outputs / "folder-link").symlink_to(outside)
    os.mkfifo(paths.outputs / "pipe")
    reply = await api("runs", DONE, "files")
    listed = {f["path"]: (f["size"], f["kind"]) for f in reply["files"]}
    assert listed == {
        "logs/train.log": (5, "file"),
        "outputs/folder-link": (None, "link"),
        "outputs/link.txt": (None, "link"),
        "outputs/model.pkl": (1000, "file"),
        "outputs/sub/report.txt": (6, "file"),
    }
    assert reply["truncated"] is False
    # The workspace is .mlmagic under the root: hidden from JupyterLab's file browser.
    assert reply["lab_path"] is None


@pytest.mark.parametrize(
    ("name", "body", "kind", "disposition"),
    [
        ("report.txt", b"hello\n", "text/plain; charset=utf-8", "inline"),
        ("plot.png", b"\x89PNG\r\n\x1a\n....", "image/png", "inline"),
        ("metrics.json", b"{}", "application/json; charset=utf-8", "inline"),
        ("page.html", b"<script>alert(1)</script>", "text/html; charset=utf-8", "attachment"),
        ("drawing.svg", b"<svg onload='x()'/>", "image/svg+xml", "attachment"),
        ("weights", b"\x00\x01", "application/octet-stream", "inline"),
    ],
)
async def test_a_file_is_served_with_its_type_and_nosniff(
    jp_fetch: Any, ws: Workspace, name: str, body: bytes, kind: str, disposition: str
) -> None:
    paths = _finished(ws)
    (paths.outputs / name).write_bytes(body)
    reply = await _get(jp_fetch, "runs", DONE, "files", "outputs", name)
    assert reply.body == body
    assert reply.headers["Content-Type"] == kind
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Disposition"].startswith(disposition)
    assert reply.headers["Content-Security-Policy"].startswith("sandbox")


async def test_no_file_outside_the_outputs_and_logs_is_served(
    jp_fetch: Any, ws: Workspace, tmp_path: Path
) -> None:
    paths = _finished(ws)
    paths.params.write_text('{"C": 1}')
    secret = tmp_path / "host-secret.txt"
    secret.write_text("a host file the run must not reach\n")
    (paths.outputs / "link.txt").symlink_to(secret)
    (paths.outputs / "up").symlink_to(tmp_path)
    for name in ("outputs/../system/params.json", "system/params.json", "snapshot/train.py",
                 "outputs/../../../../etc/passwd", "events.jsonl"):  # fmt: skip
        code, error = await _error(jp_fetch, "runs", DONE, "files", name)
        assert code == 400, (name, code, error)
    for name in ("outputs/link.txt", "outputs/up/host-secret.txt"):
        code, error = await _error(jp_fetch, "runs", DONE, "files", name)
        assert code == 409 and "symbolic link" in error, error
        assert "must not reach" not in error
    code, error = await _error(jp_fetch, "runs", DONE, "files", "outputs/missing.bin")
    assert code == 404 and "outputs/missing.bin" in error


def test_file_names_are_checked_as_words() -> None:
    assert str(plain_name("outputs/./a/b.txt")) == "outputs/a/b.txt"
    for name in ("/etc/passwd", "outputs/../x", "outputs", "logs/", "outputs\\..\\x", "x/y"):
        with pytest.raises(BadFileName):
            plain_name(name)
    assert content_headers("archive.tar.gz")["Content-Type"] == "application/octet-stream"
    assert content_headers("app.js")["Content-Disposition"].startswith("attachment")


def test_lab_path_only_where_the_file_browser_reaches(tmp_path: Path) -> None:
    run = tmp_path / "project" / ".mlmagic" / "runs" / "r1"
    run.mkdir(parents=True)
    root = tmp_path / "project"
    assert lab_path(run, root, allow_hidden=False) is None
    assert lab_path(run, root, allow_hidden=True) == ".mlmagic/runs/r1"
    assert lab_path(run, root / "elsewhere", allow_hidden=True) is None
    visible = tmp_path / "project" / "ws" / "runs" / "r1"
    visible.mkdir(parents=True)
    assert lab_path(visible, root, allow_hidden=False) == "ws/runs/r1"


# --- several runs, models, lineage, environments ----------------------------------------


async def test_compare_gives_params_and_last_metrics(
    api: Any, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _finished(ws, DONE)
    second = _finished(ws, "digits_20240101-120200_cccccc")
    first.params.write_text('{"C": 0.5, "kernel": "rbf"}')
    second.params.write_text('{"C": 2.0, "kernel": "rbf"}')
    _log(monkeypatch, first, ("loss", 1, 0.9), ("loss", 2, 0.4))
    _log(monkeypatch, second, ("loss", 1, 0.8), ("acc", 1, float("inf")))
    reply = await api("compare", params={"runs": f"{DONE},digits_20240101-120200_cccccc"})
    a, b = reply["runs"]
    assert (a["id"], a["params"], a["metrics"]) == (DONE, {"C": 0.5, "kernel": "rbf"},
                                                    {"loss": 0.4})  # fmt: skip
    assert (b["params"]["C"], b["metrics"]) == (2.0, {"loss": 0.8, "acc": None})
    assert a["status"] == "Completed" and a["environment"] == "six-env:1"


async def test_compare_refuses_no_runs_and_unknown_ones(jp_fetch: Any, ws: Workspace) -> None:
    _finished(ws)
    code, error = await _error(jp_fetch, "compare")
    assert code == 400 and "run ids" in error
    code, error = await _error(jp_fetch, "compare", params={"runs": f"{DONE},nope_1"})
    assert code == 404 and "nope_1" in error


async def test_models_and_lineage_from_a_service_to_the_image(api: Any, ws: Workspace) -> None:
    paths = _finished(ws)
    ws.store.update_run(DONE, image="mlmagic/env:abc123")
    (paths.outputs / "model.pkl").write_bytes(b"weights")
    ws.runs.get(DONE).register_model("digits", "outputs/model.pkl")
    add_service(ws, "digits-svc")  # serves digits:1 in six-env:1
    (model,) = (await api("models"))["models"]
    assert model["ref"] == "digits:1" and model["services"] == ["digits-svc"]
    assert model["run_id"] == DONE and model["environment"] == "six-env:1"

    lineage = await api("services", "digits-svc", "lineage")
    assert lineage["service"]["name"] == "digits-svc"
    assert lineage["environment"]["ref"] == "six-env:1"
    (served,) = lineage["models"]
    assert served["ref"] == "digits:1" and served["run"]["id"] == DONE
    assert served["run"]["image"] == "mlmagic/env:abc123"
    assert served["run_environment"]["image"] == ws.environments.get("six-env", 1).image


async def test_lineage_of_an_unknown_service_is_404(jp_fetch: Any, ws: Workspace) -> None:
    _finished(ws)
    code, error = await _error(jp_fetch, "services", "nope", "lineage")
    assert code == 404 and "nope" in error


async def test_environment_details_and_a_diff_of_two_versions(api: Any, ws: Workspace) -> None:
    _finished(ws)  # uses six-env:1
    ws.store.update_environment("six-env", 1, packages=["six==1.16.0", "numpy==1.26.0"])
    second = ws.environments.register(Environment.from_text("six-env", "six\nrequests\n"))
    assert second.version == 2
    ws.store.update_environment("six-env", 2, packages=["six==1.17.0", "numpy==1.26.0"])
    details = await api("environments", "six-env", "1")
    assert details["format"] == "pip" and details["versions"] == [2, 1]
    assert details["packages"] == ["six==1.16.0", "numpy==1.26.0"]
    assert "FROM " in details["dockerfile"]
    assert [r["id"] for r in details["runs"]] == [DONE]
    assert (await api("environments", "six-env", "2"))["runs"] == []

    diff = await api("environments", "six-env", "2", "diff", params={"with": "1"})
    assert (diff["old"], diff["new"]) == ("six-env:1", "six-env:2")
    changed = [line for line in diff["packages"].splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-six==1.16.0", "+six==1.17.0"]
    assert any(line.startswith("+") and "requests" in line
               for line in diff["dockerfile"].splitlines()[2:])  # fmt: skip
    same = await api("environments", "six-env", "2", "diff", params={"with": "2"})
    assert same["packages"] == "" and same["dockerfile"] == ""


async def test_studio_routes_need_the_token(jp_fetch: Any) -> None:
    for path in (("models",), ("runs", DONE, "files", "outputs", "x.txt")):
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("mlmagic", "api", *path, headers={"Authorization": ""})
        assert caught.value.code == 403
