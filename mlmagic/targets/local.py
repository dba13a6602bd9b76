"""The local target: environments are uv virtual environments, runs and services are
detached processes (:mod:`mlmagic.targets.process`), for hosts with no container engine.

A run's script runs in a copy of its snapshot, under the same launcher as in a container
(``mlmagic_run.py exec``), with ``./outputs`` and ``./logs`` linked to the run's folders.
``--data`` folders are read-only for the run's processes (a private mount namespace), and
a run answers for its whole process tree (:mod:`mlmagic.targets.process`). ``--memory``
and ``--cpus`` are not enforced here, and the run's log says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.build.notebook import DEPS_VARIABLE, notebook_deps
from mlmagic.build.venv import (
    build_venv,
    check_local,
    plain_environment,
    venv_packages,
    venv_path,
    venv_python,
    venv_root,
)
from mlmagic.deploy.staging import SERVE_REQUIREMENTS, model_subdir, stage_inference
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.events import BuildEvent, BuildEventKind, drain
from mlmagic.exceptions import DeployError, RunError
from mlmagic.run.config import data_variable, parse_gpus
from mlmagic.run.notebook import is_notebook
from mlmagic.run.working import working_copy
from mlmagic.targets.base import Materialised, Target
from mlmagic.targets.gang import is_gang
from mlmagic.targets.gang_local import LocalGang
from mlmagic.targets.gpu import environment_cuda, gpu_preflight
from mlmagic.targets.labels import AZUREML_SHIM, HELPER, NOTEBOOK_RUNNER
from mlmagic.targets.process import (
    ReadOnlyViewError,
    cuda_visible_devices,
    process_alive,
    remove_tree,
    spawn_detached,
    stop_process,
)
from mlmagic.targets.serving import server_settings

if TYPE_CHECKING:
    from mlmagic.deploy.config import ServiceConfig
    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.records import RunRecord, ServiceRecord
    from mlmagic.run.config import RunConfig
    from mlmagic.run.paths import RunPaths

__all__ = ["LocalTarget"]


def _python_environment() -> dict[str, str]:
    """This process's environment without what would bend another Python's imports."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}


