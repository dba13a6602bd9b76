"""``Estimator``: Azure's older way to describe a run, turned into a ``ScriptRunConfig``.

Its packages (``pip_packages``, ``conda_packages``, requirement files, a framework's own
package) become an :class:`~mlmagic.azureml.core.environment.Environment`;
``script_params`` become the arguments; ``node_count``, ``process_count_per_node`` and
``distributed_training`` the distributed layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlmagic.azureml.core.conda_dependencies import CondaDependencies
from mlmagic.azureml.core.environment import Environment
from mlmagic.azureml.core.runconfig import DockerConfiguration, as_distribution
from mlmagic.azureml.core.script_run_config import ScriptRunConfig
from mlmagic.distributed import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from mlmagic.distributed.config import Distribution
from mlmagic.exceptions import RunError

__all__ = ["Estimator", "Gloo", "Mpi", "Nccl", "ParameterServer"]


class Mpi:
    """MPI (Horovod) over the nodes, ``process_count_per_node`` processes each."""

    def __init__(self, process_count_per_node: int = 1) -> None:
        self.process_count_per_node = process_count_per_node


class ParameterServer:
    """TensorFlow's parameter-server layout: workers and parameter servers, one each."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1) -> None:
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count


class Gloo:
    """PyTorch over Gloo."""

    backend = "gloo"


class Nccl:
    """PyTorch over NCCL."""

    backend = "nccl"


class Estimator:
    """A script, its parameters, its packages and its layout (Azure's ``Estimator``).

    The parameters are Azure's; those about Azure's machines (``vm_size``,
    ``vm_priority``) are accepted and mean nothing here.
    """

    #: The framework's own packages, for a framework estimator (``TensorFlow``, ``PyTorch``).
    _framework: str | None = None

    def __init__(
        self,
        source_directory: str,
        *,
        compute_target: Any = None,
        vm_size: str | None = None,
        vm_priority: str | None = None,
        entry_script: str | None = None,
        script_params: Mapping[str, Any] | None = None,
        node_count: int = 1,
        process_count_per_node: int = 1,
        distributed_backend: str | None = None,
        distributed_training: Any = None,
        use_gpu: bool = False,
        use_docker: bool = True,
        custom_docker_base_image: str | None = None,
        custom_docker_image: str | None = None,
        image_registry_details: Any = None,
        user_managed: bool = False,
        conda_packages: Sequence[str] | None = None,
        pip_packages: Sequence[str] | None = None,
        conda_dependencies_file_path: str | None = None,
        pip_requirements_file_path: str | None = None,
        conda_dependencies_file: str | None = None,
        pip_requirements_file: str | None = None,
        environment_variables: Mapping[str, str] | None = None,
        environment_definition: Environment | None = None,
        inputs: Any = None,
        shm_size: str | None = None,
        max_run_duration_seconds: int | None = None,
        framework_version: str | None = None,
        **_: Any,
    ) -> None:
        if entry_script is None:
            raise RunError("The estimator needs entry_script=, the script to run.")
        self.source_directory = source_directory
        self.entry_script = entry_script
        self.script_params = dict(script_params or {})
        self.compute_target = compute_target
        self.framework_version = framework_version
        self.use_gpu = use_gpu
        self._docker = DockerConfiguration(use_docker=use_docker, shm_size=shm_size)
        self._max_run_duration_seconds = max_run_duration_seconds
        self._distributed = _layout(
            distributed_training or distributed_backend, node_count, process_count_per_node
        )
        if environment_definition is not None:
            if conda_packages or pip_packages or framework_version is not None:
                raise RunError(
                    "Give either environment_definition or packages (pip_packages, "
                    "conda_packages, framework_version), not both: the environment is used "
                    "as it is."
                )
            self.environment = environment_definition
            return
        env = Environment(f"{type(self).__name__.lower()}-estimator")
        base = custom_docker_image or custom_docker_base_image
        if base:
            env.docker.base_image = base
        if image_registry_details is not None:
            env.docker.base_image_registry = image_registry_details
        env.docker.gpu_support = use_gpu
        env.python.user_managed_dependencies = user_managed
        conda_file = conda_dependencies_file or conda_dependencies_file_path
        deps = CondaDependencies(conda_file) if conda_file else CondaDependencies()
        requirements = pip_requirements_file or pip_requirements_file_path
        if requirements:
            listed = Environment.from_pip_requirements(env.name, requirements)
            for package in listed.python.conda_dependencies.pip_packages:  # type: ignore[union-attr]
                deps.add_pip_package(package)
        for package in self._framework_packages(framework_version, use_gpu):
            deps.add_pip_package(package)
        for package in conda_packages or ():
            deps.add_conda_package(package)
        for package in pip_packages or ():
            deps.add_pip_package(package)
        env.python.conda_dependencies = deps
        env.environment_variables = dict(environment_variables or {})
        self.environment = env

    def _framework_packages(self, version: str | None, use_gpu: bool) -> list[str]:
        if self._framework is None:
            return []
        return [f"{self._framework}=={version}.*" if version else self._framework]

    @property
    def run_config(self) -> Any:
        return self.script_run_config().run_config

    def script_run_config(self) -> ScriptRunConfig:
        """The ``ScriptRunConfig`` this estimator stands for."""
        arguments: list[Any] = []
        for key, value in self.script_params.items():
            arguments.append(key)
            if value is not None and value != "":
                arguments.append(value)
        return ScriptRunConfig(
            source_directory=self.source_directory,
            script=self.entry_script,
            arguments=arguments,
            compute_target=self.compute_target,
            environment=self.environment,
            distributed_job_config=self._distributed,
            docker_runtime_config=self._docker,
            max_run_duration_seconds=self._max_run_duration_seconds,
        )


def _layout(how: Any, nodes: int, per_node: int) -> Distribution | None:
    """The distributed layout an estimator's arguments ask for (``None``: one process)."""
    if isinstance(how, Distribution) and how.framework == "mpi":
        # Azure's estimator: its node_count says how many nodes MpiConfiguration() runs on.
        return MpiConfiguration(max(how.procs_per_node, per_node), nodes)
    if isinstance(how, Distribution) or hasattr(how, "to_distribution"):
        return as_distribution(how, nodes)
    if isinstance(how, Mpi) or how == "mpi":
        count = how.process_count_per_node if isinstance(how, Mpi) else per_node
        return MpiConfiguration(process_count_per_node=count, node_count=nodes)
    if isinstance(how, ParameterServer) or how == "ps":
        if isinstance(how, ParameterServer):
            return TensorflowConfiguration(how.worker_count, how.parameter_server_count)
        return TensorflowConfiguration(nodes, 1)
    if isinstance(how, (Gloo, Nccl)) or how in ("gloo", "nccl"):
        backend = how if isinstance(how, str) else how.backend
        return PyTorchConfiguration(backend, process_count=nodes * per_node, node_count=nodes)
    if how is None:
        if nodes > 1 or per_node > 1:
            raise RunError(
                f"node_count={nodes}, process_count_per_node={per_node} needs "
                "distributed_training= (Mpi(), ParameterServer(), Gloo() or Nccl())."
            )
        return None
    raise RunError(
        f"distributed_training={how!r} is not known: use Mpi(), ParameterServer(), Gloo() or "
        "Nccl()."
    )
