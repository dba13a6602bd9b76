"""``InferenceConfig`` and ``Model.deploy``: Azure's deployment call as a local service.

What the inference configuration names maps onto an mlmagic service: the entry script and
its folder, and an environment (given, or made from ``conda_file`` and the image options
exactly as ``inferenceconfig.json`` is read, see :mod:`mlmagic.deploy.inference_config`).
The deployment configuration (local, ACI or AKS) gives the port and resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.deploy.inference_config import inference_config
from mlmagic.deploy.registry import registry_password
from mlmagic.environment import Environment
from mlmagic.events import drain
from mlmagic.exceptions import DeployError

if TYPE_CHECKING:
    from mlmagic.azureml.core.webservice import Webservice
    from mlmagic.azureml.core.workspace import Workspace

__all__ = ["InferenceConfig", "deploy"]

#: InferenceConfig's own settings of the environment; they cannot go with ``environment``.
_IMAGE_OPTIONS = (
    "conda_file",
    "extra_docker_file_steps",
    "enable_gpu",
    "base_image",
    "base_image_registry",
    "cuda_version",
)


class InferenceConfig:
    """The code and environment a service runs, as Azure's ``InferenceConfig``.

    Parameters
    ----------
    entry_script
        The scoring script (``init()`` and ``run()``), relative to ``source_directory``
        when that is given.
    source_directory
        The folder copied beside it; ``None``: the current directory.
    environment
        An environment: Azure's (``name``/``version``; registered on first use), or an
        :class:`mlmagic.Environment`.
    conda_file, extra_docker_file_steps, enable_gpu, base_image, base_image_registry, cuda_version
        Instead of ``environment``: what ``inferenceconfig.json`` says with its keys.

    Raises
    ------
    mlmagic.DeployError
        ``environment`` given with the options it replaces, or a runtime other than python.
    """

    def __init__(
        self,
        entry_script: str,
        runtime: str | None = None,
        conda_file: str | None = None,
        extra_docker_file_steps: str | None = None,
        source_directory: str | None = None,
        enable_gpu: bool | None = None,
        description: str | None = None,
        base_image: str | None = None,
        base_image_registry: Any = None,
        cuda_version: str | None = None,
        environment: Any = None,
        **_ignored: Any,
    ) -> None:
        self.entry_script = entry_script
        self.runtime = runtime
        self.conda_file = conda_file
        self.extra_docker_file_steps = extra_docker_file_steps
        self.source_directory = source_directory
        self.enable_gpu = enable_gpu
        self.description = description
        self.base_image = base_image
        self.base_image_registry = base_image_registry
        self.cuda_version = cuda_version
        self.environment = environment
        given = [o for o in _IMAGE_OPTIONS if getattr(self, o) is not None]
        if environment is not None and given:
            raise DeployError(
                f"InferenceConfig takes environment or {', '.join(given)}, not both: put "
                "them in the environment."
            )
        if runtime is not None and runtime.lower() != "python":
            raise DeployError(
                f"InferenceConfig: only the python runtime is supported, not {runtime}."
            )

    def __repr__(self) -> str:
        env = getattr(self.environment, "name", None)
        return f"InferenceConfig(entry_script={self.entry_script!r}, environment={env!r})"

    def _resolve(
        self, workspace: Workspace, service_name: str
    ) -> tuple[str, Path, Environment, str | None]:
        """The entry script, its folder, the registered environment and a registry
        password for its build (never stored)."""
        cwd = Path.cwd()
        source = Path(self.source_directory).resolve() if self.source_directory else cwd
        data = {
            "entryScript": self.entry_script,
            "sourceDirectory": str(source),
            "condaFile": _beside(self.conda_file, source),
            "extraDockerfileSteps": _beside(self.extra_docker_file_steps, source),
            "enableGpu": self.enable_gpu,
            "baseImage": self.base_image,
            "baseImageRegistry": _registry(self.base_image_registry),
            "cudaVersion": self.cuda_version,
        }
        read = inference_config(data, cwd, service_name, origin="InferenceConfig")
        if self.environment is not None:
            env, password = _environment(workspace, self.environment)
            return read.entry_script, read.source_dir, env, password
        if read.environment is None:
            raise DeployError(
                "InferenceConfig needs an environment (environment=...) or a conda_file: "
                "give the packages score.py imports."
            )
        env = workspace.mlmagic.environments.resolve(read.environment)
        return read.entry_script, read.source_dir, env, read.registry_password


def deploy(
    workspace: Workspace,
    name: str,
    models: Sequence[Any],
    inference_config: InferenceConfig | None,
    deployment_config: Any = None,
    *,
    overwrite: bool = False,
    show_output: bool = False,
) -> Webservice:
    """Start deploying the service ``name``; return it while it deploys.

    What can be checked at once is (the name, the models, the entry script, a service of
    that name without ``overwrite``); the build and start go on in the background until
    ``wait_for_deployment`` (which prints their output and raises their error).

    Raises
    ------
    mlmagic.DeployError
        The request is wrong: the message says what to change.
    """
    from mlmagic.azureml.core.webservice import LocalWebservice, WebserviceException
    from mlmagic.azureml.core.webservice.deployment import Deployment

    if inference_config is None:
        raise WebserviceException(
            "Model.deploy needs an inference_config (entry script and environment): "
            "deployments without code are Azure's alone."
        )
    settings = (deployment_config or LocalWebservice.deploy_configuration()).settings()
    ws = workspace.mlmagic
    entry, source, env, password = inference_config._resolve(workspace, name)
    if ws.store.service(name) is not None:
        if not overwrite:
            raise WebserviceException(
                f"A service named {name} exists: pass overwrite=True to replace it, or "
                "choose another name."
            )
        ws.services.get(name).delete()
    refs = [_model_ref(m) for m in models]
    if password is not None:
        # Built now, while the password is readable; the service's build is then a cache hit.
        with registry_password(env.spec.registry, password):
            drain(ws.environments.build(env, target=settings.get("target")), None)
    events = ws.services.deploy(
        name, models=refs, entry_script=entry, environment=env, source_dir=source, **settings
    )
    return Deployment.start(workspace, name, events, show_output=show_output)


def _model_ref(model: Any) -> str:
    """``name:version`` of Azure's Model, an mlmagic Model, or a reference string."""
    ref = getattr(model, "id", None) or getattr(model, "ref", None) or model
    if not isinstance(ref, str):
        raise DeployError(f"{model!r} is not a model: pass Model objects (or 'name:version').")
    return ref


