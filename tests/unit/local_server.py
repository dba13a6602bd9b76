"""A real Jupyter server with the mlmagic extension, running real runs on the local target
(no engine to fall back on), and the calls its REST tests make.

A test module takes the server with ``jp_server_config = local_server.jp_server_config``
beside ``pytest_plugins = ["pytest_jupyter.jupyter_server"]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from mlmagic.widgets.render import JUPYTER_BASE_URL_VARIABLE

__all__ = ["call", "jp_server_config", "post", "refused"]


@pytest.fixture
def jp_server_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The extension enabled, its runs on the local target in a venv folder of the test."""
    # The extension exports these to the kernels it starts, here into this process:
    # recording them first makes monkeypatch put them back after the test.
    for name in ("MLMAGIC_WORKSPACE", JUPYTER_BASE_URL_VARIABLE):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLMAGIC_TARGET", "local")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    return {"ServerApp": {"jpserver_extensions": {"mlmagic": True}}}


async def call(jp_fetch: Any, *path: str, **kwargs: Any) -> tuple[int, Any]:
    """The status and decoded JSON of a reply of ``/mlmagic/api/<path>``."""
    reply = await jp_fetch("mlmagic", "api", *path, **kwargs)
    return reply.code, json.loads(reply.body)


async def refused(jp_fetch: Any, *path: str, **kwargs: Any) -> tuple[int, str]:
    """The status and message of a call that must fail; the message is one line."""
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("mlmagic", "api", *path, **kwargs)
    response = caught.value.response
    assert response is not None
    message = json.loads(response.body)["error"]
    assert message and "\n" not in message
    return response.code, message


def post(body: dict[str, Any]) -> dict[str, Any]:
    """The ``jp_fetch`` arguments that POST ``body`` as JSON."""
    return {"method": "POST", "body": json.dumps(body)}
