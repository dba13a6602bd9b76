"""The second materialiser: an environment as a virtual environment made with ``uv``.

For hosts with no Docker engine (Binder, a laptop without Docker). A venv is cached by the
same content hash as an image, under the user's cache folder, so a second use is
instant. It is built in place under a file lock and marked ready only at the end; a
failed build is removed, never left half-made.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from mlmagic.build.freeze import parse_freeze
from mlmagic.build.interpreter import choose_python
from mlmagic.build.steps import StepName, failure_message
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import BuildError, SpecError
from mlmagic.spec import EnvironmentSpec

__all__ = [
    "build_venv",
    "check_local",
    "local_python",
    "plain_environment",
    "venv_packages",
    "venv_path",
    "venv_python",
    "venv_root",
]

_READY = ".mlmagic-ready"
_CREATE = StepName("create the Python environment", "creating the Python environment")
_INSTALL = StepName("install the Python packages", "installing the Python packages")


def venv_root() -> Path:
    """Where venvs are cached: ``MLMAGIC_VENV_DIR``, else the user's cache folder."""
    override = os.environ.get("MLMAGIC_VENV_DIR")
    if override:
        return Path(override).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mlmagic" / "venvs"


def venv_path(key: str) -> Path:
    """The venv folder of a cache key."""
    return venv_root() / key[:20]


def venv_python(path: Path) -> Path:
    """The interpreter of a venv."""
    return path / "bin" / "python"


def local_python(spec: EnvironmentSpec) -> str:
    """The Python version a local environment gets: the one asked for, else this kernel's."""
    return spec.python or "{}.{}".format(*sys.version_info[:2])


def check_local(spec: EnvironmentSpec) -> None:
    """Refuse, in one line, what only a Docker engine can make."""
    if spec.dockerfile is not None:
        raise SpecError(
            "A Dockerfile environment needs a Docker engine: start Docker, or write the "
            "environment as requirements, conda or mlmagic YAML for the local target."
        )
    needs = []
    if spec.apt:
        needs.append(f"system packages (apt: {', '.join(spec.apt)})")
    if spec.dockerfile_steps:
        needs.append("dockerfile_steps")
    if spec.solver == "conda":
        needs.append("--solver conda")
    if needs:
        raise SpecError(
            f"{' and '.join(needs)} need a Docker engine: start Docker, or remove them to "
            "use the local target."
        )


def plain_environment() -> dict[str, str]:
    """This process's environment without forced colour (ipykernel sets FORCE_COLOR), so
    the output of the tools mlmagic reads and logs is plain text."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE")}
    env["NO_COLOR"] = "1"
    return env


def venv_packages(path: Path) -> list[str] | None:
    """The exact package list of a venv (uv pip freeze)."""
    from uv import find_uv_bin

    try:
        out = subprocess.run(
            [
                find_uv_bin(),
                "--color",
                "never",
                "pip",
                "freeze",
                "--python",
                str(venv_python(path)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env=plain_environment(),
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_freeze(out)


def build_venv(
    spec: EnvironmentSpec, key: str, *, log_path: Path, rebuild: bool = False
) -> Iterator[BuildEvent]:
    """Make (or find) the venv of ``spec``; yields build events, every line to ``log_path``.

    Raises
    ------
    BuildError
        uv could not find or fetch the Python asked for, or a package failed to install.
    """
    check_local(spec)
    target = venv_path(key)
    started = time.monotonic()
    yield BuildEvent(BuildEventKind.START, image=str(target), message=f"venv {target}")
    if (target / _READY).exists() and not rebuild:
        yield BuildEvent(BuildEventKind.DONE, image=str(target), cached=True, duration=0.0)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        # Another process may be making the same venv: wait for it, then use its work.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _READY).exists() and not rebuild:
            yield BuildEvent(BuildEventKind.DONE, image=str(target), cached=True, duration=0.0)
            return
        shutil.rmtree(target, ignore_errors=True)
        try:
            with open(log_path, "a", buffering=1, encoding="utf-8") as log:
                log.write(f"# local build of {target}\n")
                yield from _steps(spec, target, log, log_path)
            (target / _READY).write_text(f"{time.time()}\n")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    yield BuildEvent(BuildEventKind.DONE, image=str(target), duration=time.monotonic() - started)


def _steps(
    spec: EnvironmentSpec, target: Path, log: TextIO, log_path: Path
) -> Iterator[BuildEvent]:
    from uv import find_uv_bin

    uv = find_uv_bin()
    choice = choose_python(local_python(spec))
    python = choice.version
    commands: list[tuple[StepName, list[str]]] = [
        (_CREATE, [uv, "venv", "--python", choice.request, str(target)])
    ]
    if spec.pip:
        requirements = target.with_suffix(".requirements.txt")
        requirements.write_text("".join(f"{r}\n" for r in spec.pip))
        options: list[str] = []
        if spec.index_url:
            options += ["--index-url", spec.index_url]
        for url in spec.extra_index_urls:
            options += ["--extra-index-url", url]
        install = [uv, "pip", "install", "--python", str(venv_python(target)), *options]
        commands.append((_INSTALL, [*install, "-r", str(requirements)]))
    env = {**plain_environment(), **choice.uv_environment()}
    for pip_name, uv_name in (
        ("PIP_INDEX_URL", "UV_INDEX_URL"),
        ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"),
    ):
        if env.get(pip_name) and not env.get(uv_name):
            env[uv_name] = env[pip_name]
    for index, (name, command) in enumerate(commands, start=1):
        yield from _run_step(name, index, len(commands), command, env, log, log_path, python)


def _run_step(
    name: StepName,
    index: int,
    count: int,
    command: Sequence[str],
    env: dict[str, str],
    log: TextIO,
    log_path: Path,
    python: str,
) -> Iterator[BuildEvent]:
    step = f"[{index}/{count}] {name.label}"
    shown = " ".join(command)
    # The exact command in the log; the step list shows what it does.
    log.write(f"## {step}: {shown}\n")
    yield BuildEvent(
        BuildEventKind.STEP, step=step, message=shown, step_index=index, step_count=count
    )
    started = time.monotonic()
    tail: list[str] = []
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        errors="replace",
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            log.write(line + "\n")
            tail = [*tail[-29:], line]
            yield BuildEvent(BuildEventKind.LOG, message=line, step=step)
        code = process.wait()
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()
    if code != 0:
        if name is _CREATE:
            message = (
                f"No Python {python} could be found or fetched by uv: install it (for example "
                f"`uv python install {python}`) or drop --python."
            )
        else:
            message = failure_message(tail, name, f"{index}/{count}")
        log.write(f"# build failed: {message}\n")
        # The ERROR event is Environments.build's: one per failure, whatever the target.
        raise BuildError(message, step=step, log_tail=tail[-15:], log_path=str(log_path))
    yield BuildEvent(
        BuildEventKind.STEP_DONE,
        step=step,
        step_index=index,
        step_count=count,
        duration=time.monotonic() - started,
    )
