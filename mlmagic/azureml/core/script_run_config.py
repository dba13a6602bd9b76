"""``ScriptRunConfig``, and how any of Azure's run configurations becomes an mlmagic run.

:func:`submit_config` is the one translation: source folder, script and arguments
(datastore references become data mounts and the paths the script sees), environment,
compute (its ``max_nodes`` checked against the layout), Docker settings (shared memory;
``use_docker=False`` is the local target), the distributed layout and the time limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlmagic.azureml.core.compute import ComputeTarget, ComputeTargetException
from mlmagic.azureml.core.datastore import DataReference
from mlmagic.azureml.core.runconfig import DockerConfiguration, RunConfiguration, as_distribution
from mlmagic.distributed.config import Distribution
from mlmagic.exceptions import RunError

if TYPE_CHECKING:
    from mlmagic.azureml.core.workspace import Workspace
    from mlmagic.run.run import Run as MlmagicRun

__all__ = ["ScriptRunConfig", "submit_config"]

#: Azure's default time limit (30 days), which means "none" here.
_AZURE_DEFAULT_DURATION = 2592000


class ScriptRunConfig:
    """A script, its arguments, and where and how it runs (Azure ML's parameters)."""

    def __init__(
        self,
        source_directory: str,
        script: str | None = None,
        arguments: Sequence[Any] | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Any = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = _AZURE_DEFAULT_DURATION,
        command: Sequence[str] | str | None = None,
        docker_runtime_config: DockerConfiguration | None = None,
    ) -> None:
        self.run_config = run_config or RunConfiguration()
        self.source_directory = source_directory
        self.script = script or self.run_config.script
        self.arguments = list(arguments) if arguments is not None else self.run_config.arguments
        self.command = command
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if distributed_job_config is not None:
            self.run_config.distributed = distributed_job_config
        if docker_runtime_config is not None:
            self.run_config.docker = docker_runtime_config
        if max_run_duration_seconds not in (None, _AZURE_DEFAULT_DURATION):
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
        if resume_from is not None:
            raise RunError(
                "resume_from needs Azure's checkpoint service: load the checkpoint "
                "in the script from a datastore folder instead."
            )

    @property
    def compute_target(self) -> Any:
        return self.run_config.target

    @property
    def environment(self) -> Any:
        return self.run_config.environment

    @property
    def distributed_job_config(self) -> Any:
        return self.run_config.distributed

    def __repr__(self) -> str:
        return (
            f"ScriptRunConfig(source_directory={self.source_directory!r}, script={self.script!r})"
        )


def submit_config(
    workspace: Workspace,
    experiment: str,
    config: ScriptRunConfig,
    tags: Mapping[str, Any] | None = None,
) -> MlmagicRun:
    """Start ``config`` as a run of ``experiment``; return the mlmagic run at once."""
    from mlmagic.azureml.core.environment import Environment

    ws = workspace.mlmagic
    run_config = config.run_config
    script, arguments = _script_and_arguments(config)
    docker = run_config.docker or DockerConfiguration()
    target = ws.resolve_target("local" if docker.use_docker is False else None)
    data: dict[str, str] = {}
    args = []
    for value in arguments:
        if isinstance(value, DataReference):
            name, host, seen = value.run_argument(target)
            data[name] = host
            args.append(seen)
        else:
            args.append(str(value))
    env = run_config.environment
    if isinstance(env, Environment):
        environment: Any = env.to_mlmagic()
        shm_size = docker.shm_size or env.docker.shm_size
        gpus = "all" if env.docker.gpu_support else "none"
    else:
        environment, shm_size, gpus = env or "mlmagic-minimal", docker.shm_size, "none"
    distributed = as_distribution(run_config.distributed)
    _check_nodes(workspace, run_config.target, distributed)
    return ws.submit(
        script,
        environment,
        args=args,
        source_dir=config.source_directory,
        experiment=experiment,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        data=data,
        shm_size=shm_size,
        gpus=gpus,
        timeout=run_config.max_run_duration_seconds,
        target=target,
        distributed=distributed,
    )


def _script_and_arguments(config: ScriptRunConfig) -> tuple[str, list[Any]]:
    if config.script:
        return config.script, list(config.arguments)
    command = config.command
    words = command.split() if isinstance(command, str) else list(command or [])
    if len(words) >= 2 and words[0] in ("python", "python3"):
        return words[1], words[2:] + list(config.arguments)
    raise RunError(
        "ScriptRunConfig needs script= (or command=['python', 'train.py', ...]): mlmagic runs "
        "Python scripts."
    )


def _check_nodes(workspace: Workspace, target: Any, distributed: Distribution | None) -> None:
    """A recorded compute must hold the distributed layout's nodes.

    A name never recorded here (a cluster made in Azure's portal) runs on this machine's
    engine with a notice, so the notebook that names it runs unchanged.
    """
    if target in (None, "local"):
        return
    try:
        compute = (
            target if isinstance(target, ComputeTarget) else ComputeTarget(workspace, str(target))
        )
    except ComputeTargetException:
        print(
            f"mlmagic: compute target {target!r} is not recorded in this workspace, so the run "
            "uses this machine's engine (ComputeTarget.create records one with a node limit)."
        )
        return
    if (
        distributed is not None
        and compute.max_nodes is not None
        and distributed.nodes > compute.max_nodes
    ):
        raise RunError(
            f"The run needs {distributed.nodes} nodes but the compute target {compute.name} has "
            f"max_nodes={compute.max_nodes}: ask for fewer nodes or create it with more."
        )
