"""The Ray target: a run is a Ray job on a compute (a Ray cluster, :mod:`mlmagic.computes`).

The run's id is the job's ``submission_id``, so any process re-attaches to it; its
metadata carry the run id and experiment. The snapshot is the job's ``working_dir``; the
launcher (``mlmagic_run``, sent as a ``py_modules`` package) runs the script with the
environment's interpreter, by absolute path on a cluster mlmagic made; a notebook runs
under ``mlmagic_notebook``, sent the same way (see :meth:`RayTarget.prepare_notebook`).
The handle is ``ray:<compute>:<run id>``.

What comes back, and how:

- logs, metrics, params and a notebook's cells: the job's log, copied into the run's
  files as it comes by a :class:`~mlmagic.targets.ray_logs.LogPump` (metrics, params and
  progress travel in it as marker lines, taken out on this side);
- outputs: ``./outputs`` on the node is the run's folder in the compute's storage (a
  folder both sides see), so a notebook's executed copy is written there as it goes;
  they are copied into the run when the job ends, however it ends;
- the outcome: Ray's job status (PENDING is the run's Starting stage, RUNNING its
  Running, SUCCEEDED / FAILED / STOPPED its end), the driver's exit code and Ray's message.

A distributed run is one Ray job too, whose driver runs the gang: one node launcher per
worker, placed by a placement group (:mod:`mlmagic.targets.ray_gang`, and
:mod:`mlmagic.targets.ray_driver`, the driver itself).

A cluster that stops answering for :data:`_UNREACHABLE_GRACE` seconds ends the run as
Failed, saying so: the record is never left Running forever.
"""

from __future__ import annotations

import json
import shlex
import shutil
import threading
import time
from collections.abc import Generator, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlmagic.computes.client import JobInfo, RayJobs
from mlmagic.computes.cluster import WORKER_RESOURCE
from mlmagic.computes.record import Compute
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import DeployError, MlmagicError, RunError
from mlmagic.run.paths import RunPaths
from mlmagic.targets import ray_gang
from mlmagic.targets.base import Materialised, Target, TargetContext
from mlmagic.targets.labels import HELPER, NOTEBOOK_RUNNER
from mlmagic.targets.ray_logs import LogPump
from mlmagic_run import _script_error

if TYPE_CHECKING:
    from mlmagic.deploy.config import ServiceConfig
    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.records import RunRecord, ServiceRecord
    from mlmagic.run.config import RunConfig
    from mlmagic.store import Store

__all__ = ["RayTarget"]

_POLL = 0.25
_UNREACHABLE_GRACE = 30.0
_TAIL_BYTES = 65536
# A package Ray ships to the node as py_modules: `import mlmagic_run` and the launcher.
_PACKAGE = "mlmagic_run"
# The notebook runner, sent the same way for a notebook run: `python -m mlmagic_notebook`.
_NOTEBOOK_PACKAGE = "mlmagic_notebook"


