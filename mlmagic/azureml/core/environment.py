"""``Environment``: Azure ML's mutable environment object over mlmagic's environments.

An Azure ``Environment`` is edited in place (``env.docker.base_image = ...``,
``env.python.conda_dependencies = ...``) and becomes an mlmagic
:class:`~mlmagic.environment.Environment` when it is registered, built or used by a run
(:func:`to_spec` is that translation). Versions are Azure's: strings (``"1"``, ``"2"``).

Azure's own base images (``mcr.microsoft.com/azureml/...``) are replaced by mlmagic's
default base image, with a one-line notice: they exist for the SDK's cloud runtime, which a
local run does not use. A registry password set in code is handed to the build through
this process's environment and never stored.
"""

from __future__ import annotations

import builtins
import copy
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlmagic
from mlmagic import spec as specs
from mlmagic.azureml.core.conda_dependencies import CondaDependencies, is_sdk_package
from mlmagic.azureml.core.environment_sections import (
    AZURE_BASE_PREFIX,
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    ContainerRegistry,
    DockerSection,
    PythonSection,
)
from mlmagic.exceptions import NotFoundError, SpecError
from mlmagic.spec.base import RegistryLogin

if TYPE_CHECKING:
    from mlmagic.azureml.core.workspace import Workspace

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "CondaDependencies",
    "ContainerRegistry",
    "DockerSection",
    "Environment",
    "EnvironmentBuild",
    "PythonSection",
    "to_spec",
]

#: Azure's reserved prefix of curated environment names.
AZURE_PREFIX = "AzureML"
# Azure's curated names → mlmagic's curated environment of the same contents.
_CURATED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sklearn|scikit", re.IGNORECASE), "mlmagic-sklearn"),
    (re.compile(r"pytorch|torch", re.IGNORECASE), "mlmagic-pytorch"),
    (re.compile(r"minimal|^AzureML-(Default|Base)", re.IGNORECASE), "mlmagic-minimal"),
)


