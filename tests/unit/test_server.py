"""The REST handlers of the Jupyter server extension, through a real Jupyter server.

pytest-jupyter starts the server in this process with the extension enabled; the workspace
is a folder of real records (the store, the run folders and their logs), written here the
way a kernel writes them. No container engine is involved: nothing here starts a run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from mlmagic import Environment, Workspace
from mlmagic.deploy.config import ServiceConfig
from mlmagic.events import Status
from mlmagic.exceptions import (
    ConflictError,
    DeployError,
    EngineError,
    MlmagicError,
    NotFoundError,
    SpecError,
)
from mlmagic.records import RunRecord, ServiceRecord
from mlmagic.run import lifecycle
from mlmagic.run.config import RunConfig
from mlmagic.run.paths import RunPaths
from mlmagic.server import MLMagicServer
from mlmagic.server.handlers import BadRequest, error_status
from mlmagic.widgets.render import JUPYTER_BASE_URL_VARIABLE

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The extension enabled; its settings from an indirect parameter, if any."""
    # The extension exports these to the kernels it starts, here into this process:
    # recording them first makes monkeypatch put them back after the test.
    for name in ("MLMAGIC_WORKSPACE", JUPYTER_BASE_URL_VARIABLE):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return {
        "ServerApp": {"jpserver_extensions": {"mlmagic": True}},
        "MLMagicServer": getattr(request, "param", {}),
    }


@pytest.fixture
def ws(jp_root_dir: Path) -> Workspace:
    """The workspace of the server's root folder, made as a kernel started there would."""
    return Workspace(jp_root_dir / ".mlmagic")


@pytest.fixture
def api(jp_fetch: Any) -> Any:
    """``await api("runs", method=..., params=...)``: the decoded JSON of a reply."""

    async def call(*path: str, **kwargs: Any) -> Any:
        reply = await jp_fetch("mlmagic", "api", *path, **kwargs)
        return json.loads(reply.body)

    return call


