"""Where a service runs: a container (``docker``) or a local process (``local``).

Both run the same scoring server (:mod:`mlmagic.serve`) on the same model files and
entry script; the container publishes its port on 127.0.0.1, the local process binds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.build.venv import plain_environment, venv_python, venv_root
from mlmagic.deploy.image import SERVE_PORT, build_inference_image, copy_app
from mlmagic.engine.base import ContainerSpec, ContainerState, PortBinding
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import DeployError, MlmagicError
from mlmagic.run.config import parse_gpus
from mlmagic.run.docker import HELPER, labels
from mlmagic.run.process import ProcessExecutor, cuda_visible_devices, spawn_detached

if TYPE_CHECKING:
    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.workspace import Workspace

__all__ = ["ContainerBackend", "ProcessBackend", "ServiceBackend", "backend_for"]

_SERVE_SOURCE = Path(__file__).resolve().parent.parent / "serve"
_SERVE_REQUIREMENT = "uvicorn[standard]>=0.30"


def server_settings(record: dict[str, Any]) -> dict[str, str]:
    """The scoring server's settings every backend passes: workers and key digests."""
    settings = {"MLMAGIC_WORKERS": str(record["config"]["workers"])}
    if record["key_hashes"]:
        settings["MLMAGIC_AUTH_KEYS_SHA256"] = ",".join(record["key_hashes"])
    return settings


def _port_taken(config: dict[str, Any]) -> str:
    return (
        f"Port {config['port']} on {config['host']} is taken: choose another with --port, "
        "or leave it out to pick a free one."
    )


class ServiceBackend(ABC):
    """Builds what a service runs from, and runs it."""

    @abstractmethod
    def build(
        self,
        ws: Workspace,
        name: str,
        config: dict[str, Any],
        env: Environment,
        models: Sequence[Model],
    ) -> Generator[BuildEvent, None, str]:
        """Make the service's artefact (an image, a folder); the generator returns it."""

    @abstractmethod
    def start(self, ws: Workspace, name: str, record: dict[str, Any]) -> str:
        """Start the server; return its handle."""

    @abstractmethod
    def state(self, handle: str) -> ContainerState | None:
        """What the handle names, or ``None`` when it is gone."""

    @abstractmethod
    def logs(self, ws: Workspace, name: str, handle: str) -> list[str]:
        """Every line the server printed."""

    @abstractmethod
    def stop(self, handle: str) -> None:
        """Stop the server and remove what is left of it."""

    @abstractmethod
    def discard(self, ws: Workspace, name: str, artefact: str) -> None:
        """Remove the artefact (when the service is deleted)."""


class ContainerBackend(ServiceBackend):
    """An inference image and a container publishing the server's port."""

    def build(
        self,
        ws: Workspace,
        name: str,
        config: dict[str, Any],
        env: Environment,
        models: Sequence[Model],
    ) -> Generator[BuildEvent, None, str]:
        assert env.image is not None
        # One tag per workspace and rollout: two folders may both have a "digits-svc".
        tag = f"mlmagic-service-{name}:{_workspace_id(ws)}-{int(time.time() * 1000)}"
        yield from build_inference_image(
            ws.engine,
            env_image=env.image,
            models=models,
            source_dir=Path(config["source_dir"]),
            entry_script=config["entry_script"],
            tag=tag,
            log_path=ws.path("services", name, "build.log"),
            exclude=[ws.root],
        )
        return tag

    def start(self, ws: Workspace, name: str, record: dict[str, Any]) -> str:
        config = record["config"]
        environment = server_settings(record)
        gpus = parse_gpus(config.get("gpus") or "none")
        spec = ContainerSpec(
            image=record["image"],
            command=[],
            labels=labels(ws, "service", name),
            environment=environment,
            name=f"mlmagic-service-{name}-{int(time.time())}",
            gpus=gpus if not isinstance(gpus, str) else None,
            memory=config.get("memory"),
            cpus=config.get("cpus"),
            ports=[PortBinding(SERVE_PORT, config["port"], config["host"])],
        )
        try:
            return ws.engine.start(spec)
        except MlmagicError as exc:
            message = str(exc)
            if "allocated" in message or "address already in use" in message:
                message = _port_taken(config)
            raise DeployError(message) from exc

    def __init__(self, ws: Workspace) -> None:
        self._engine = ws.engine

    def state(self, handle: str) -> ContainerState | None:
        return self._engine.state(handle)

    def logs(self, ws: Workspace, name: str, handle: str) -> list[str]:
        return list(self._engine.logs(handle))

    def stop(self, handle: str) -> None:
        self._engine.stop(handle, timeout=5)
        self._engine.remove(handle)

    def discard(self, ws: Workspace, name: str, artefact: str) -> None:
        self._engine.remove_image(artefact)