class Environment:
    """An Azure ML environment: Docker, Python and variables sections, and a name.

    Parameters
    ----------
    name
        The environment's name; names starting ``AzureML`` are Azure's curated ones and
        cannot be registered.
    """

    def __init__(self, name: str, **_: Any) -> None:
        self.name = name
        self.version: str | None = None
        self.docker = DockerSection()
        self.python = PythonSection()
        self.environment_variables: dict[str, str] = {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
        self.inferencing_stack_version: str | None = None
        #: The mlmagic environment version this one was read from (after get/register).
        self._mlmagic: mlmagic.Environment | None = None
        self._curated: str | None = None

    # -- making one ---------------------------------------------------------------------

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | Path) -> Environment:
        """An environment with the packages of a conda environment.yml."""
        env = cls(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @classmethod
    def from_pip_requirements(
        cls, name: str, file_path: str | Path, pip_version: str | None = None
    ) -> Environment:
        """An environment with the packages of a requirements.txt (``-r`` followed)."""
        from mlmagic.environment import _read_requirements

        env = cls(name)
        deps = CondaDependencies()
        for line in _read_requirements(Path(file_path)).splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("-"):
                deps.set_pip_option(line)
            elif line:
                deps.add_pip_package(line)
        env.python.conda_dependencies = deps
        return env

    @classmethod
    def from_dockerfile(
        cls,
        name: str,
        dockerfile: str | Path,
        conda_specification: str | Path | None = None,
        pip_requirements: str | Path | None = None,
    ) -> Environment:
        """An environment built from a Dockerfile (a path, or the Dockerfile's text).

        The Dockerfile is built as written: a conda or pip file given with it is kept in
        ``python.conda_dependencies`` but not installed (install it in the Dockerfile).
        """
        env = cls(name)
        env.docker.base_image = None
        env.docker.base_dockerfile = _text_or_file(dockerfile)
        if conda_specification is not None:
            env.python.conda_dependencies = CondaDependencies(conda_specification)
        elif pip_requirements is not None:
            env.python.conda_dependencies = cls.from_pip_requirements(
                name, pip_requirements
            ).python.conda_dependencies
        else:
            env.python.user_managed_dependencies = True
        return env

    @classmethod
    def from_docker_image(
        cls,
        name: str,
        image: str,
        container_registry: ContainerRegistry | None = None,
        conda_specification: str | Path | None = None,
        pip_requirements: str | Path | None = None,
    ) -> Environment:
        """An environment on ``image``: with the packages of a conda or pip file, else
        the image's own Python as it is."""
        env = cls(name)
        if conda_specification is not None:
            env = cls.from_conda_specification(name, conda_specification)
        elif pip_requirements is not None:
            env = cls.from_pip_requirements(name, pip_requirements)
        else:
            env.python.user_managed_dependencies = True
        env.docker.base_image = image
        if container_registry is not None:
            env.docker.base_image_registry = container_registry
        return env

    @classmethod
    def from_existing_conda_environment(cls, name: str, conda_environment_name: str) -> Environment:
        """An environment with the packages of a conda environment of this machine.

        Raises
        ------
        SpecError
            There is no ``conda`` command, or no environment of that name.
        """
        try:
            done = subprocess.run(
                ["conda", "env", "export", "--name", conda_environment_name, "--no-builds"],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SpecError(
                f"Cannot read the conda environment {conda_environment_name!r}: there is no "
                "conda command here. Export it where conda is (conda env export > env.yml) "
                "and use Environment.from_conda_specification."
            ) from exc
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["conda failed"])[-1]
            raise SpecError(f"conda env export --name {conda_environment_name}: {reason}")
        env = cls(name)
        env.python.conda_dependencies = CondaDependencies._from_text(done.stdout)
        return env

    @classmethod
    def get(
        cls, workspace: Workspace, name: str, version: str | int | None = None, label: Any = None
    ) -> Environment:
        """A registered environment (the latest version, or ``version``, "1" or 1).

        Azure's curated names (``AzureML-...``) give mlmagic's curated environment of the
        same kind (scikit-learn, PyTorch, minimal).

        Raises
        ------
        NotFoundError
            No such environment or version, or a curated name with no local counterpart.
        """
        if name.startswith(AZURE_PREFIX):
            ours = cls._from_mlmagic(workspace.mlmagic.environments.get(_curated_for(name)))
            ours.name, ours._curated = name, ours.name
            return ours
        number = _version_number(version)
        return cls._from_mlmagic(workspace.mlmagic.environments.get(name, number))

    @classmethod
    def list(cls, workspace: Workspace) -> dict[str, Environment]:
        """Every environment of the workspace, name → its latest version (Azure's shape)."""
        names = sorted({row["name"] for row in workspace.mlmagic.environments.rows()})
        return {name: cls._from_mlmagic(workspace.mlmagic.environments.get(name)) for name in names}

    @classmethod
    def load_from_directory(cls, path: str | Path) -> Environment:
        """Read a folder written by :meth:`save_to_directory` (or Azure's ``az ml``)."""
        from mlmagic.azureml.core.environment_folder import load_environment

        return load_environment(Path(path))

    # -- using one -----------------------------------------------------------------------

    def register(self, workspace: Workspace) -> Environment:
        """Register it: a new version when it differs from the latest; return that version.

        Raises
        ------
        SpecError
            The name starts ``AzureML`` (reserved for curated environments), or the
            definition does not build.
        """
        if self.name.startswith(AZURE_PREFIX):
            raise SpecError(
                f"Environment names starting {AZURE_PREFIX!r} are reserved for curated "
                f"environments: register {self.name!r} under another name."
            )
        return self._from_mlmagic(workspace.mlmagic.environments.register(self.to_mlmagic()))

    def build(
        self, workspace: Workspace, image_build_compute: str | None = None
    ) -> EnvironmentBuild:
        """Register and build its image on this machine's engine (Azure builds in ACR)."""
        if image_build_compute is not None:
            from mlmagic.azureml.unsupported import instead_of

            raise instead_of("image_build_compute", "Environment.build(image_build_compute=...)")
        return EnvironmentBuild(self, workspace)

    def build_local(
        self, workspace: Workspace, platform: str | None = None, **_: Any
    ) -> EnvironmentBuild:
        """Register and build on this machine, showing the build's output (Azure's
        ``build_local`` prints as it goes)."""
        build = EnvironmentBuild(self, workspace)
        build.wait_for_completion(show_output=True)
        return build

    def get_image_details(self, workspace: Workspace) -> dict[str, Any]:
        """The image of this environment: ``dockerImage`` with its ``name`` and
        ``registry`` (``None``: this machine's engine), plus the mlmagic status."""
        env = workspace.mlmagic.environments.resolve(self.to_mlmagic())
        return {
            "dockerImage": {"name": env.image, "registry": None},
            "imageExistsInRegistry": env.status == "ready",
            "environment": env.ref,
            "status": env.status,
        }

    def save_to_directory(self, path: str | Path, overwrite: bool = False) -> None:
        """Write Azure's folder format: ``azureml_environment.json`` and the conda file
        (or the Dockerfile)."""
        self.save_to_directory_files(Path(path), overwrite=overwrite)

    def save_to_directory_files(self, path: Path, overwrite: bool = False) -> builtins.list[Path]:
        """:meth:`save_to_directory`, returning the files written."""
        from mlmagic.azureml.core.environment_folder import save_environment

        return save_environment(self, path, overwrite=overwrite)

    def clone(self, new_name: str) -> Environment:
        """A copy under another name, not registered."""
        twin = copy.deepcopy(self)
        twin.name, twin.version, twin._mlmagic, twin._curated = new_name, None, None, None
        return twin

    def add_private_pip_wheel(
        self, workspace: Workspace, file_path: str, exist_ok: bool = False
    ) -> str:
        """Not available: a wheel is installed from an index or a folder the build sees."""
        raise SpecError(
            f"add_private_pip_wheel({file_path!r}) uploads to Azure's storage: put the wheel "
            "in a folder and add '--find-links FOLDER' with set_pip_option, or publish it to "
            "your package index."
        )

    # -- the mlmagic side ----------------------------------------------------------------

    def to_mlmagic(self) -> mlmagic.Environment:
        """This definition as an (unregistered) mlmagic environment."""
        if self._curated is not None:
            return mlmagic.Environment.curated(self._curated)
        _hand_password(self)
        return mlmagic.Environment(self.name, to_spec(self))

    @classmethod
    def _from_mlmagic(cls, env: mlmagic.Environment) -> Environment:
        from mlmagic.azureml.core.environment_sections import sections_from_spec

        made = cls(env.name)
        made.version = str(env.version) if env.version is not None else None
        made.docker, made.python, variables = sections_from_spec(env.spec)
        made.environment_variables = variables
        made._mlmagic = env
        return made

    def __repr__(self) -> str:
        return (
            f"Environment(Name: {self.name}, Version: {self.version}, "
            f"Image: {self._mlmagic.image if self._mlmagic else None})"
        )


class EnvironmentBuild:
    """A build of an environment's image (what ``Environment.build`` returns)."""

    def __init__(self, env: Environment, workspace: Workspace) -> None:
        self._env, self._ws = env, workspace
        self.status = "Queued"
        self.environment: Environment | None = None

    def wait_for_completion(self, show_output: bool = False) -> EnvironmentBuild:
        """Build (a cache hit when the image exists); with ``show_output`` print the log.

        Raises
        ------
        BuildError
            The build failed; its whole log stays in the workspace.
        """
        ws = self._ws.mlmagic
        _notify_base(self._env)
        try:
            built = self._env.to_mlmagic().build(ws, show_output=show_output)
        except Exception:
            self.status = "Failed"
            raise
        self.status = "Succeeded"
        self.environment = Environment._from_mlmagic(built)
        self.environment._curated = self._env._curated
        self._env.version, self._env._mlmagic = self.environment.version, built
        return self

    def get_log(self) -> str:
        """The build's log, as far as it was written."""
        env = self._env._mlmagic
        if env is None or not env.log_path or not Path(env.log_path).is_file():
            return ""
        return Path(env.log_path).read_text(errors="replace")

    def __repr__(self) -> str:
        return f"EnvironmentBuild({self._env.name}, status={self.status})"


def to_spec(env: Environment) -> specs.EnvironmentSpec:
    """The mlmagic definition of an Azure environment.

    A ``base_dockerfile`` is built as written; ``user_managed_dependencies`` uses the base
    image's Python as it is; otherwise the conda dependencies (less the Azure ML SDK's own
    packages) are installed on the base image. The variables go into the image.
    """
    base = _local_base(env.docker.base_image)
    spec: specs.EnvironmentSpec
    if env.docker.base_dockerfile:
        spec = specs.parse(_text_or_file(env.docker.base_dockerfile), "dockerfile")
    elif env.python.user_managed_dependencies:
        spec = specs.EnvironmentSpec(format="yaml", base_image=base, user_managed=True)
    else:
        deps = env.python.conda_dependencies or CondaDependencies()
        kept = CondaDependencies._from_text(deps.serialize_to_string())
        for package in deps.pip_packages:
            if is_sdk_package(package):
                kept.remove_pip_package(package)
        spec = specs.parse(kept.serialize_to_string(), "conda").with_options(base_image=base)
    variables = tuple(
        sorted(
            (str(k), str(v))
            for k, v in (env.environment_variables or {}).items()
            if k != "EXAMPLE_ENV_VAR"
        )
    )
    registry = env.docker.base_image_registry
    login = None
    if registry is not None and registry.address:
        # A password given in code (now, or earlier in this process for this registry)
        # is read from this process's environment; without one, Docker's own login.
        variable = _password_variable(registry.address)
        given = registry.password or os.environ.get(variable)
        login = RegistryLogin(
            registry.address, registry.username or "", variable if given else None
        )
    if env.docker.gpu_support:
        spec = spec.with_options(gpu=True)
    if spec.format == "dockerfile":
        return replace(spec, registry=login)
    return replace(spec, env=tuple(sorted({*spec.env, *variables})), registry=login)


def _local_base(image: str | None) -> str | None:
    """``None`` (mlmagic's default) for Azure's own base images, else the image."""
    if not image or image.startswith(AZURE_BASE_PREFIX):
        return None
    return image


def _notify_base(env: Environment) -> None:
    image = env.docker.base_image
    if (
        image
        and image.startswith(AZURE_BASE_PREFIX)
        and image
        not in (
            DEFAULT_CPU_IMAGE,
            DEFAULT_GPU_IMAGE,
        )
    ):
        print(
            f"mlmagic: {image} is Azure's runtime image; mlmagic's default base image is used "
            "instead (set env.docker.base_image to choose another)."
        )


def _password_variable(address: str) -> str:
    return "MLMAGIC_REGISTRY_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", address).upper()


def _hand_password(env: Environment) -> None:
    """Put a registry password given in code where the build reads it.

    Only this process's environment holds it (the definition keeps the variable's
    name), so it reaches builds started later, by a run, and is never written down.
    """
    registry = env.docker.base_image_registry
    if registry is not None and registry.address and registry.password:
        os.environ[_password_variable(registry.address)] = registry.password


def _version_number(version: str | int | None) -> int | None:
    if version is None:
        return None
    text = str(version).strip()
    if not text.isdigit():
        raise NotFoundError(f"Environment version {version!r} is not a number: give one like '2'.")
    return int(text)


def _curated_for(name: str) -> str:
    for pattern, ours in _CURATED:
        if pattern.search(name):
            return ours
    raise NotFoundError(
        f"The curated environment {name!r} has no local counterpart (there are scikit-learn, "
        "PyTorch and minimal ones): make it with Environment.from_pip_requirements or "
        "CondaDependencies.create(pip_packages=[...])."
    )


def _text_or_file(value: str | Path) -> str:
    """A Dockerfile given as a path or as its text."""
    if isinstance(value, Path) or ("\n" not in value and Path(value).is_file()):
        return Path(value).read_text()
    return str(value)
