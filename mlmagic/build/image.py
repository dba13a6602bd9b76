"""Build an environment's image on a container engine, keeping every log line.

:func:`build_image` is a generator of :class:`BuildEvent`: it writes the build context,
pulls a private base image when a login is given, runs the engine's build and appends
every line of output to the log file as it arrives, whatever the consumer shows.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from mlmagic.build.context import BuildContext
from mlmagic.build.dockerfile import ResolvedBase
from mlmagic.build.freeze import FREEZE_SCRIPT, parse_freeze
from mlmagic.build.steps import StepName, failure_message, name_instruction, split_label
from mlmagic.engine.base import BuildRequest, ContainerEngine
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import BuildError, EngineError
from mlmagic.spec import EnvironmentSpec

__all__ = ["build_image", "logged_build", "resolved_packages"]


def build_image(
    engine: ContainerEngine,
    spec: EnvironmentSpec,
    base: ResolvedBase,
    tag: str,
    *,
    log_path: Path,
    no_cache: bool = False,
) -> Iterator[BuildEvent]:
    """Build ``spec`` on ``base`` as ``tag``, yielding events; every line goes to ``log_path``.

    Raises
    ------
    BuildError
        The build failed; the message names the step and shows its last lines, and
        ``log_path`` holds the whole log.
    EngineError
        The engine does not answer or refused the request.
    """
    with tempfile.TemporaryDirectory(prefix="mlmagic-build-") as tmp:
        context_dir = Path(tmp) / "context"
        context_dir.mkdir()
        context = BuildContext(context_dir, spec, base)
        _pull_private_base(engine, spec, base, log_path)
        request = BuildRequest(
            context_dir=context_dir, tag=tag, secrets=context.secrets, no_cache=no_cache
        )
        what = f"{tag} from {base.image or 'a Dockerfile'}"
        # Why this base, where the build is watched (a GPU environment's base is chosen).
        notes = [f"mlmagic base: {base.reason}"] if base.reason else []
        yield from logged_build(engine, request, log_path, what, your_steps=True, notes=notes)


def logged_build(
    engine: ContainerEngine,
    request: BuildRequest,
    log_path: Path,
    what: str,
    *,
    your_steps: bool = False,
    notes: Sequence[str] = (),
) -> Iterator[BuildEvent]:
    """Run ``request`` on ``engine``, appending every line to ``log_path`` as it arrives.

    Yields ``START``, the engine's events with each step named for what it does (see
    :mod:`mlmagic.build.steps`; the raw instruction goes to the log), and ``DONE`` with the
    whole build's duration; on failure ``ERROR`` with the cause, before the error.

    Parameters
    ----------
    your_steps
        Instructions mlmagic did not write are the user's (an environment's build), and
        are shown as "your Dockerfile steps".
    notes
        Lines logged and yielded (``LOG``) right after ``START``, before the engine runs.

    Raises
    ------
    BuildError
        Its first line says the cause, then the step (``"scikit-lern==1.5 was not found
        in the package index (installing the Python packages, step 5/5)."``); ``step`` is
        the step's name, ``log_path`` the whole log.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    names = _StepNames(your_steps)
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        _write(log, f"# build of {what}")
        yield BuildEvent(BuildEventKind.START, image=request.tag, message=f"building {what}")
        for note in notes:
            _write(log, note)
            yield BuildEvent(BuildEventKind.LOG, message=note)
        try:
            for event in engine.build(request):
                event = names.rename(event)
                _log_event(log, event)
                if event.kind is BuildEventKind.DONE:
                    duration = time.monotonic() - started
                    event = BuildEvent(BuildEventKind.DONE, image=request.tag, duration=duration)
                yield event
        except BuildError as exc:
            label, name, position = names.failed(exc.step)
            tail = exc.log_tail or str(exc.args[0]).splitlines()
            if exc.step is None:
                # Failed before any step (the Dockerfile, the base image): no event
                # carried these lines into the log.
                for line in tail:
                    _write(log, line)
            message = failure_message(tail, name, position)
            _write(log, f"# build failed: {message}")
            # The ERROR event is the caller's (Environments.build, a rollout): one per failure.
            raise BuildError(
                message, step=label, log_tail=exc.log_tail, log_path=str(log_path)
            ) from exc


class _StepNames:
    """BuildKit's step labels (``[5/5] RUN --mount=...``) renamed for what they do."""

    def __init__(self, your_steps: bool) -> None:
        self._your_steps = your_steps
        self._names: dict[str, tuple[str, StepName]] = {}

    def rename(self, event: BuildEvent) -> BuildEvent:
        """``event`` with its step named; a ``STEP`` keeps the raw instruction as message."""
        if event.step is None:
            return event
        if event.kind is BuildEventKind.STEP:
            self._names[event.step] = self._name(event.step)
        known = self._names.get(event.step)
        return replace(event, step=known[0]) if known else event

    def failed(self, raw: str | None) -> tuple[str | None, StepName | None, str | None]:
        """The label, name and ``i/n`` position of the step that failed, when one did."""
        if raw is None:
            return None, None, None
        label, name = self._names.get(raw) or self._name(raw)
        index, count, _ = split_label(raw)
        return label, name, f"{index}/{count}" if index is not None else None

    def _name(self, raw: str) -> tuple[str, StepName]:
        index, count, instruction = split_label(raw)
        name = name_instruction(instruction, yours=self._your_steps)
        position = f"[{index}/{count}] " if index is not None else ""
        return position + name.label, name


def resolved_packages(engine: ContainerEngine, image: str) -> list[str] | None:
    """The exact package list of ``image`` (a pip freeze taken inside it), if it has one."""
    try:
        output = engine.run_once(image, ["sh", "-c", FREEZE_SCRIPT])
    except EngineError:
        return None
    return parse_freeze(output)


def _pull_private_base(
    engine: ContainerEngine, spec: EnvironmentSpec, base: ResolvedBase, log_path: Path
) -> None:
    """Pull a base image from a registry that needs a login, with the password from env."""
    registry = spec.registry
    if registry is None or registry.password_env is None:
        # No login, or Docker's own credential store: the build pulls as usual.
        return
    password = os.environ.get(registry.password_env)
    if not password:
        raise BuildError(
            f"The registry {registry.address} needs a password in the environment variable "
            f"{registry.password_env}, which is not set. Set it (never in the cell), or run "
            f"`docker login {registry.address}` and drop password_env."
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        _write(log, f"# pulling {base.image} as {registry.username}")
    engine.pull(base.image, auth=(registry.username, password))


def _log_event(log: TextIO, event: BuildEvent) -> None:
    if event.kind is BuildEventKind.STEP:
        # The raw instruction as well: the full log says exactly what ran.
        _write(log, f"## {event.step}: {event.message}" if event.message else f"## {event.step}")
    elif event.kind is BuildEventKind.LOG:
        _write(log, event.message)
    elif event.kind is BuildEventKind.STEP_DONE:
        state = "CACHED" if event.cached else f"done in {event.duration or 0:.1f}s"
        _write(log, f"## {event.step}: {state}")
    elif event.kind is BuildEventKind.DONE:
        _write(log, f"# built {event.image}")


def _write(log: TextIO, line: str) -> None:
    log.write(line + "\n")