class ProcessBackend(ServiceBackend):
    """A folder with the server, models and code, served by a process in the venv."""

    _processes = ProcessExecutor()

    def build(
        self,
        ws: Workspace,
        name: str,
        config: dict[str, Any],
        env: Environment,
        models: Sequence[Model],
    ) -> Generator[BuildEvent, None, str]:
        assert env.venv is not None
        python = str(venv_python(Path(env.venv)))
        folder = ws.path("services", name, "local")
        yield BuildEvent(BuildEventKind.STEP, step="[1/2] serving dependencies (uvicorn)")
        deps = _serve_deps(python)
        yield BuildEvent(BuildEventKind.LOG, message=f"serving dependencies in {deps}")
        yield BuildEvent(BuildEventKind.STEP, step="[2/2] server, models and code")
        staging = folder.with_name("local.new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(
            _SERVE_SOURCE,
            staging / "lib" / "mlmagic_serve",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for model in models:
            shutil.copytree(model.folder, staging / "models" / model.name / str(model.version))
        (staging / "models").mkdir(exist_ok=True)
        copy_app(
            Path(config["source_dir"]), staging / "app", config["entry_script"], exclude=[ws.root]
        )
        (staging / "deps").write_text(str(deps))
        (staging / "python").write_text(python)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        yield BuildEvent(BuildEventKind.DONE, image=str(folder))
        return str(folder)

    def start(self, ws: Workspace, name: str, record: dict[str, Any]) -> str:
        config = record["config"]
        folder = Path(record["image"])
        models = config["models"]
        model_dir = folder / "models"
        if len(models) == 1:
            model_name, _, version = models[0].partition(":")
            model_dir = model_dir / model_name / version
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
        environment.update(
            {
                "PYTHONPATH": str(folder / "lib"),
                "MLMAGIC_ENTRY_SCRIPT": str(folder / "app" / config["entry_script"]),
                "AZUREML_MODEL_DIR": str(model_dir),
                "MLMAGIC_MODEL_DIR": str(model_dir),
                "MLMAGIC_HOST": config["host"],
                "MLMAGIC_PORT": str(config["port"]),
                "PYTHONUNBUFFERED": "1",
                **server_settings(record),
            }
        )
        devices = cuda_visible_devices(parse_gpus(config.get("gpus") or "none"))
        if devices is not None:
            environment["CUDA_VISIBLE_DEVICES"] = devices
        python = (folder / "python").read_text()
        # Serving dependencies go after site-packages, so the user's pins win.
        bootstrap = (
            "import runpy, sys; "
            f"sys.path.append({(folder / 'deps').read_text()!r}); "
            "runpy.run_module('mlmagic_serve', run_name='__main__', alter_sys=True)"
        )
        log = ws.path("services", name, "service.log")
        log.write_text("")
        command = [python, str(HELPER), "exec", "--log", str(log), "--", python, "-c", bootstrap]
        return spawn_detached(command, cwd=folder / "app", env=environment)

    def state(self, handle: str) -> ContainerState | None:
        return self._processes.state(handle)

    def logs(self, ws: Workspace, name: str, handle: str) -> list[str]:
        try:
            text = ws.path("services", name, "service.log").read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()

    def stop(self, handle: str) -> None:
        self._processes.stop(handle, timeout=5)

    def discard(self, ws: Workspace, name: str, artefact: str) -> None:
        shutil.rmtree(artefact, ignore_errors=True)


def _serve_deps(python: str) -> Path:
    """A folder with uvicorn for ``python``'s version, shared by local services."""
    from uv import find_uv_bin

    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = venv_root() / f"serve-deps-py{version}"
    if (target / ".mlmagic-ready").exists():
        return target
    out = subprocess.run(
        [
            find_uv_bin(),
            "--color",
            "never",
            "pip",
            "install",
            "--python",
            python,
            "--target",
            str(target),
            _SERVE_REQUIREMENT,
        ],
        capture_output=True,
        text=True,
        env=plain_environment(),
    )
    if out.returncode != 0:
        raise DeployError(f"Installing the serving dependencies failed: {out.stderr.strip()}")
    (target / ".mlmagic-ready").write_text("")
    return target


def _workspace_id(ws: Workspace) -> str:
    import hashlib

    return hashlib.sha256(str(ws.root).encode()).hexdigest()[:10]


def backend_for(ws: Workspace, target: str) -> ServiceBackend:
    """The backend of a target."""
    return ProcessBackend() if target == "local" else ContainerBackend(ws)
