"""Rolling a service out: build what it runs from, (re)start the server, wait until ready.

Each step is a generator of :class:`~mlmagic.events.BuildEvent` (see :mod:`mlmagic.events`
for what a deployment yields). The readiness wait is a strategy in the manner of
testcontainers': it says what it waited for and for how long, and on a timeout or an
early exit the server's last log lines travel with the error.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic import hints
from mlmagic.deploy.config import ServiceConfig
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import DeployError, MlmagicError, NotFoundError
from mlmagic.run.snapshot import ignored_by

if TYPE_CHECKING:
    from mlmagic.models import Model
    from mlmagic.targets.base import Target
    from mlmagic.workspace import Workspace

__all__ = [
    "HttpReady",
    "NotReady",
    "check_entry",
    "healthy",
    "resolve_models",
    "restart",
    "rollout",
]

_TAIL = 15


class NotReady(DeployError):
    """A server did not become ready: why, and the last lines it printed.

    Parameters
    ----------
    reason
        What was waited for, for how long, and what happened instead.
    log_tail
        The server's last log lines.
    """

    def __init__(self, reason: str, log_tail: Sequence[str]) -> None:
        self.reason = reason
        self.log_tail = list(log_tail)
        tail = "\n".join(self.log_tail) or "(it printed nothing)"
        super().__init__(f"{reason}. Its last lines:\n{tail}")


def healthy(url: str, timeout: float = 5) -> bool:
    """Whether the server at ``url`` answers ``GET /`` with 200."""
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def resolve_models(ws: Workspace, refs: Sequence[str | Model]) -> list[Model]:
    """The models ``refs`` name (at least one), each a registered version.

    Raises
    ------
    NotFoundError
        A model or version is not registered.
    DeployError
        No model is given.
    """
    if not refs:
        raise DeployError("Give at least one model: --model NAME[:VERSION].")
    return [ws.models.resolve(r) for r in refs]


def check_entry(config: ServiceConfig) -> None:
    """Refuse an entry script that is missing or that the folder's ignore rules leave out."""
    source = Path(config.source_dir)
    entry = config.entry_script
    if not (source / entry).is_file():
        raise DeployError(
            f"No entry script {entry} in {source}: check --entry, or pass --source-dir "
            "with the folder that holds it."
        )
    rules = ignored_by(source, entry)
    if rules is not None:
        raise DeployError(
            f"{entry} is left out of the copy of {source} by {rules.name}: change that "
            "file, or add a .mlignore (used instead of .amlignore and .gitignore)."
        )


@dataclass(frozen=True)
class HttpReady:
    """Ready when ``GET {url}/`` answers 200, within ``timeout`` seconds.

    Attributes
    ----------
    url
        The server's base URL.
    timeout
        Seconds to wait before giving up.
    interval
        Seconds between checks.
    """

    url: str
    timeout: float
    interval: float = 0.2

    @property
    def what(self) -> str:
        """What is waited for, in the words of an error message."""
        return f"GET {self.url}/ to answer 200"

    def wait(self, name: str, target: Target, handle: str) -> Generator[BuildEvent, None, float]:
        """Wait, yielding each new log line of the server; return the seconds it took.

        Raises
        ------
        NotReady
            The server ended first, or ``timeout`` passed: what was waited for, for how
            long, and the server's last log lines.
        """
        started = time.monotonic()
        shown = 0
        while True:
            lines = target.service_logs(name, handle)
            for line in lines[shown:]:
                yield BuildEvent(BuildEventKind.LOG, message=line, step="waiting for init()")
            shown = len(lines)
            waited = time.monotonic() - started
            if healthy(self.url):
                return waited
            state = target.state(handle)
            if state is None or not state.running:
                time.sleep(self.interval)  # let the last lines reach the log
                code = state.exit_code if state and state.exit_code is not None else "?"
                raise NotReady(
                    f"{name} stopped while starting (exit {code}), {waited:.1f} s into "
                    f"waiting for {self.what}",
                    target.service_logs(name, handle)[-_TAIL:],
                )
            if waited > self.timeout:
                raise NotReady(
                    f"{name} did not become ready: waited {waited:.1f} s for {self.what} "
                    f"(MLMagic.health_timeout is {self.timeout:g} s)",
                    lines[-_TAIL:],
                )
            time.sleep(self.interval)


def rollout(ws: Workspace, name: str, config: ServiceConfig) -> Generator[BuildEvent, None, None]:
    """Build what ``config`` needs and (re)start the server with it; the old artefact goes."""
    store = ws.store
    store.update_service(name, state="Transitioning", config=config, error=None)
    target = ws.target(config.target)
    try:
        env = ws.environments.resolve(config.environment)
        models = resolve_models(ws, config.models)
    except MlmagicError as exc:
        store.update_service(name, state="Failed", error=str(exc))
        yield BuildEvent(BuildEventKind.ERROR, message=str(exc).splitlines()[0])
        raise
    try:
        built = yield from ws.environments.build(env, target=config.target)
    except MlmagicError as exc:
        # The environment's build has said why in its own ERROR event.
        store.update_service(name, state="Failed", error=str(exc))
        raise
    try:
        artefact = yield from target.build_service(name, config, built, models)
    except MlmagicError as exc:
        store.update_service(name, state="Failed", error=str(exc))
        yield BuildEvent(BuildEventKind.ERROR, message=str(exc).splitlines()[0])
        raise
    record = store.service(name)
    previous = record.image if record else None
    store.update_service(name, image=artefact)
    yield from restart(ws, name)
    if previous and previous != artefact:
        target.discard_service(name, previous)


def restart(ws: Workspace, name: str) -> Generator[BuildEvent, None, None]:
    """Replace the server with a fresh one of the stored record; wait until it is ready."""
    store = ws.store
    record = store.service(name)
    if record is None:
        raise NotFoundError(f"No service {name}.", hint=hints.LIST_SERVICES)
    target = ws.target(record.target)
    if record.handle:
        target.stop_service(record.handle)
    yield BuildEvent(BuildEventKind.STEP, step="starting the server")
    try:
        handle = target.start_service(record)
    except MlmagicError as exc:
        store.update_service(name, state="Failed", error=str(exc))
        yield BuildEvent(BuildEventKind.ERROR, message=str(exc).splitlines()[0])
        raise DeployError(str(exc)) from exc
    store.update_service(name, handle=handle)
    yield BuildEvent(BuildEventKind.STEP, step="waiting for init()")
    ready = HttpReady(record.url, ws.config.health_timeout)
    try:
        waited = yield from ready.wait(name, target, handle)
    except NotReady as exc:
        running = (state := target.state(handle)) is not None and state.running
        tail = "\n".join(exc.log_tail)
        store.update_service(
            name, state="Unhealthy" if running else "Failed", error=f"{exc.reason}\n{tail}"
        )
        yield BuildEvent(BuildEventKind.ERROR, message=exc.reason)
        raise DeployError(str(exc), hint=hints.RELOAD_SERVICE.format(name=name)) from None
    store.update_service(name, state="Healthy")
    yield BuildEvent(BuildEventKind.DONE, image=record.url, duration=waited)
