"""The readiness wait of a service, against real processes: what it says when it fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mlmagic.config import MLMagic
from mlmagic.deploy.rollout import HttpReady, NotReady
from mlmagic.deploy.service import free_port
from mlmagic.events import BuildEventKind, drain
from mlmagic.targets import TargetContext
from mlmagic.targets.local import LocalTarget
from mlmagic.targets.process import spawn_detached


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    (tmp_path / "services" / "svc").mkdir(parents=True)
    return LocalTarget(TargetContext(root=tmp_path, config=MLMagic()))


def _server(target: LocalTarget, code: str) -> str:
    """A process that prints into the service's log as a server would, then runs ``code``."""
    log = target.context.root / "services" / "svc" / "service.log"
    script = f"import sys, time\nprint('loading the model', flush=True)\n{code}\n"
    with open(log, "w") as out:
        out.write("")
    command = [sys.executable, "-c", f"import sys; sys.stdout = open({str(log)!r}, 'a')\n{script}"]
    return spawn_detached(command, cwd=target.context.root, env=dict(os.environ))


def test_a_server_that_never_answers_times_out_saying_what_it_waited_for(target):
    handle = _server(target, "time.sleep(60)")
    url = f"http://127.0.0.1:{free_port()}"
    lines: list[str] = []
    try:
        with pytest.raises(NotReady) as info:
            drain(
                HttpReady(url, timeout=1, interval=0.1).wait("svc", target, handle),
                lambda e: lines.append(e.message) if e.kind is BuildEventKind.LOG else None,
            )
    finally:
        target.stop(handle, timeout=2)
    message = str(info.value)
    assert f"GET {url}/ to answer 200" in message and "health_timeout is 1 s" in message
    assert info.value.log_tail == ["loading the model"] and message.endswith("loading the model")
    assert lines == ["loading the model"]


def test_a_server_that_dies_is_reported_with_its_last_lines(target):
    handle = _server(target, "print('ValueError: no model here', flush=True)\nsys.exit(3)")
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NotReady) as info:
        drain(HttpReady(url, timeout=120, interval=0.1).wait("svc", target, handle))
    assert info.value.reason.startswith("svc stopped while starting")
    assert f"GET {url}/ to answer 200" in info.value.reason
    assert info.value.log_tail[-1] == "ValueError: no model here"
