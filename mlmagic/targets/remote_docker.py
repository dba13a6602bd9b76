"""The Docker target on an engine that does not see this machine's folders.

Chosen for a ``docker`` compute whose engine does not share files
(:func:`mlmagic.computes.docker_host.compute_target`); builds, images and services are the
Docker target's own (the build context goes over the API). A run differs in how its files
travel, never in what it is:

- its container has no bind mounts: it is created, the run's files are copied into it
  (:func:`~mlmagic.targets.transfer.run_archive`), then it starts;
- its output, metrics and parameters come back as the engine's log stream
  (:class:`~mlmagic.targets.engine_logs.EngineLogRelay`);
- once it ended (completed, failed, canceled, timed out) its ``outputs/``, ``logs/`` and
  exit file are copied back before the container is removed.

Everything needed to follow a run from another process is on the engine (the container
and its labels) and in the workspace (the handle, the relay's line count), so a new
kernel re-attaches. An engine that stops answering fails the run after
:data:`ENGINE_GRACE` seconds with the reason, instead of leaving it Running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlmagic.deploy.image import SERVE_PORT
from mlmagic.engine.base import ContainerState, GpuRequest, PortBinding
from mlmagic.exceptions import DeployError, EngineError, RunError
from mlmagic.run.paths import CONTAINER, RunPaths
from mlmagic.targets import tunnel
from mlmagic.targets.base import Target, TargetContext
from mlmagic.targets.docker import DockerTarget
from mlmagic.targets.engine_logs import EngineLogRelay
from mlmagic.targets.transfer import run_archive, unpack

if TYPE_CHECKING:
    from mlmagic.environment import Environment
    from mlmagic.records import RunRecord, ServiceRecord

__all__ = ["ENGINE_GRACE", "RemoteDockerTarget"]

#: Seconds an engine may not answer before its runs are failed.
ENGINE_GRACE = 30.0
# Settings of the local launcher that mean nothing on another host.
_LOCAL_ONLY = ("HOME",)


class RemoteDockerTarget(DockerTarget):
    """Runs in containers of a remote engine, their files copied in and out."""

    def __init__(self, context: TargetContext, address: str) -> None:
        super().__init__(context)
        #: The engine's address (``ssh://``: services are reached through a forward
        #: unless published on an address of the host).
        self.address = address
        self._relays: dict[str, EngineLogRelay] = {}
        self._unanswered: dict[str, tuple[float, str]] = {}

    def wait_exit(self, handle: str, timeout: float) -> None:
        # A poll: an engine behind SSH that stops answering must still be looked at
        # every few seconds, so that a silent engine fails the run (see state).
        Target.wait_exit(self, handle, timeout)

    def gpu_count(self) -> int | None:
        return None  # the engine's machine is not this one: its GPUs are not counted here

    # -- starting -----------------------------------------------------------------------

    def start_run(
        self, record: RunRecord, paths: RunPaths, env: Environment, gpus: GpuRequest | None
    ) -> str:
        assert env.image is not None
        if record.config.distributed is not None:
            raise RunError(
                "Distributed runs need an engine that shares this machine's files: attach "
                "the compute with --shared-path if it does, or run it on this machine."
            )
        spec = self.run_container(record, paths, env.image, gpus)
        environment = {k: v for k, v in spec.environment.items() if k not in _LOCAL_ONLY}
        # Metrics and parameters travel in the log, the only stream back.
        environment.update(MLMAGIC_METRICS_FILE="-", MLMAGIC_PARAMS_FILE="-")
        spec = replace(
            spec,
            mounts=(),
            environment=environment,
            # The image's own user: this machine's uid means nothing there.
            user=None,
            # The relay reads the whole log, from its start, on any re-attach.
            engine_log_size=None,
        )
        files = run_archive(paths, record.config.data, self.owner_of(env.image))
        handle = self.engine.create(spec)
        try:
            self.engine.put_archive(handle, "/", files)
            self.engine.start_created(handle)
        except BaseException:
            with contextlib.suppress(EngineError):
                self.engine.remove(handle)
            raise
        self._relay(handle, paths).follow()
        return handle

    # -- following ----------------------------------------------------------------------

    def _paths(self, state: ContainerState) -> RunPaths | None:
        """The run's folder here, from the container's labels (``None``: not a run of
        this workspace)."""
        if state.labels.get("mlmagic.kind") != "run":
            return None
        if state.labels.get("mlmagic.workspace") != str(self.context.root):
            return None
        return RunPaths(self.context.root / "runs" / state.labels["mlmagic.id"])

    def _relay(self, handle: str, paths: RunPaths) -> EngineLogRelay:
        if handle not in self._relays:
            self._relays[handle] = EngineLogRelay(self.engine, handle, paths)
        return self._relays[handle]

    def state(self, handle: str) -> ContainerState | None:
        try:
            state = self.engine.state(handle)
        except EngineError as exc:
            return self._engine_silent(handle, str(exc))
        self._unanswered.pop(handle, None)
        if state is None:
            return None
        paths = self._paths(state)
        if paths is None:
            return state  # a service
        relay = self._relay(handle, paths)
        if state.running:
            if relay.thread is None or not relay.thread.is_alive():
                relay.follow()
            return state
        try:
            self._bring_back(handle, paths)
        except EngineError as exc:
            # It ended as its engine went away: the run ends, saying what was lost.
            self._unanswered.setdefault(handle, (time.monotonic(), str(exc)))
        return state

    def _engine_silent(self, handle: str, error: str) -> ContainerState:
        """A state while the engine does not answer: running for :data:`ENGINE_GRACE`
        seconds, then ended without an exit code (the run fails, saying why)."""
        since, _ = self._unanswered.get(handle, (time.monotonic(), error))
        self._unanswered[handle] = (since, error)
        ended = time.monotonic() - since > ENGINE_GRACE
        return ContainerState(
            id=handle,
            status="exited" if ended else "running",
            exit_code=None,
            oom_killed=False,
            started_at=None,
            finished_at=None,
            error=error,
        )

    def exit_message(self, handle: str) -> str | None:
        if handle in self._unanswered:
            error = self._unanswered[handle][1]
            return (
                f"the engine stopped answering for {ENGINE_GRACE:g} s, so the run's end is "
                f"unknown (its container may still run there; outputs were not copied back): "
                f"{error}"
            )
        return None

    def _bring_back(self, handle: str, paths: RunPaths) -> None:
        """Once the container ended: the rest of its log, then ``outputs/``, ``logs/`` and
        the exit file, copied here once (whichever process comes first)."""
        self._relay(handle, paths).finish()
        marker = paths.root / "engine-files.copied"
        fd = os.open(paths.root / "engine-files.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if marker.exists():
                return
            copies = (
                (CONTAINER.outputs, paths.outputs),
                (CONTAINER.logs, paths.logs),
                (CONTAINER.in_system("exit.json"), paths.exit_file),
            )
            for inside, here in copies:
                chunks = self.engine.get_archive(handle, inside)
                if chunks is not None:
                    unpack(chunks, here)
            marker.touch()
        finally:
            os.close(fd)

    def remove(self, handle: str) -> None:
        # Nothing is removed before what it made is here (a caller that never asked
        # its state, e.g. one finalising a run it found ended).
        with contextlib.suppress(EngineError):
            state = self.engine.state(handle)
            paths = self._paths(state) if state is not None else None
            if state is not None and paths is not None and not state.running:
                self._bring_back(handle, paths)
        self._relays.pop(handle, None)
        if handle in self._unanswered:
            return  # nothing can be removed from an engine that does not answer
        super().remove(handle)

    # -- services -----------------------------------------------------------------------

    def _service_folder(self, name: str) -> Path:
        return self.context.root / "services" / name

    def start_service(self, record: ServiceRecord) -> str:
        """Publish on the engine host's 127.0.0.1 only, at a port the engine picks, and
        forward the service's own port here to it over SSH; or, with ``publish_host``, on
        that address of the host at the service's port, reached directly."""
        config = record.config
        if config.publish_host is not None:
            return self.publish_service(
                record, PortBinding(SERVE_PORT, config.port, config.publish_host)
            )
        if self.address.startswith("unix://"):
            return super().start_service(record)  # this machine's loopback is the host's
        if not self.address.startswith("ssh://"):
            raise DeployError(
                f"A service on {self.address} would be reachable only on that host's "
                "loopback, and a tcp:// engine has no SSH to forward it over: deploy with "
                "--publish-host ADDRESS (one of that host's), or attach it as ssh://user@host."
            )
        # The server answers the forwarded address's Host, this machine's port.
        handle = self.publish_service(record, PortBinding(SERVE_PORT, 0, "127.0.0.1"))
        try:
            port = self.engine.published_port(handle, SERVE_PORT)
            if port is None:
                raise DeployError(f"The engine at {self.address} published no port for it.")
            tunnel.open_tunnel(self.address, config.port, port, self._service_folder(record.name))
        except BaseException:
            super().stop_service(handle)
            raise
        return handle

    def stop_service(self, handle: str) -> None:
        with contextlib.suppress(EngineError):
            state = self.engine.state(handle)
            if state is not None and state.labels.get("mlmagic.kind") == "service":
                tunnel.close(self._service_folder(state.labels["mlmagic.id"]))
        super().stop_service(handle)