async def _error(jp_fetch: Any, *path: str, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("mlmagic", "api", *path, **kwargs)
    response = caught.value.response
    assert response is not None
    assert response.headers["Content-Type"].startswith("application/json")
    return caught.value.code, json.loads(response.body)["error"]


def _dead_owner() -> str:
    """An owner id whose process has ended (a kernel that is gone)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def add_run(
    ws: Workspace,
    run_id: str,
    status: str,
    *,
    log: bytes = b"",
    owner: str | None = None,
    started: float | None = None,
    ended: float | None = None,
    exit_code: int | None = None,
    stages: tuple[str, ...] = ("Queued",),
) -> RunPaths:
    """A run record, its stages and its log, as the run's lifecycle writes them."""
    env = ws.environments.register(Environment.from_text("six-env", "six\n"))
    experiment = run_id.split("_")[0]
    config = RunConfig(
        script="train.py",
        environment=env.ref,
        source_dir=str(ws.root.parent),
        args=("--C", "0.5"),
        experiment=experiment,
    )
    ws.store.insert_run(
        RunRecord(
            id=run_id,
            experiment=experiment,
            status=Status.QUEUED,
            config=config,
            env_name=env.name,
            env_version=env.version,
            owner=owner or lifecycle.owner_id(),
        )
    )
    at = time.time() - 60
    for i, stage in enumerate(stages):
        ws.store.start_stage(run_id, stage, when=at + i)
    ws.store.update_run(run_id, status=status, started=started, ended=ended, exit_code=exit_code)
    paths = RunPaths(ws.path("runs", run_id))
    paths.create()
    paths.output_log.write_bytes(log)
    return paths


def add_service(ws: Workspace, name: str, state: str = "Failed") -> None:
    """A service record (its container long gone) as a deployment leaves it."""
    config = ServiceConfig(
        models=("digits:1",),
        environment="six-env:1",
        entry_script="score.py",
        source_dir=str(ws.root.parent),
        port=5001,
        target="local",
    )
    ws.store.insert_service(
        ServiceRecord(name=name, state=state, config=config, url="http://127.0.0.1:5001")
    )


# --- lists ------------------------------------------------------------------------------


async def test_lists_are_empty_and_nothing_is_created_without_a_workspace(
    api: Any, jp_root_dir: Path
) -> None:
    assert await api("environments") == {"environments": []}
    assert (await api("runs"))["runs"] == []
    assert await api("services") == {"services": []}
    info = await api("workspace")
    assert info["path"] == str(jp_root_dir / ".mlmagic") and info["exists"] is False
    assert not (jp_root_dir / ".mlmagic").exists()


async def test_environments_runs_and_services_are_listed(api: Any, ws: Workspace) -> None:
    now = time.time()
    add_run(ws, "digits_20240101-120000_aaaaaa", "Completed", started=now - 50, ended=now - 20,
            exit_code=0)  # fmt: skip
    add_run(ws, "digits_20240101-120100_bbbbbb", "Running", started=now - 5,
            stages=("Queued", "Preparing", "Starting", "Running"))  # fmt: skip
    add_service(ws, "digits-svc")

    (env,) = (await api("environments"))["environments"]
    assert (env["name"], env["version"], env["status"]) == ("six-env", 1, "registered")
    created = ws.environments.get("six-env", 1).created
    assert created and env["created"] == pytest.approx(created, abs=1e-3)

    reply = await api("runs")
    newest, oldest = reply["runs"]
    assert newest["id"] == "digits_20240101-120100_bbbbbb"
    assert (newest["status"], newest["live"], newest["experiment"]) == ("Running", True, "digits")
    assert 4 < newest["duration"] < 60 and newest["ended"] is None
    assert (oldest["status"], oldest["live"], oldest["exit_code"]) == ("Completed", False, 0)
    assert oldest["duration"] == pytest.approx(30)
    assert oldest["environment"] == "six-env:1"
    assert abs(reply["now"] - time.time()) < 5

    assert [r["id"] for r in (await api("runs", params={"limit": "1"}))["runs"]] == [newest["id"]]
    assert (await api("runs", params={"experiment": "other"}))["runs"] == []

    (service,) = (await api("services"))["services"]
    assert service["name"] == "digits-svc" and service["state"] == "Failed"
    assert service["url"] == "http://127.0.0.1:5001"
    assert service["scoring_uri"] == "http://127.0.0.1:5001/score"
    assert service["models"] == "digits:1"


async def test_a_poll_with_since_gets_only_what_changed(api: Any, ws: Workspace) -> None:
    now = time.time()
    add_run(ws, "digits_20240101-120000_aaaaaa", "Completed", started=now - 50, ended=now - 20,
            exit_code=0)  # fmt: skip
    add_run(ws, "digits_20240101-120100_bbbbbb", "Running", started=now - 5,
            stages=("Queued", "Preparing", "Starting", "Running"))  # fmt: skip
    first = await api("runs")
    assert first["full"] is True and len(first["runs"]) == 2
    idle = await api("runs", params={"since": str(first["cursor"])})
    assert (idle["runs"], idle["full"], idle["cursor"]) == ([], False, first["cursor"])
    assert abs(idle["now"] - time.time()) < 5

    ws.store.update_run("digits_20240101-120100_bbbbbb", cancel_requested=True)
    add_run(ws, "digits_20240101-120200_cccccc", "Queued")
    changed = await api("runs", params={"since": str(first["cursor"])})
    assert changed["full"] is False and changed["cursor"] > first["cursor"]
    assert [r["id"] for r in changed["runs"]] == [
        "digits_20240101-120200_cccccc",
        "digits_20240101-120100_bbbbbb",
    ]
    assert changed["runs"][1]["cancel_requested"] is True
    # A cursor this workspace never gave (its database was replaced): the whole listing.
    reset = await api("runs", params={"since": str(changed["cursor"] + 100)})
    assert reset["full"] is True and len(reset["runs"]) == 3


async def test_run_details(api: Any, ws: Workspace) -> None:
    now = time.time()
    add_run(ws, "digits_20240101-120000_aaaaaa", "Completed", started=now - 10, ended=now,
            exit_code=0, stages=("Queued", "Preparing", "Starting", "Running"))  # fmt: skip
    details = await api("runs", "digits_20240101-120000_aaaaaa")
    assert details["status"] == "Completed" and details["live"] is False
    assert details["script"] == "train.py" and details["args"] == ["--C", "0.5"]
    assert details["environment"] == "six-env:1"
    assert list(details["stages"]) == ["Queued", "Preparing", "Starting", "Running"]
    assert details["duration"] == pytest.approx(10)


# --- the log ----------------------------------------------------------------------------

LOG = "".join(f"step {i} · loss {1 / (i + 1):.4f} — ok\n" for i in range(100)).encode()


async def test_the_whole_log_is_plain_text(jp_fetch: Any, ws: Workspace) -> None:
    log = LOG * 1000 + b"<script>x</script>\n"  # 3.6 MB: streamed in several chunks
    add_run(ws, "digits_20240101-120000_aaaaaa", "Completed", log=log)
    reply = await jp_fetch("mlmagic", "api", "runs", "digits_20240101-120000_aaaaaa", "log")
    assert reply.body == log
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_offset_protocol_follows_a_live_log_on_character_boundaries(
    api: Any, ws: Workspace
) -> None:
    run_id = "digits_20240101-120000_aaaaaa"
    paths = add_run(ws, run_id, "Running", log=LOG)
    text, offset = "", 0
    # 7 bytes a request: "·" and "—" are cut in the middle again and again.
    while True:
        reply = await api("runs", run_id, "log", params={"offset": offset, "limit": 7})
        assert reply["live"] is True and reply["status"] == "Running"
        assert reply["offset"] >= offset
        text, offset = text + reply["text"], reply["offset"]
        if offset == reply["size"]:
            break
    assert text == LOG.decode() and offset == len(LOG)

    # The script prints more, half a character last; then the run ends.
    more = "epoch 2 — done ✓".encode()
    with open(paths.output_log, "ab") as log:
        log.write(more[:-1])
    reply = await api("runs", run_id, "log", params={"offset": offset})
    assert reply["text"] == "epoch 2 — done " and reply["offset"] == len(LOG) + len(more) - 3
    with open(paths.output_log, "ab") as log:
        log.write(more[-1:] + b"\n")
    ws.store.update_run(run_id, status="Completed", ended=time.time(), exit_code=0)
    reply = await api("runs", run_id, "log", params={"offset": reply["offset"]})
    assert reply["text"] == "✓\n" and reply["live"] is False
    assert reply["offset"] == reply["size"] == paths.output_log.stat().st_size
    # At the end an ended run answers with nothing more.
    again = await api("runs", run_id, "log", params={"offset": reply["offset"]})
    assert again["text"] == "" and again["offset"] == reply["offset"]


async def test_a_log_replaced_by_a_link_or_a_fifo_is_not_served(
    jp_fetch: Any, ws: Workspace, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"  # outside the run folder
    secret.write_text("a host file the run must not reach\n")
    for index, plant in enumerate(
        (lambda log: log.symlink_to(secret), lambda log: os.mkfifo(log)), start=1
    ):
        run_id = f"digits_20240101-120000_aaaaa{index}"
        paths = add_run(ws, run_id, "Completed", log=b"what the script printed\n")
        paths.output_log.unlink()
        plant(paths.output_log)  # as a script inside the run can
        for params in ({}, {"offset": "0"}):
            code, error = await _error(jp_fetch, "runs", run_id, "log", params=params)
            assert code == 409 and "not a file the run wrote" in error, error
            assert "must not reach" not in error
    assert secret.read_text() == "a host file the run must not reach\n"


async def test_a_run_without_log_lines_has_an_empty_log(api: Any, ws: Workspace) -> None:
    add_run(ws, "digits_20240101-120000_aaaaaa", "Queued")
    reply = await api("runs", "digits_20240101-120000_aaaaaa", "log", params={"offset": 0})
    assert reply == {"text": "", "offset": 0, "size": 0, "live": True, "status": "Queued"}


# --- cancel and delete ------------------------------------------------------------------


async def test_cancel_a_queued_run_whose_kernel_is_gone(api: Any, ws: Workspace) -> None:
    run_id = "digits_20240101-120000_aaaaaa"
    add_run(ws, run_id, "Queued", owner=_dead_owner())
    reply = await api("runs", run_id, "cancel", method="POST", body=b"")
    assert reply["status"] == "Canceled" and reply["live"] is False
    assert ws.runs.get(run_id).error == "canceled before it started"


async def test_cancel_a_live_run_asks_its_kernel(api: Any, ws: Workspace) -> None:
    run_id = "digits_20240101-120000_aaaaaa"
    add_run(ws, run_id, "Preparing", stages=("Queued", "Preparing"))
    reply = await api("runs", run_id, "cancel", method="POST", body=b"")
    # This process "owns" the run: its driving thread sees the request and stops it.
    assert reply["cancel_requested"] is True and reply["status"] == "Preparing"


async def test_delete_a_service(api: Any, jp_fetch: Any, ws: Workspace) -> None:
    add_service(ws, "digits-svc")
    add_service(ws, "other-svc")
    assert await api("services", "digits-svc", method="DELETE") == {"deleted": "digits-svc"}
    assert [s["name"] for s in (await api("services"))["services"]] == ["other-svc"]
    assert await _error(jp_fetch, "services", "digits-svc", method="DELETE") == (
        404,
        "No service digits-svc. ws.services.list() lists them.",
    )


# --- errors -----------------------------------------------------------------------------


async def test_unknown_runs_and_services_are_404(jp_fetch: Any, ws: Workspace) -> None:
    for path, method in [
        (("runs", "digits_1"), "GET"),
        (("runs", "digits_1", "log"), "GET"),
        (("runs", "digits_1", "cancel"), "POST"),
        (("services", "nope"), "DELETE"),
    ]:
        body = b"" if method == "POST" else None
        code, message = await _error(jp_fetch, *path, method=method, body=body)
        assert code == 404, (path, message)
        assert message.startswith(("No run digits_1 in ", "No service nope"))


async def test_unknown_run_before_any_workspace_is_404(jp_fetch: Any) -> None:
    code, message = await _error(jp_fetch, "runs", "digits_1")
    assert code == 404 and "has no runs yet" in message


async def test_bad_input_is_400(jp_fetch: Any, ws: Workspace) -> None:
    add_run(ws, "digits_20240101-120000_aaaaaa", "Completed", log=b"one line\n")
    log = ("runs", "digits_20240101-120000_aaaaaa", "log")
    cases = [
        (log, {"offset": "-1"}, "offset=-1: give a number from 0"),
        (log, {"offset": "ten"}, "offset='ten': give a whole number."),
        (log, {"offset": "100"}, "offset 100 is past the end of the log (9 bytes)."),
        (log, {"offset": "0", "limit": "0"}, "limit=0: give a number from 1"),
        (("runs",), {"limit": "5000"}, "limit=5000: give a number from 1 to 1000."),
        (("runs",), {"since": "later"}, "since='later': give a whole number."),
        (("runs",), {"since": "-3"}, "since=-3: give a number from 0"),
        (("runs", ".hidden"), {}, "'.hidden' is not a run id"),
        (("runs", "a b", "log"), {}, "'a b' is not a run id"),
        (("runs", "digits_1\n"), {}, "'digits_1\\n' is not a run id"),
    ]
    for path, params, message in cases:
        code, error = await _error(jp_fetch, *path, params=params)
        assert (code, error[: len(message)]) == (400, message), path
    for name in ("Bad_Name", "nope\n"):
        code, error = await _error(jp_fetch, "services", name, method="DELETE")
        assert code == 400 and "is not a service name" in error, name


async def test_cancel_an_ended_run_is_409(jp_fetch: Any, ws: Workspace) -> None:
    add_run(ws, "digits_20240101-120000_aaaaaa", "Completed", exit_code=0)
    code, error = await _error(
        jp_fetch, "runs", "digits_20240101-120000_aaaaaa", "cancel", method="POST", body=b""
    )
    assert code == 409
    assert (
        error
        == "Run digits_20240101-120000_aaaaaa has already ended (Completed): nothing to cancel."
    )


async def test_requests_need_the_token(jp_fetch: Any) -> None:
    for path, method in [(("runs",), "GET"), (("runs", "digits_1", "cancel"), "POST")]:
        with pytest.raises(HTTPClientError) as caught:
            body = b"" if method == "POST" else None
            await jp_fetch("mlmagic", "api", *path, method=method, body=body,
                           headers={"Authorization": ""})  # fmt: skip
        assert caught.value.code == 403


# --- the workspace ----------------------------------------------------------------------


async def test_kernels_get_the_workspace_and_the_base_url(
    api: Any, jp_root_dir: Path, jp_base_url: str
) -> None:
    info = await api("workspace")
    assert os.environ["MLMAGIC_WORKSPACE"] == info["path"] == str(jp_root_dir / ".mlmagic")
    assert os.environ[JUPYTER_BASE_URL_VARIABLE] == jp_base_url


@pytest.mark.parametrize("jp_server_config", [{"workspace": "elsewhere/.mlmagic"}], indirect=True)
async def test_the_workspace_is_configurable(api: Any, jp_root_dir: Path) -> None:
    other = Workspace(jp_root_dir / "elsewhere" / ".mlmagic")
    add_run(other, "digits_20240101-120000_aaaaaa", "Completed")
    info = await api("workspace")
    assert info["path"] == str(jp_root_dir / "elsewhere" / ".mlmagic") and info["exists"]
    assert [r["id"] for r in (await api("runs"))["runs"]] == ["digits_20240101-120000_aaaaaa"]


def test_the_default_workspace_is_found_like_a_kernel_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLMAGIC_WORKSPACE", raising=False)
    project = tmp_path / "project"
    assert Workspace(project / ".mlmagic").store  # made by a notebook at the project's top
    (project / "notebooks").mkdir()
    settings = MLMagicServer()
    assert settings.workspace_path(project / "notebooks") == project / ".mlmagic"
    assert settings.workspace_path(tmp_path / "new") == tmp_path / "new" / ".mlmagic"
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(tmp_path / "chosen"))
    assert settings.workspace_path(project) == tmp_path / "chosen"


def test_errors_map_by_type_not_by_their_text() -> None:
    assert error_status(NotFoundError("the model digits:9 is gone")) == 404
    assert error_status(ConflictError("digits-svc is taken")) == 409
    assert error_status(EngineError("No Docker engine answers")) == 503
    assert error_status(BadRequest("limit=0")) == error_status(SpecError("bad line")) == 400
    # Text that reads like "not found" is not a type: it maps as what it is.
    assert error_status(MlmagicError("No run x in /w")) == 500
    assert error_status(DeployError("No service x")) == 500
