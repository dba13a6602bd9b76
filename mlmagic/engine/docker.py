"""The Docker engine: docker-py for images and containers, the docker CLI for builds.

docker-py's build API waits for the whole build and cannot use BuildKit, so builds go
through the docker CLI with BuildKit (``docker buildx build --load`` where the buildx
plugin exists, else ``DOCKER_BUILDKIT=1 docker build`` on clients older than 23, which
build with BuildKit without the plugin). Everything else uses the Docker API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import docker.types
import requests.exceptions
from packaging.version import InvalidVersion, Version

from mlmagic.engine.base import (
    BuildRequest,
    ContainerEngine,
    ContainerSpec,
    ContainerState,
    ImageInfo,
)
from mlmagic.engine.endpoint import Endpoint, find_endpoint
from mlmagic.engine.progress import ProgressParser
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import BuildError, EngineError

try:  # docker-py's translation of run()'s arguments to the API's; private, so guarded
    from docker.models.containers import _create_container_args
except ImportError:  # pragma: no cover - a docker-py that renamed it: one inspect more
    _create_container_args = None

__all__ = ["DockerEngine", "run_arguments"]

# How long removal may take before it is reported (a loaded engine needs seconds).
_REMOVAL_WAIT = 60.0

_START_DOCKER = (
    "Start Docker (Docker Desktop, or `sudo dockerd` / `sudo systemctl start docker` on "
    "Linux), then try again."
)


class DockerEngine(ContainerEngine):
    """A Docker engine found the way the docker CLI finds it (see :mod:`.endpoint`).

    Parameters
    ----------
    cli
        The docker command to build with; empty finds one that can use BuildKit.
    endpoint
        The engine to talk to (a compute's); ``None`` finds it as the docker CLI does.
    """

    name = "docker"

    def __init__(self, cli: str = "", endpoint: Endpoint | None = None) -> None:
        self._cli_setting = cli
        if endpoint is not None:
            self.__dict__["endpoint"] = endpoint

    # -- connection ---------------------------------------------------------------------

    @cached_property
    def endpoint(self) -> Endpoint:
        """The engine the docker CLI would use now (``DOCKER_HOST``, context or socket).

        The CLI builds and docker-py runs, so both must reach this same engine.
        """
        return find_endpoint()

    @cached_property
    def _client(self) -> docker.DockerClient:
        try:
            client = self.endpoint.client(timeout=120)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(self._no_engine(exc)) from exc
        return client

    def _no_engine(self, cause: BaseException | None = None) -> str:
        if self.endpoint.explicit:
            return _unreachable(self.endpoint, cause)
        message = f"No Docker engine answers at {self.endpoint.describe()}. {_START_DOCKER}"
        if self.endpoint.context:
            message += " Or pick another engine with `docker context use NAME`."
        return message

    def ping(self) -> None:
        """Raise :class:`EngineError` unless the engine answers."""
        try:
            self._client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            self.__dict__.pop("_client", None)
            raise EngineError(self._no_engine(exc)) from exc

    def _api(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Call docker-py, mapping its errors to :class:`EngineError`."""
        try:
            return call(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            raise EngineError(f"Docker refused to {what}: {exc.explanation or exc}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            if self.endpoint.explicit:
                raise EngineError(f"Docker failed to {what}: {self._no_engine(exc)}") from exc
            raise EngineError(f"Docker failed to {what}: {exc}. {_START_DOCKER}") from exc

    # -- images ---------------------------------------------------------------------------

    def image_info(self, tag: str) -> ImageInfo | None:
        """The image with this tag, or ``None``."""
        try:
            image = self._api("inspect an image", self._client.images.get, tag)
        except docker.errors.NotFound:
            return None
        attrs = image.attrs
        return ImageInfo(
            tag=tag,
            id=image.id,
            size=int(attrs["Size"]),
            created=attrs["Created"],
            user=(attrs.get("Config") or {}).get("User") or "",
        )

    def remove_image(self, tag: str) -> None:
        """Remove an image; no error when it is gone."""
        with contextlib.suppress(docker.errors.NotFound):
            self._api("remove an image", self._client.images.remove, tag, force=True)

    def pull(self, image: str, auth: tuple[str, str] | None = None) -> None:
        """Pull ``image``, with ``(username, password)`` when given (not kept)."""
        auth_config = {"username": auth[0], "password": auth[1]} if auth else None
        try:
            self._api("pull an image", self._client.images.pull, image, auth_config=auth_config)
        except docker.errors.NotFound as exc:
            raise EngineError(f"The image {image} does not exist or needs a login.") from exc

    @cached_property
    def _build_command(self) -> list[str]:
        """The command prefix for a BuildKit build, found once."""
        candidates = [self._cli_setting] if self._cli_setting else []
        candidates += [shutil.which("docker") or "", "/usr/bin/docker"]
        for cli in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
            if _succeeds([cli, "buildx", "version"]):
                return [cli, "buildx", "build", "--load"]
            if _client_version(cli) < Version("23"):
                return [cli, "build"]
        raise EngineError(
            "Building needs a docker CLI that can use BuildKit: install the buildx plugin "
            "(docker-buildx-plugin) or set MLMagic.docker_cli to a docker client older than 23."
        )

    def build(self, request: BuildRequest) -> Iterator[BuildEvent]:
        """Build with BuildKit, yielding step, log and done events."""
        self.ping()
        cli, *build = self._build_command
        # The context (or compute) of this engine, named: the build lands where runs go.
        where = self.endpoint.cli_flags()
        command = [cli, *where, *build, "--progress=plain", "-t", request.tag]
        command += ["-f", str(request.context_dir / request.dockerfile)]
        for name, value in request.build_args.items():
            command += ["--build-arg", f"{name}={value}"]
        for secret_id, path in request.secrets.items():
            command += ["--secret", f"id={secret_id},src={path}"]
        if request.no_cache:
            command.append("--no-cache")
        command.append(str(request.context_dir))
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        parser = ProgressParser()
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            bufsize=1,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                yield from parser.feed(line)
            code = process.wait()
        finally:
            if process.poll() is None:
                # The consumer stopped early (an interrupt): stop the build too.
                process.terminate()
                process.wait()
        if code != 0:
            if parser.failed_step is None:
                message = "\n".join(parser.error_lines[-5:]) or f"exit code {code}"
                raise BuildError(f"The build of {request.tag} failed: {message}")
            raise BuildError(
                f"The build of {request.tag} failed at step {parser.failed_step}.",
                step=parser.failed_step,
                log_tail=parser.failed_tail[-15:],
            )
        yield BuildEvent(BuildEventKind.DONE, image=request.tag)

    def run_once(self, image: str, command: Sequence[str]) -> str:
        """Run ``command`` in a fresh container of ``image``; return its output."""
        try:
            output = self._api(
                "run a container",
                self._client.containers.run,
                image,
                list(command),
                remove=True,
                stdout=True,
                stderr=True,
                entrypoint=[],
            )
        except docker.errors.ContainerError as exc:
            stderr = exc.stderr.decode(errors="replace") if exc.stderr else ""
            raise EngineError(
                f"`{' '.join(command)}` failed in {image} (exit {exc.exit_status}): {stderr}"
            ) from exc
        except docker.errors.NotFound as exc:
            raise EngineError(f"The image {image} is not in the engine.") from exc
        return bytes(output).decode(errors="replace")

    # -- containers -----------------------------------------------------------------------

    def start(self, spec: ContainerSpec) -> str:
        """Create and start a container; return its id. One that cannot start is removed.

        Two requests (docker-py's ``containers.run`` reads the container back between
        them, and pulls an image it does not find: mlmagic builds the images it runs).
        """
        container_id = self.create(spec)
        try:
            self.start_created(container_id)
        except BaseException:
            with contextlib.suppress(EngineError):
                self.remove(container_id)
            raise
        return container_id

    def create(self, spec: ContainerSpec) -> str:
        """Create a container without starting it; return its id."""
        arguments = run_arguments(spec)
        arguments.pop("detach")
        # docker-py's containers.create inspects what it made, to return a model: the
        # id is all a caller needs, and a gang makes every node at once. Its own
        # translation of run()'s arguments to the API's stays in use.
        try:
            if _create_container_args is None:
                return str(
                    self._api(
                        "create a container",
                        self._client.containers.create,
                        spec.image,
                        **arguments,
                    ).id
                )
            arguments.update(image=spec.image, version=self._client.api._version)
            created = self._api(
                "create a container",
                self._client.api.create_container,
                **_create_container_args(arguments),
            )
        except docker.errors.ImageNotFound as exc:
            raise EngineError(f"The image {spec.image} is not in the engine.") from exc
        except docker.errors.NotFound as exc:  # its network, say
            raise EngineError(
                f"Docker refused to create a container: {exc.explanation or exc}"
            ) from exc
        return str(created["Id"])

    def start_created(self, container_id: str) -> None:
        """Start a container made by :meth:`create`."""
        try:
            self._api("start a container", self._client.api.start, container_id)
        except docker.errors.NotFound as exc:
            raise EngineError(
                f"Docker refused to start a container: {exc.explanation or exc}"
            ) from exc

    def put_archive(self, container_id: str, folder: str, archive: bytes) -> None:
        """Unpack a tar archive into ``folder`` of the container."""
        try:
            self._api(
                "copy files into a container",
                self._client.api.put_archive,
                container_id,
                folder,
                archive,
            )
        except docker.errors.NotFound as exc:
            raise EngineError(f"The container {container_id[:12]} is gone.") from exc

    def get_archive(self, container_id: str, path: str) -> Iterator[bytes] | None:
        """``path`` of the container as tar chunks, or ``None`` when it is gone."""
        try:
            stream, _ = self._api(
                "copy files out of a container", self._client.api.get_archive, container_id, path
            )
        except docker.errors.NotFound:
            return None
        return iter(stream)

    def state(self, container_id: str) -> ContainerState | None:
        """The container's state, or ``None`` once it is removed."""
        try:
            attrs = self._api(
                "inspect a container", self._client.api.inspect_container, container_id
            )
        except docker.errors.NotFound:
            return None
        return _state(attrs)

    def wait_exit(self, container_id: str, timeout: float) -> None:
        # The engine answers the moment the container stops: a poll of its state saw a
        # run's end a quarter of a second late on average, a third of a short run's cost.
        began = time.monotonic()
        try:
            self._client.api.wait(container_id, timeout=timeout, condition="not-running")
        except docker.errors.NotFound:
            return
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            # The timeout passed (the usual case), or the engine did not answer: the
            # caller's next look at the state says which. Never return early for it.
            time.sleep(max(0.0, timeout - (time.monotonic() - began)))

    def published_port(self, container_id: str, container_port: int) -> int | None:
        """The host port the engine published ``container_port`` on, if any."""
        try:
            attrs = self._api(
                "inspect a container", self._client.api.inspect_container, container_id
            )
        except docker.errors.NotFound:
            return None
        bindings = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(
            f"{container_port}/tcp"
        )
        return int(bindings[0]["HostPort"]) if bindings else None

    def logs(self, container_id: str, *, follow: bool = False) -> Iterator[str]:
        """The container's output as lines, from the start (on, with ``follow``)."""
        try:
            stream = self._api(
                "read logs",
                self._client.api.logs,
                container_id,
                stream=True,
                follow=follow,
                stdout=True,
                stderr=True,
            )
        except docker.errors.NotFound:
            return
        pending = b""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")

    def stop(self, container_id: str, timeout: float = 10) -> None:
        """Stop a container; no error when it is gone."""
        with contextlib.suppress(docker.errors.NotFound):
            self._api("stop a container", self._client.api.stop, container_id, timeout=int(timeout))

    def remove(self, container_id: str) -> None:
        """Remove a container; no error when it is gone. Returns once the engine has
        finished removing it (another remover may have begun first)."""
        try:
            self._client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            # 409: a removal is already under way (another process finalised the run).
            if exc.status_code != 409:
                raise EngineError(
                    f"Docker refused to remove a container: {exc.explanation or exc}"
                ) from exc
        except docker.errors.DockerException as exc:
            raise EngineError(
                f"Docker failed to remove a container: {exc}. {_START_DOCKER}"
            ) from exc
        deadline = time.monotonic() + _REMOVAL_WAIT
        while (state := self.state(container_id)) is not None:
            if time.monotonic() > deadline:
                raise EngineError(
                    f"Docker has not removed the container {container_id[:12]} after "
                    f"{_REMOVAL_WAIT:g} s (it is {state.status}): remove it with "
                    f"`docker rm -f {container_id[:12]}`."
                )
            time.sleep(0.1)

    def gpu_problem(self) -> str | None:
        """``None`` when the engine can give NVIDIA GPUs, else what is missing."""
        info = self._api("describe itself", self._client.info)
        if "nvidia" in (info.get("Runtimes") or {}):
            return None
        # The toolkit's tools here say something of this machine's engine only.
        local_tools = shutil.which("nvidia-container-cli") or shutil.which(
            "nvidia-container-runtime-hook"
        )
        if local_tools and not self.endpoint.explicit:
            return None
        return (
            "The Docker engine cannot give GPUs: the NVIDIA Container Toolkit is not installed "
            "(no nvidia runtime in `docker info`, no nvidia-container-cli). Install it, or use "
            "--gpus auto to run on the CPU when no GPU is available."
        )

    # -- gangs of containers ---------------------------------------------------------------

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Every container carrying all of ``labels`` (ended ones too).

        One listing; only the containers that are not running are inspected (their exit
        code and memory kill are not listed): a gang is followed by polling this.
        """
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        found = self._api("list containers", self._client.api.containers, all=True, filters=filters)
        states = [
            _listed(summary) if summary.get("State") == "running" else self.state(summary["Id"])
            for summary in found
        ]
        return [state for state in states if state is not None]

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        """Create a bridge network named ``name``."""
        self._api(
            "create a network",
            self._client.api.create_network,
            name,
            driver="bridge",
            labels=dict(labels),
            check_duplicate=True,
        )

    def remove_network(self, name: str) -> None:
        """Remove the network ``name``; no error when it is gone."""
        with contextlib.suppress(docker.errors.NotFound):
            self._api("remove a network", self._client.api.remove_network, name)


def _unreachable(endpoint: Endpoint, cause: BaseException | None) -> str:
    """Why a compute's engine does not answer, and what to check (one line)."""
    said = " ".join(str(cause).split())[:200] if cause else ""
    where = f"No Docker engine answers at {endpoint.describe()}"
    if endpoint.host.startswith("ssh://"):
        address = urlsplit(endpoint.host)
        port = f"-p {address.port} " if address.port else ""
        login = f"{address.username}@" if address.username else ""
        return (
            f"{where}: check that `ssh {port}{login}{address.hostname} docker version` works "
            "from this machine (the host is up, your key is in the SSH agent or "
            "~/.ssh/config, Docker runs there). "
            f"({said})"
        )
    return (
        f"{where}: check the address, that the engine listens there and, for TLS, the "
        f"--tls-* files. ({said})"
    )


def run_arguments(spec: ContainerSpec) -> dict[str, Any]:
    """docker-py's ``containers.run`` arguments for ``spec`` (pure; the GPU request, the
    limits and the published ports are decided here)."""
    kwargs: dict[str, Any] = {
        "command": list(spec.command),
        "labels": dict(spec.labels),
        "environment": dict(spec.environment),
        "working_dir": spec.working_dir,
        "name": spec.name,
        "detach": True,
        "init": spec.init,
        "entrypoint": [],
        "mounts": [
            docker.types.Mount(
                target=m.target, source=str(m.source), type="bind", read_only=m.read_only
            )
            for m in spec.mounts
        ],
    }
    if spec.user:
        kwargs["user"] = spec.user
    if spec.network:
        kwargs["network"] = spec.network
    if spec.hostname:
        kwargs["hostname"] = spec.hostname
    if spec.engine_log_size:
        # One file, rewritten when full: the engine keeps only a tail of the output.
        kwargs["log_config"] = docker.types.LogConfig(
            type="local",
            config={"max-size": spec.engine_log_size, "max-file": "1", "compress": "false"},
        )
    if spec.shm_size:
        kwargs["shm_size"] = spec.shm_size
    if spec.memory:
        kwargs["mem_limit"] = spec.memory
        # No swap beyond the limit: an out-of-memory script is killed, not slowed.
        kwargs["memswap_limit"] = spec.memory
    if spec.cpus:
        kwargs["nano_cpus"] = int(spec.cpus * 1e9)
    if spec.gpus is not None:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(
                count=spec.gpus.count if not spec.gpus.device_ids else None,
                device_ids=list(spec.gpus.device_ids) or None,
                capabilities=[["gpu"]],
            )
        ]
    if spec.ports:
        # Host port 0: the engine picks a free one (see published_port).
        kwargs["ports"] = {
            f"{p.container_port}/tcp": (p.host_ip, p.host_port or None) for p in spec.ports
        }
    return kwargs


def _state(attrs: Mapping[str, Any]) -> ContainerState:
    state = attrs["State"]
    return ContainerState(
        id=attrs["Id"],
        status=state["Status"],
        exit_code=state.get("ExitCode") if state["Status"] in ("exited", "dead") else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        labels=dict(attrs["Config"].get("Labels") or {}),
        error=state.get("Error") or "",
    )


def _listed(summary: Mapping[str, Any]) -> ContainerState:
    """A running container's state from its line in the engine's listing."""
    return ContainerState(
        id=summary["Id"],
        status="running",
        exit_code=None,
        oom_killed=False,
        started_at=None,
        finished_at=None,
        labels=dict(summary.get("Labels") or {}),
    )


def _succeeds(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _client_version(cli: str) -> Version:
    try:
        out = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        return Version(out.split("+")[0].split("-")[0])
    except (OSError, subprocess.TimeoutExpired, InvalidVersion):
        return Version("9999")