def _beside(path: str | None, source: Path) -> str | None:
    """A file path as the SDK takes it: from the current directory, else from the source
    folder."""
    if path is None:
        return None
    given = Path(path)
    if not given.is_absolute() and not given.exists() and (source / given).exists():
        return str((source / given).resolve())
    return str(given.resolve())


def _registry(value: Any) -> Any:
    """Azure's ``ContainerRegistry`` object (address, username, password) as the file's
    ``baseImageRegistry``."""
    if value is None or isinstance(value, (str, dict)):
        return value
    return {
        key: getattr(value, key)
        for key in ("address", "username", "password")
        if getattr(value, key, None)
    }


def _environment(workspace: Workspace, env: Any) -> tuple[Environment, str | None]:
    """The registered mlmagic environment an InferenceConfig's ``environment`` names, and
    the password of its registry login, if the object carries one."""
    environments = workspace.mlmagic.environments
    password = getattr(
        getattr(getattr(env, "docker", None), "base_image_registry", None), "password", None
    )
    if isinstance(env, Environment):
        return environments.resolve(env), password
    name, version = getattr(env, "name", None), getattr(env, "version", None)
    if not isinstance(name, str):
        raise DeployError(f"{env!r} is not an environment: pass an Environment.")
    if version:
        return environments.get(name, int(version)), password
    # An environment made in code and not registered: registered on first use, as on Azure.
    to_mlmagic = getattr(env, "to_mlmagic", None)
    if callable(to_mlmagic):
        return environments.resolve(to_mlmagic()), password
    return environments.get(name), password
