"""Build an environment's image on a container engine, keeping every log line.

:func:`build_image` is a generator of :class:`BuildEvent`: it writes the build context,
pulls a private base image when a login is given, runs the engine's build and appends
every line of output to the log file as it arrives, whatever the consumer shows.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mlmagic.build.context import BuildContext
from mlmagic.build.dockerfile import ENV_PREFIX, ResolvedBase
from mlmagic.engine.base import BuildRequest, ContainerEngine
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import BuildError, EngineError
from mlmagic.spec import EnvironmentSpec

__all__ = ["build_image", "logged_build", "resolved_packages"]

# Prefer the environment mlmagic made; else whatever pip the image has.
_FREEZE = (
    f"if [ -x {ENV_PREFIX}/bin/python ] && command -v uv >/dev/null; then "
    f"uv pip freeze --python {ENV_PREFIX}/bin/python; "
    "elif command -v python3 >/dev/null; then python3 -m pip freeze; "
    "else python -m pip freeze; fi"
)


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
        yield from logged_build(
            engine, request, log_path, f"{tag} from {base.image or 'a Dockerfile'}"
        )


def logged_build(
    engine: ContainerEngine, request: BuildRequest, log_path: Path, what: str
) -> Iterator[BuildEvent]:
    """Run ``request`` on ``engine``, appending every line to ``log_path`` as it arrives.

    Yields ``START``, the engine's events, and ``DONE`` with the whole build's duration.
    A :class:`BuildError` is raised again with ``log_path`` attached.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        _write(log, f"# build of {what}")
        yield BuildEvent(BuildEventKind.START, image=request.tag, message=f"building {what}")
        try:
            for event in engine.build(request):
                _log_event(log, event)
                if event.kind is BuildEventKind.DONE:
                    duration = time.monotonic() - started
                    event = BuildEvent(BuildEventKind.DONE, image=request.tag, duration=duration)
                yield event
        except BuildError as exc:
            _write(log, f"# build failed: {exc}")
            raise BuildError(
                str(exc.args[0]).split("\n")[0],
                step=exc.step,
                log_tail=exc.log_tail,
                log_path=str(log_path),
            ) from exc


def resolved_packages(engine: ContainerEngine, image: str) -> list[str] | None:
    """The exact package list of ``image`` (a pip freeze taken inside it), if it has one."""
    try:
        output = engine.run_once(image, ["sh", "-c", _FREEZE])
    except EngineError:
        return None
    return sorted(line.strip() for line in output.splitlines() if line.strip())


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
        _write(log, f"## {event.step}")
    elif event.kind is BuildEventKind.LOG:
        _write(log, event.message)
    elif event.kind is BuildEventKind.STEP_DONE:
        state = "CACHED" if event.cached else f"done in {event.duration or 0:.1f}s"
        _write(log, f"## {event.step}: {state}")
    elif event.kind is BuildEventKind.DONE:
        _write(log, f"# built {event.image}")


def _write(log: TextIO, line: str) -> None:
    log.write(line + "\n")