class LocalTarget(Target):
    """Virtual environments made with uv; runs and services as detached processes."""

    name = "local"

    # -- environments -----------------------------------------------------------------

    def log_name(self, version: int) -> str:
        return f"v{version}-local.log"

    def find_environment(self, env: Environment) -> Materialised | None:
        """``None``: :func:`~mlmagic.build.venv.build_venv` looks for the venv under its
        lock, so a venv half made by another process is waited for, never used."""
        return None

    def build_environment(
        self, env: Environment, *, log_path: Path, rebuild: bool = False
    ) -> Generator[BuildEvent, None, Materialised]:
        check_local(env.spec)
        assert env.image is not None
        # The venv is named by the same content key as the image.
        key = env.image.partition(":")[2]
        cached = False
        for event in build_venv(env.spec, key, log_path=log_path, rebuild=rebuild):
            cached = cached or (event.kind is BuildEventKind.DONE and event.cached)
            yield event
        path = venv_path(key)
        packages = venv_packages(path) if env.packages is None else None
        return Materialised(cached=cached, venv=str(path), packages=packages)

    def location(self, env: Environment) -> str | None:
        return env.venv

    def discard_environment(self, location: str) -> None:
        shutil.rmtree(location, ignore_errors=True)

    # -- runs ---------------------------------------------------------------------------

    def gpu_problem(
        self, env: Environment | None = None, gpus: GpuRequest | None = None
    ) -> str | None:
        return gpu_preflight(gpus, environment_cuda(env, self.context.config, in_venv=True))

    def notes(self, config: RunConfig) -> list[str]:
        if config.memory or config.cpus:
            return ["--memory and --cpus are not enforced on the local target"]
        return []

    def start_run(
        self, record: RunRecord, paths: RunPaths, env: Environment, gpus: GpuRequest | None
    ) -> str:
        python, environment, lib = self.run_environment(record, paths, env, gpus)
        if record.config.distributed is not None:
            return LocalGang(self).start(record, paths, python, environment, gpus)
        config = record.config
        command = [
            python,
            str(lib / "mlmagic_run.py"),
            "exec",
            "--log",
            str(paths.output_log),
            "--exit-file",
            str(paths.exit_file),
            "--",
            python,
            "-u",
            *config.argv,
        ]
        return self.spawn(command, paths, record, environment)

    def run_environment(
        self, record: RunRecord, paths: RunPaths, env: Environment, gpus: GpuRequest | None
    ) -> tuple[str, dict[str, str], Path]:
        """The Python, the variables and the helper folder of a run's processes (the
        run's working copy of its snapshot, its ``./outputs``, ``./logs`` and helper
        copies are made here)."""
        if env.venv is None:
            raise RunError(f"The environment {env.ref} has no virtual environment here.")
        working = working_copy(paths)
        # ./outputs and ./logs of the script are the run's folders, as in a container.
        for name, folder in (("outputs", paths.outputs), ("logs", paths.logs)):
            link = working / name
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            link.symlink_to(folder)
        lib = paths.lib
        lib.mkdir(exist_ok=True)
        shutil.copy2(HELPER, lib / "mlmagic_run.py")
        shutil.copytree(
            AZUREML_SHIM,
            lib / "azureml",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        shutil.copy2(NOTEBOOK_RUNNER, lib / "mlmagic_notebook.py")
        python = str(venv_python(Path(env.venv)))
        config = record.config
        environment = _python_environment()
        environment.update(
            {
                "MLMAGIC_RUN_ID": record.id,
                "MLMAGIC_OUTPUT_DIR": str(paths.outputs),
                "MLMAGIC_METRICS_FILE": str(paths.metrics),
                "MLMAGIC_PARAMS_FILE": str(paths.params),
                "MLMAGIC_PROGRESS_FILE": str(paths.progress),
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(lib),
                "MLMAGIC_LOG_MAX_BYTES": str(self.context.config.run_log_max_bytes),
                "VIRTUAL_ENV": str(env.venv),
                "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        for name, host_path in config.data.items():
            environment[data_variable(name)] = host_path
        if is_notebook(config.script):
            # Made in Preparing (prepare_notebook): found at once.
            environment[DEPS_VARIABLE] = str(drain(notebook_deps(python)))
        devices = cuda_visible_devices(gpus)
        if devices is not None:
            environment["CUDA_VISIBLE_DEVICES"] = devices
        return python, environment, lib

    def prepare_notebook(
        self, env: Environment, paths: RunPaths
    ) -> Generator[BuildEvent, None, None]:
        if env.venv is None:
            raise RunError(f"The environment {env.ref} has no virtual environment here.")
        yield from notebook_deps(str(venv_python(Path(env.venv))))

    def has_command(self, env: Environment, command: str) -> bool:
        if env.venv and (venv_python(Path(env.venv)).parent / command).exists():
            return True
        return shutil.which(command) is not None

    def nodes(self, handle: str) -> list[dict[str, Any]]:
        return LocalGang(self).nodes(handle) if is_gang(handle) else []

    def exit_message(self, handle: str) -> str | None:
        return LocalGang(self).exit_message(handle) if is_gang(handle) else None

    def spawn(
        self, command: list[str], paths: RunPaths, record: RunRecord, env: dict[str, str]
    ) -> str:
        """Start ``command`` of a run as its own process tree (the run's ``--data``
        folders read-only for it); return its handle. A gang's node launchers start here too,
        so stopping a node reaches every process of it."""
        try:
            return spawn_detached(
                command,
                cwd=paths.working,
                env=env,
                read_only=list(record.config.data.values()),
            )
        except ReadOnlyViewError as exc:
            raise RunError(
                f"--data folders are read-only for a run, and this machine cannot make them so "
                f"for a local process ({exc}): allow unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1), or copy the data into the "
                "source folder, or use the docker target."
            ) from exc

    def state(self, handle: str) -> ContainerState | None:
        if is_gang(handle):
            return LocalGang(self).state(handle)
        if process_alive(handle):
            return ContainerState(handle, "running", None, False, None, None)
        # Ended on its own (a server that died, a run nobody finalised): leave nothing.
        remove_tree(handle)
        return None

    def stop(self, handle: str, timeout: float = 10) -> None:
        if is_gang(handle):
            LocalGang(self).stop(handle, timeout)
        else:
            stop_process(handle, timeout)

    def remove(self, handle: str) -> None:
        """Nothing is left of a process once it ended (its cgroup is removed; a gang's
        nodes still running are stopped)."""
        if is_gang(handle):
            LocalGang(self).remove(handle)
        else:
            remove_tree(handle)

    # -- services -----------------------------------------------------------------------

    def _service_folder(self, name: str) -> Path:
        return self.context.root / "services" / name

    def build_service(
        self,
        name: str,
        config: ServiceConfig,
        env: Environment,
        models: Sequence[Model],
    ) -> Generator[BuildEvent, None, str]:
        assert env.venv is not None
        python = str(venv_python(Path(env.venv)))
        folder = self._service_folder(name) / "local"
        yield BuildEvent(BuildEventKind.STEP, step="[1/2] serving dependencies (uvicorn)")
        deps = _serve_deps(python)
        yield BuildEvent(BuildEventKind.LOG, message=f"serving dependencies in {deps}")
        yield BuildEvent(BuildEventKind.STEP, step="[2/2] server, models and code")
        # Staged beside, then swapped in, so a failed copy leaves the old folder whole.
        staging = folder.with_name("local.new")
        shutil.rmtree(staging, ignore_errors=True)
        stage_inference(
            staging,
            models=models,
            source_dir=Path(config.source_dir),
            entry_script=config.entry_script,
            exclude=[self.context.root],
        )
        (staging / "deps").write_text(str(deps))
        (staging / "python").write_text(python)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        yield BuildEvent(BuildEventKind.DONE, image=str(folder))
        return str(folder)

    def start_service(self, record: ServiceRecord) -> str:
        config = record.config
        assert record.image is not None
        folder = Path(record.image)
        model_dir = folder / "models" / model_subdir(config.models)
        environment = _python_environment()
        environment.update(
            {
                "PYTHONPATH": str(folder / "lib"),
                "MLMAGIC_ENTRY_SCRIPT": str(folder / "app" / config.entry_script),
                "AZUREML_MODEL_DIR": str(model_dir),
                "MLMAGIC_MODEL_DIR": str(model_dir),
                "MLMAGIC_HOST": config.host,
                "MLMAGIC_PORT": str(config.port),
                "PYTHONUNBUFFERED": "1",
                **server_settings(record),
            }
        )
        gpus = parse_gpus(config.gpus or "none")
        devices = cuda_visible_devices(gpus if isinstance(gpus, GpuRequest) else None)
        if devices is not None:
            environment["CUDA_VISIBLE_DEVICES"] = devices
        python = (folder / "python").read_text()
        # Serving dependencies go after site-packages, so the user's pins win.
        bootstrap = (
            "import runpy, sys; "
            f"sys.path.append({(folder / 'deps').read_text()!r}); "
            "runpy.run_module('mlmagic_serve', run_name='__main__', alter_sys=True)"
        )
        log = self._service_folder(record.name) / "service.log"
        log.write_text("")
        command = [python, str(HELPER), "exec", "--log", str(log), "--", python, "-c", bootstrap]
        return spawn_detached(command, cwd=folder / "app", env=environment)

    def service_logs(self, name: str, handle: str) -> list[str]:
        try:
            text = (self._service_folder(name) / "service.log").read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()

    def discard_service(self, name: str, artefact: str) -> None:
        shutil.rmtree(artefact, ignore_errors=True)


def _serve_deps(python: str) -> Path:
    """A folder with the serving requirements for ``python``'s version, shared by local
    services."""
    from uv import find_uv_bin

    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = venv_root() / f"serve-deps-py{version}"
    ready = target / ".mlmagic-ready"
    # The marker names what was installed, so a folder made for fewer requirements is
    # completed rather than used as it is.
    if ready.exists() and ready.read_text() == "\n".join(SERVE_REQUIREMENTS):
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
            *SERVE_REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
        env=plain_environment(),
    )
    if out.returncode != 0:
        raise DeployError(f"Installing the serving dependencies failed: {out.stderr.strip()}")
    ready.write_text("\n".join(SERVE_REQUIREMENTS))
    return target
