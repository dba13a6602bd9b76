"""The Docker target: environments are images, runs and services are containers.

Every container carries the workspace's labels (:func:`~mlmagic.targets.labels.labels`),
mounts the helper module read-only, and is answered for by its container id. A run
container works in a copy of its snapshot (:mod:`mlmagic.run.working`), keeps the
``USER`` its image sets (:mod:`mlmagic.targets.image_user`), and the engine keeps only a
tail of its output: the launcher writes the whole log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlmagic.build.context import resolve_base
from mlmagic.build.image import build_image, resolved_packages
from mlmagic.build.notebook import build_notebook_image
from mlmagic.deploy.image import SERVE_PORT, build_inference_image
from mlmagic.engine.base import (
    ContainerEngine,
    ContainerSpec,
    ContainerState,
    GpuRequest,
    ImageInfo,
    Mount,
    PortBinding,
)
from mlmagic.events import BuildEvent, drain
from mlmagic.exceptions import DeployError, MlmagicError
from mlmagic.run.config import data_variable, parse_gpus
from mlmagic.run.notebook import is_notebook
from mlmagic.run.paths import CONTAINER, RunPaths
from mlmagic.run.working import working_copy
from mlmagic.targets.base import Materialised, Target
from mlmagic.targets.gang import DockerGang, is_gang
from mlmagic.targets.gpu import environment_cuda, gpu_preflight
from mlmagic.targets.image_user import give_run_folders, image_user
from mlmagic.targets.labels import AZUREML_SHIM, HELPER, NOTEBOOK_RUNNER, labels, workspace_id
from mlmagic.targets.serving import server_settings

if TYPE_CHECKING:
    from mlmagic.deploy.config import ServiceConfig
    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.records import RunRecord, ServiceRecord

__all__ = ["DockerTarget"]

# The image's python (our environments put one on PATH; a user's image may have python3).
_LAUNCH = (
    "PY=$(command -v python || command -v python3) || "
    '{ echo "mlmagic: no python in the image" >&2; exit 127; }; '
    f'exec "$PY" {CONTAINER.helper} exec --log {CONTAINER.in_system("output.log")} '
    f'--exit-file {CONTAINER.in_system("exit.json")} -- "$PY" -u "$@"'
)


# What a run container's engine log keeps (one file, rewritten when full).
_ENGINE_LOG_SIZE = "1m"
# The lines of a container's own output kept for a run that failed before logging.
_CONSOLE_LINES = 20


class DockerTarget(Target):
    """Images built by the engine; runs and services in labelled containers."""

    name = "docker"
    uses_engine = True

    @property
    def engine(self) -> ContainerEngine:
        """The container engine of the workspace."""
        assert self.context.engine is not None
        return self.context.engine

    # -- environments -----------------------------------------------------------------

    def log_name(self, version: int) -> str:
        return f"v{version}.log"

    @cached_property
    def _found(self) -> dict[str, ImageInfo]:
        """The images looked up as their environments were found or built, by tag: a run
        is started right after (:meth:`owner_of`), which need not ask the engine again."""
        return {}

    def find_environment(self, env: Environment) -> Materialised | None:
        assert env.image is not None
        info = self.engine.image_info(env.image)
        if info is None:
            return None
        self._found[env.image] = info
        # Built by another workspace (or before a crash): read what the store lacks.
        return Materialised(cached=True) if env.status == "ready" else self._inspect(env.image)

    def build_environment(
        self, env: Environment, *, log_path: Path, rebuild: bool = False
    ) -> Generator[BuildEvent, None, Materialised]:
        assert env.image is not None
        base = resolve_base(env.spec, self.context.config)
        yield from build_image(
            self.engine, env.spec, base, env.image, log_path=log_path, no_cache=rebuild
        )
        return self._inspect(env.image, cached=False)

    def _inspect(self, tag: str, *, cached: bool = True) -> Materialised:
        info = self.engine.image_info(tag)
        if info is not None:
            self._found[tag] = info
        return Materialised(
            cached=cached,
            size=info.size if info else None,
            packages=resolved_packages(self.engine, tag),
        )

    def location(self, env: Environment) -> str | None:
        return env.image

    def discard_environment(self, location: str) -> None:
        self.engine.remove_image(location)

    # -- runs ---------------------------------------------------------------------------

    @cached_property
    def gangs(self) -> DockerGang:
        """The distributed runs of this target (one, holding what runs still preparing
        have begun)."""
        return DockerGang(self)

    def begin_run(self, record: RunRecord) -> None:
        self.gangs.begin(record)

    def abandon_run(self, record: RunRecord) -> None:
        self.gangs.abandon(record)

    def gpu_problem(
        self, env: Environment | None = None, gpus: GpuRequest | None = None
    ) -> str | None:
        # The engine's runtime first: without the toolkit no driver matters. Without
        # nvidia-smi here the engine may be another machine's; its word stands.
        return self.engine.gpu_problem() or gpu_preflight(
            gpus, environment_cuda(env, self.context.config), need_nvidia_smi=False
        )

    def start_run(
        self, record: RunRecord, paths: RunPaths, env: Environment, gpus: GpuRequest | None
    ) -> str:
        assert env.image is not None
        working = working_copy(paths)
        # The mount points inside the working directory's mount, made now as this user:
        # the engine would make them as root, and a non-root user could not own or remove
        # them.
        for nested in (CONTAINER.outputs, CONTAINER.logs):
            (working / PurePosixPath(nested).relative_to(CONTAINER.src)).mkdir(exist_ok=True)
        owner = None
        if os.getuid() == 0:
            # Root's folders are not writable by an image's own non-root USER, which the
            # container keeps: hand the run's folders to that user (root can still
            # read and delete them).
            owner = self.owner_of(env.image)
            if owner is not None:
                give_run_folders(paths, *owner)
        image = env.image
        if is_notebook(record.config.script):
            # Made in Preparing (prepare_notebook): one lookup finds it.
            image = drain(build_notebook_image(self.engine, env.image, log_path=paths.notebook_log))
        if record.config.distributed is not None:
            return self.gangs.start(record, paths, image, gpus, owner)
        return self.engine.start(self.run_container(record, paths, image, gpus))

    def owner_of(self, image: str) -> tuple[int, int] | None:
        """The ``(uid, gid)`` the containers of ``image`` run as (``None``: root), from
        the lookup that found or built it when there was one (see
        :func:`~mlmagic.targets.image_user.image_user`)."""
        return image_user(self.engine, image, self._found.pop(image, None))

    def prepare_notebook(
        self, env: Environment, paths: RunPaths
    ) -> Generator[BuildEvent, None, None]:
        assert env.image is not None
        yield from build_notebook_image(self.engine, env.image, log_path=paths.notebook_log)

    def run_container(
        self, record: RunRecord, paths: RunPaths, image: str, gpus: GpuRequest | None
    ) -> ContainerSpec:
        """The container of a run on ``image`` (pure: nothing is started)."""
        config = record.config
        mounts = [
            # The snapshot stays as submitted: the script works in a copy of it.
            Mount(paths.working, CONTAINER.src),
            Mount(paths.outputs, CONTAINER.outputs),
            Mount(paths.logs, CONTAINER.logs),
            Mount(paths.system, CONTAINER.system),
            Mount(HELPER, CONTAINER.helper, read_only=True),
            # `from azureml.core import Run` with nothing installed (the real SDK wins).
            Mount(AZUREML_SHIM, f"{CONTAINER.lib}/azureml", read_only=True),
            Mount(NOTEBOOK_RUNNER, CONTAINER.notebook_runner, read_only=True),
        ]
        environment = {
            "MLMAGIC_RUN_ID": record.id,
            "MLMAGIC_OUTPUT_DIR": CONTAINER.outputs,
            "MLMAGIC_METRICS_FILE": CONTAINER.in_system("metrics.jsonl"),
            "MLMAGIC_PARAMS_FILE": CONTAINER.in_system("params.json"),
            "MLMAGIC_PROGRESS_FILE": CONTAINER.in_system("progress.jsonl"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": CONTAINER.lib,
            "MLMAGIC_LOG_MAX_BYTES": str(self.context.config.run_log_max_bytes),
        }
        for name, host_path in config.data.items():
            target = f"{CONTAINER.data}/{name}"
            mounts.append(Mount(Path(host_path), target, read_only=True))
            environment[data_variable(name)] = target
        user = None
        if os.getuid() != 0:
            # Files the script writes stay the user's own on the host.
            user = f"{os.getuid()}:{os.getgid()}"
            environment["HOME"] = "/tmp"
        shm_size = config.shm_size or (self.context.config.default_shm_size if gpus else None)
        return ContainerSpec(
            image=image,
            command=["sh", "-c", _LAUNCH, "mlmagic-run", *config.argv],
            labels=labels(self.context.root, "run", record.id),
            environment=environment,
            mounts=mounts,
            working_dir=CONTAINER.src,
            name=f"mlmagic-run-{record.id}",
            gpus=gpus,
            shm_size=shm_size,
            memory=config.memory,
            cpus=config.cpus,
            user=user,
            # The launcher writes every line to the run's log: the engine keeps a tail,
            # for what a container prints before the launcher runs.
            engine_log_size=_ENGINE_LOG_SIZE,
        )

    def has_command(self, env: Environment, command: str) -> bool:
        assert env.image is not None
        return self.engine.has_command(env.image, command)

    def nodes(self, handle: str) -> list[dict[str, Any]]:
        return self.gangs.nodes(handle) if is_gang(handle) else []

    def exit_message(self, handle: str) -> str | None:
        return self.gangs.exit_message(handle) if is_gang(handle) else None

    def console(self, handle: str) -> list[str]:
        if is_gang(handle):
            return self.gangs.console(handle, _CONSOLE_LINES)
        return list(self.engine.logs(handle))[-_CONSOLE_LINES:]

    def state(self, handle: str) -> ContainerState | None:
        if is_gang(handle):
            return self.gangs.state(handle)
        return self.engine.state(handle)

    def wait_exit(self, handle: str, timeout: float) -> None:
        if is_gang(handle):
            super().wait_exit(handle, timeout)
        else:
            self.engine.wait_exit(handle, timeout)

    def stop(self, handle: str, timeout: float = 10) -> None:
        if is_gang(handle):
            self.gangs.stop(handle, timeout)
        else:
            self.engine.stop(handle, timeout=timeout)

    def remove(self, handle: str) -> None:
        if is_gang(handle):
            self.gangs.remove(handle)
        else:
            self.engine.remove(handle)

    # -- services -----------------------------------------------------------------------

    def build_service(
        self,
        name: str,
        config: ServiceConfig,
        env: Environment,
        models: Sequence[Model],
    ) -> Generator[BuildEvent, None, str]:
        assert env.image is not None
        root = self.context.root
        # One tag per workspace and rollout: two folders may both have a "digits-svc".
        tag = f"mlmagic-service-{name}:{workspace_id(root)}-{int(time.time() * 1000)}"
        yield from build_inference_image(
            self.engine,
            env_image=env.image,
            models=models,
            source_dir=Path(config.source_dir),
            entry_script=config.entry_script,
            tag=tag,
            log_path=root / "services" / name / "build.log",
            exclude=[root],
        )
        return tag

    def start_service(self, record: ServiceRecord) -> str:
        config = record.config
        host = config.publish_host or config.host  # publish_host: an engine elsewhere's
        return self.publish_service(record, PortBinding(SERVE_PORT, config.port, host))

    def publish_service(self, record: ServiceRecord, binding: PortBinding) -> str:
        """Start the service's container published at ``binding``; the server answers
        the ``Host`` of ``record``'s own address (:func:`.serving.server_settings`)."""
        config = record.config
        assert record.image is not None
        gpus = parse_gpus(config.gpus or "none")
        spec = ContainerSpec(
            image=record.image,
            command=[],
            labels=labels(self.context.root, "service", record.name),
            environment=server_settings(record),
            name=f"mlmagic-service-{record.name}-{int(time.time())}",
            gpus=gpus if isinstance(gpus, GpuRequest) else None,
            memory=config.memory,
            cpus=config.cpus,
            ports=[binding],
        )
        try:
            return self.engine.start(spec)
        except MlmagicError as exc:
            message = str(exc)
            if "allocated" in message or "address already in use" in message:
                message = (
                    f"Port {binding.host_port} on {binding.host_ip} is taken: choose another "
                    "with --port, or leave it out to pick a free one."
                )
            raise DeployError(message) from exc

    def service_logs(self, name: str, handle: str) -> list[str]:
        return list(self.engine.logs(handle))

    def discard_service(self, name: str, artefact: str) -> None:
        self.engine.remove_image(artefact)
