"""Shared fixtures and the test tiers.

Tiers: ``tests/unit`` (no Docker), ``tests/docker`` (a real Docker engine; marked
``docker``), ``tests/e2e`` (a real browser; marked ``e2e``). ``scripts/test --fast`` runs
the first tier alone.

A test that needs Docker skips when no engine answers, except under ``CI=true``, where
it fails: CI must never pass by skipping the real-engine tier.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
#: The local base image the test command makes (no registry can be reached here).
BASE_IMAGE = os.environ.setdefault(
    "MLMAGIC_CPU_BASE_IMAGE", os.environ.get("MLMAGIC_TEST_BASE_IMAGE", "mlmagic-base:bookworm")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if TESTS / "docker" in path.parents:
            item.add_marker(pytest.mark.docker)
        if TESTS / "e2e" in path.parents:
            item.add_marker(pytest.mark.e2e)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine():  # type: ignore[no-untyped-def]
    """The real Docker engine, holding the local base image."""
    from mlmagic.engine.docker import DockerEngine
    from mlmagic.exceptions import EngineError

    engine = DockerEngine()
    try:
        engine.ping()
    except EngineError as exc:
        _unavailable(f"no Docker engine: {exc} (run scripts/setup-engine)")
    if engine.image_info(BASE_IMAGE) is None:
        _unavailable(f"the base image {BASE_IMAGE} is missing (run scripts/make-base-image)")
    return engine


@pytest.fixture
def config():  # type: ignore[no-untyped-def]
    """Fresh settings that read the environment (base image) now."""
    from mlmagic.config import MLMagic, set_config

    settings = MLMagic()
    set_config(settings)
    yield settings
    set_config(MLMagic())


@pytest.fixture
def workspace(tmp_path: Path, docker_engine, config, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh workspace in a temporary folder, on the real engine."""
    from mlmagic.workspace import Workspace

    root = tmp_path / ".mlmagic"
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(root))
    monkeypatch.chdir(tmp_path)
    Workspace._current.clear()
    ws = Workspace(root, engine=docker_engine, config=config)
    Workspace._current[root] = ws
    yield ws
    _delete_services_left(ws)


@pytest.fixture
def engine_calls(workspace, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every request the workspace's engine client sends from now on, as ``(method,
    path)`` with the API version left out (``("POST", "containers/create")``)."""
    from urllib.parse import urlsplit

    calls: list[tuple[str, str]] = []
    api = workspace.engine._client.api
    send = api.request

    def request(method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((method, urlsplit(url).path.split("/", 2)[-1]))
        return send(method, url, *args, **kwargs)

    monkeypatch.setattr(api, "request", request)
    return calls


@pytest.fixture
def local_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A workspace on the local target with no engine to fall back on (uv venvs and
    processes only), its venvs under the test's own folder."""
    from mlmagic.config import MLMagic
    from mlmagic.workspace import Workspace

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    monkeypatch.chdir(tmp_path)
    config = MLMagic()
    config.target = "local"
    return Workspace(tmp_path / ".mlmagic", config=config)


@pytest.fixture(scope="session")
def venv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of local-target venvs for the whole session (a second use is instant)."""
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture(params=["docker", "local"])
def target(request: pytest.FixtureRequest, venv_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each target where behaviour is shared; child processes inherit the choice."""
    monkeypatch.setenv("MLMAGIC_TARGET", request.param)
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(venv_dir))
    return str(request.param)


@pytest.fixture
def target_workspace(request, target, tmp_path, config, monkeypatch):  # type: ignore[no-untyped-def]
    """A fresh workspace on ``target``: the real Docker engine, or local venvs and processes."""
    from mlmagic.workspace import Workspace

    engine = request.getfixturevalue("docker_engine") if target == "docker" else None
    config.target = target
    root = tmp_path / ".mlmagic"
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(root))
    monkeypatch.chdir(tmp_path)
    Workspace._current.clear()
    ws = Workspace(root, engine=engine, config=config)
    Workspace._current[root] = ws
    yield ws
    _delete_services_left(ws)


def _delete_services_left(ws) -> None:  # type: ignore[no-untyped-def]
    """A test that failed before deleting its service must not leave the server running."""
    from mlmagic.exceptions import MlmagicError

    for record in ws.store.services():
        with contextlib.suppress(MlmagicError):
            ws.services.get(record.name).delete()


@pytest.fixture
def shell(workspace) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A real IPython shell with ``%load_ext mlmagic`` done, on ``workspace``."""
    from IPython.core.interactiveshell import InteractiveShell

    main = sys.modules["__main__"]
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "mlmagic")
    yield ip
    ip.run_line_magic("reset", "-f")
    # The shell swaps in its own __main__; multiprocessing's spawn needs the real one.
    sys.modules["__main__"] = main