class RayTarget(Target):
    """Runs as Ray jobs on the compute their config names."""

    name = "ray"
    needs_compute = True

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        self._pumps: dict[str, LogPump] = {}
        self._clients: dict[str, RayJobs] = {}
        self._unreachable: dict[str, float] = {}
        self._why: dict[str, str] = {}
        self._lock = threading.RLock()

    @cached_property
    def _store(self) -> Store:
        from mlmagic.store import Store

        return Store(self.context.root / "mlmagic.db")

    def _compute(self, name: str) -> Compute:
        row = self._store.compute(name)
        if row is None:
            raise RunError(
                f"The compute {name!r} is gone from this workspace (detached or taken "
                "down): the run cannot be followed there any more."
            )
        return Compute.from_row(row)

    def _jobs(self, name: str) -> RayJobs:
        """The Jobs API of compute ``name``, one client per compute and process."""
        with self._lock:
            if name not in self._clients:
                self._clients[name] = RayJobs(self._compute(name))
            return self._clients[name]

    @staticmethod
    def _parse(handle: str) -> tuple[str, str]:
        _, compute, run_id = handle.split(":", 2)
        return compute, run_id

    def _paths(self, run_id: str) -> RunPaths:
        return RunPaths(self.context.root / "runs" / run_id)

    # -- environments: made on the cluster, nothing to build here ---------------------

    def log_name(self, version: int) -> str:
        return f"v{version}.ray.log"

    def find_environment(self, env: Environment) -> Materialised | None:
        # A made cluster runs its environment's image; an attached one installs the
        # packages as the job's runtime environment (checked when the run starts).
        return Materialised(cached=True)

    def build_environment(
        self, env: Environment, *, log_path: Path, rebuild: bool = False
    ) -> Generator[BuildEvent, None, Materialised]:
        return Materialised(cached=True)
        yield  # a generator that builds nothing

    def location(self, env: Environment) -> str | None:
        return env.image

    def discard_environment(self, location: str) -> None:
        """Nothing was made here."""

    # -- runs ---------------------------------------------------------------------------

    def gpu_problem(
        self, env: Environment | None = None, gpus: GpuRequest | None = None
    ) -> str | None:
        return None  # the cluster's scheduler decides: a job asking for GPUs waits for them

    def has_command(self, env: Environment, command: str) -> bool:
        """Whether ``command`` is on the PATH of the environment's image: the image a
        cluster made by ``%compute up`` runs (Ray added), whose packages an attached one
        gets. Where this machine has no engine or no such image, the cluster decides."""
        from mlmagic.engine.docker import DockerEngine

        if env.image is None:
            return True
        try:
            engine = DockerEngine(cli=self.context.config.docker_cli)
            if engine.image_info(env.image) is None:
                return True
        except MlmagicError:
            return True  # no engine here: the node launcher says it in the run's log
        return engine.has_command(env.image, command)

    def gpu_count(self) -> int | None:
        return None  # per node, Ray's placement group asks its scheduler, not this machine

    @classmethod
    def check_run(cls, config: RunConfig) -> None:
        """A run goes to Ray by naming its compute (:attr:`needs_compute`)."""
        if config.compute is None:
            raise RunError(
                "A run goes to Ray by naming its compute: --compute NAME (see %computes), "
                "without --target."
            )

    def notes(self, config: RunConfig) -> list[str]:
        ignored = [
            flag
            for flag, value in (
                ("--data", config.data),
                ("--memory", config.memory),
                ("--shm-size", config.shm_size),
            )
            if value
        ]
        if not ignored:
            return []
        return [
            f"{', '.join(ignored)} not applied on a Ray compute: the cluster's nodes decide "
            "memory, and data is read from storage the nodes see"
        ]

    def _runtime_env(self, compute: Compute, env: Environment, paths: RunPaths) -> dict:
        """The job's runtime environment: the snapshot, the launcher, the run's variables,
        and on an attached cluster the environment's packages."""
        package = paths.root / "ray" / _PACKAGE
        package.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HELPER, package / "__init__.py")
        (package / "__main__.py").write_text(
            "import sys\n\nfrom mlmagic_run import main\n\nsys.exit(main())\n"
        )
        variables = {
            "MLMAGIC_RUN_ID": paths.root.name,
            "MLMAGIC_METRICS_FILE": "-",
            "MLMAGIC_PARAMS_FILE": "-",
            "MLMAGIC_PROGRESS_FILE": "-",
            "PYTHONUNBUFFERED": "1",
        }
        runtime: dict = {
            "working_dir": str(paths.snapshot),
            "py_modules": [str(package), *_notebook_runner(paths)],
            "env_vars": variables,
        }
        if compute.env_image is None:
            spec = env.spec
            if spec.dockerfile or spec.apt or spec.conda or spec.solver == "conda":
                raise RunError(
                    f"The environment {env.ref} needs a Dockerfile, apt or conda, which an "
                    f"attached Ray cluster cannot install per job: start a cluster of it "
                    f"with %compute up NAME --env {env.name}, or use a pip-only environment."
                )
            packages = list(env.packages or spec.pip) if spec.pip else []
            if packages:
                runtime["pip"] = packages
        return runtime

    def _entrypoint(self, compute: Compute, record: RunRecord) -> str:
        run_dir = self._run_storage(compute, record.id, on_cluster=True)
        python = shlex.quote(compute.python)
        launch = f"{python} -m {_PACKAGE} exec --log /dev/null -- {python} -u " + " ".join(
            shlex.quote(a) for a in record.config.argv
        )
        if run_dir is None:
            return launch
        outputs = shlex.quote(f"{run_dir}/outputs")
        # ./outputs is the run's folder in the shared storage: written there live.
        return (
            f"mkdir -p {outputs} && rm -rf outputs && ln -s {outputs} outputs && "
            f"MLMAGIC_OUTPUT_DIR={outputs} exec {launch}"
        )

    def _run_storage(self, compute: Compute, run_id: str, *, on_cluster: bool) -> str | None:
        base = (
            compute.cluster_storage if on_cluster and compute.cluster_storage else compute.storage
        )
        return str(PurePosixPath(base) / "runs" / run_id) if base else None

    def start_run(
        self, record: RunRecord, paths: RunPaths, env: Environment, gpus: GpuRequest | None
    ) -> str:
        config = record.config
        assert config.compute is not None
        compute = self._compute(config.compute)
        if compute.env_image is not None and compute.env_image != env.image:
            raise RunError(
                f"The compute {compute.name!r} runs the environment {compute.environment}, "
                f"not {env.ref}: submit with --env {compute.environment}, or start a compute "
                f"of {env.ref} with %compute up NAME --env {env.ref}."
            )
        jobs = self._jobs(compute.name)
        _check_resources(compute, jobs, gpus, config.cpus)
        if config.distributed is not None:
            ray_gang.check_nodes(compute, jobs, config.distributed)
        runtime = self._runtime_env(compute, env, paths)
        options: dict = {
            "runtime_env": runtime,
            "metadata": {"mlmagic_run_id": record.id, "mlmagic_experiment": record.experiment},
        }
        if compute.made:
            options["entrypoint_resources"] = {WORKER_RESOURCE: 1}
        if config.distributed is not None:
            # The driver only places the gang: the ranks get the GPUs and CPUs, per node.
            run_dir = self._run_storage(compute, record.id, on_cluster=True)
            entrypoint = ray_gang.entrypoint(
                compute,
                record,
                paths,
                Path(runtime["py_modules"][0]),
                outputs=f"{run_dir}/outputs" if run_dir else None,
                gpus=gpus,
                gpu_count=_gpu_count(gpus) if gpus is not None else 0,
            )
        else:
            if gpus is not None:
                options["entrypoint_num_gpus"] = _gpu_count(gpus)
            if config.cpus:
                options["entrypoint_num_cpus"] = config.cpus
            entrypoint = self._entrypoint(compute, record)
        jobs.submit(record.id, entrypoint, **options)
        handle = f"ray:{compute.name}:{record.id}"
        self._pump(handle, jobs)
        # PENDING is the run's Starting stage: return when the job runs (or ended), or
        # when the run is canceled meanwhile (the caller then stops the job).
        while True:
            info = jobs.info(record.id)
            if info is None or info.status != "PENDING":
                return handle
            if self._store.cancel_requested(record.id):
                return handle
            time.sleep(_POLL)

    def prepare_notebook(
        self, env: Environment, paths: RunPaths
    ) -> Generator[BuildEvent, None, None]:
        """Ship the notebook runner with the job (:meth:`start_run` finds it made); build
        nothing.

        A cluster made by ``%compute up`` has nbclient and ipykernel in its image (the
        notebook layer, :func:`~mlmagic.computes.cluster.ray_image`); on an attached
        cluster the runner checks for them when the job starts and fails saying what to
        install. A made cluster whose image predates the layer is refused here.
        """
        record = self._store.run(paths.root.name)
        assert record is not None and record.config.compute is not None
        compute = self._compute(record.config.compute)
        if compute.made and not compute.notebooks:
            raise RunError(
                f"the compute {compute.name!r} was started by an mlmagic that did not add "
                "nbclient and ipykernel to its image: start it again (%compute down "
                f"{compute.name}, then %compute up {compute.name} --env {compute.environment})."
            )
        package = paths.root / "ray" / _NOTEBOOK_PACKAGE
        package.mkdir(parents=True, exist_ok=True)
        shutil.copy2(NOTEBOOK_RUNNER, package / "__init__.py")
        (package / "__main__.py").write_text(
            f"import sys\n\nfrom {_NOTEBOOK_PACKAGE} import main\n\nsys.exit(main())\n"
        )
        where = "in the compute's image" if compute.made else "checked on the node at start"
        yield BuildEvent(BuildEventKind.DONE, cached=True, message=f"notebook layer: {where}")

    def _pump(self, handle: str, jobs: RayJobs | None = None) -> LogPump | None:
        """This process's pump of the run ``handle``; ``None`` when another process has it."""
        with self._lock:
            pump = self._pumps.get(handle)
            if pump is None:
                compute, run_id = self._parse(handle)
                pump = LogPump(jobs or self._jobs(compute), run_id, self._paths(run_id))
                if not pump.start():
                    return None
                self._pumps[handle] = pump
            return pump

    def state(self, handle: str) -> ContainerState | None:
        compute_name, run_id = self._parse(handle)
        if self._store.compute(compute_name) is None:
            # Detached or taken down: nobody can say how the job ended.
            self._why[handle] = (
                f"the compute {compute_name!r} is gone from this workspace (detached or "
                "taken down), so how the job ended is unknown"
            )
            return _state(handle, "exited", None)
        try:
            jobs = self._jobs(compute_name)
            pump = self._pump(handle, jobs)
            info = jobs.info(run_id)
        except MlmagicError as exc:
            return self._unanswered(handle, str(exc))
        self._unreachable.pop(handle, None)
        if info is None:
            self._why[handle] = (
                f"the Ray cluster of {compute_name!r} has no job {run_id} any more (its "
                "head was restarted?)"
            )
            return _state(handle, "exited", None)
        if not info.ended or (pump is not None and not pump.done):
            # Ended, but its last lines are still coming: the run ends after them.
            return _state(handle, "running", None)
        return self._ended(handle, info)

    def _unanswered(self, handle: str, error: str) -> ContainerState:
        first = self._unreachable.setdefault(handle, time.monotonic())
        if time.monotonic() - first < _UNREACHABLE_GRACE:
            return _state(handle, "running", None)
        self._why[handle] = f"the cluster stopped answering, so the run's end is unknown: {error}"
        pump = self._pumps.get(handle)
        if pump is not None:
            pump.stop_requested = True
        return _state(handle, "exited", None)

    def _ended(self, handle: str, info: JobInfo) -> ContainerState:
        compute_name, run_id = self._parse(handle)
        paths = self._paths(run_id)
        code = info.exit_code
        if code is None:
            code = {"SUCCEEDED": 0, "STOPPED": 143}.get(info.status, 1)
        if info.status == "STOPPED":
            self._why[handle] = "the Ray job was stopped"
        elif info.status == "FAILED" and info.exit_code is None:
            # Ray's own words: a runtime environment that did not install, a lost node.
            self._why[handle] = f"Ray says: {' '.join(info.message.split())[:500]}"
        self._write_exit(paths, code)
        self._collect_outputs(self._compute(compute_name), run_id, paths)
        return _state(handle, "exited", code)

    def _write_exit(self, paths: RunPaths, code: int) -> None:
        """The exit file the launcher writes on the other targets, from the log here."""
        try:
            with open(paths.output_log, "rb") as log:
                log.seek(0, 2)
                log.seek(max(0, log.tell() - _TAIL_BYTES))
                tail = log.read()
        except OSError:
            tail = b""
        error = _script_error(tail, code) if code else ""
        record = {"exit_code": code, "signal": None, "ended": time.time(), "error": error}
        paths.exit_file.write_text(json.dumps(record))

    def _collect_outputs(self, compute: Compute, run_id: str, paths: RunPaths) -> None:
        where = self._run_storage(compute, run_id, on_cluster=False)
        if where is None:
            return
        source = Path(where) / "outputs"
        if source.is_dir():
            shutil.copytree(source, paths.outputs, symlinks=True, dirs_exist_ok=True)

    def exit_message(self, handle: str) -> str | None:
        # A failing rank of a gang says more than how the job ended.
        return ray_gang.exit_message(self._paths(self._parse(handle)[1])) or self._why.get(handle)

    def nodes(self, handle: str) -> list[dict[str, Any]]:
        compute_name, run_id = self._parse(handle)
        try:
            info = self._jobs(compute_name).info(run_id)
        except MlmagicError:
            info = None  # a cluster that does not answer runs nothing we can show
        running = info is not None and not info.ended
        return ray_gang.nodes(self._paths(run_id), running)

    def stop(self, handle: str, timeout: float = 10) -> None:
        compute_name, run_id = self._parse(handle)
        jobs = self._jobs(compute_name)
        jobs.stop(run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = jobs.info(run_id)
            if info is None or info.ended:
                break
            time.sleep(_POLL)
        pump = self._pumps.get(handle)
        if pump is not None and pump.thread is not None:
            pump.thread.join(timeout=5)

    def remove(self, handle: str) -> None:
        compute_name, run_id = self._parse(handle)
        with self._lock:
            pump = self._pumps.pop(handle, None)
        if pump is not None:
            pump.stop_requested = True
        row = self._store.compute(compute_name)
        where = self._run_storage(Compute.from_row(row), run_id, on_cluster=False) if row else None
        if where is not None:
            shutil.rmtree(where, ignore_errors=True)

    # -- services: not on Ray -----------------------------------------------------------

    def build_service(
        self, name: str, config: ServiceConfig, env: Environment, models: Sequence[Model]
    ) -> Generator[BuildEvent, None, str]:
        raise DeployError(
            "Services do not run on a Ray compute: deploy with --target docker or local."
        )

    def start_service(self, record: ServiceRecord) -> str:
        raise DeployError("Services do not run on a Ray compute.")

    def service_logs(self, name: str, handle: str) -> list[str]:
        return []

    def discard_service(self, name: str, artefact: str) -> None:
        """Nothing was made."""


def _notebook_runner(paths: RunPaths) -> list[str]:
    """The notebook runner's package when :meth:`RayTarget.prepare_notebook` made it (a
    notebook run), for the job's ``py_modules``; ``[]`` for a script."""
    package = paths.root / "ray" / _NOTEBOOK_PACKAGE
    return [str(package)] if package.is_dir() else []


def _gpu_count(gpus: GpuRequest) -> int:
    """The GPUs a job's driver asks Ray for (``all`` and device ids: one each, at least 1;
    a cluster has no device ids of ours)."""
    count = gpus.count or len(gpus.device_ids)
    return count if count > 0 else 1


def _check_resources(
    compute: Compute, jobs: RayJobs, gpus: GpuRequest | None, cpus: float | None
) -> None:
    """Refuse a run asking for more GPUs or CPUs than one node of the cluster has (Ray
    would keep it pending for ever), saying what the cluster has."""
    if gpus is None and not cpus:
        return
    totals = [n.get("resources_total") or {} for n in jobs.nodes() if n.get("state") == "ALIVE"]
    asked = {"GPU": float(_gpu_count(gpus)) if gpus else 0.0, "CPU": float(cpus or 0)}
    for kind, want in asked.items():
        if want <= 0:
            continue
        best = max((float(t.get(kind, 0)) for t in totals), default=0.0)
        if want > best:
            count = sum(float(t.get(kind, 0)) for t in totals)
            raise RunError(
                f"The compute {compute.name!r} has no node with {want:g} {kind}s (its "
                f"{len(totals)} nodes have {count:g} {kind}s in all, at most {best:g} on "
                f"one): ask for fewer, or use a compute that has them."
            )


def _state(handle: str, status: str, exit_code: int | None) -> ContainerState:
    return ContainerState(
        id=handle,
        status=status,
        exit_code=exit_code,
        oom_killed=False,
        started_at=None,
        finished_at=None,
    )
