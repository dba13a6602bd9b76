"""Azure ML's environment folder: ``azureml_environment.json`` and the files beside it.

What ``Environment.save_to_directory`` and ``az ml environment scaffold/download`` write,
and ``load_from_directory`` and ``az ml environment register -d`` read:

``azureml_environment.json``
    Name, version, ``environmentVariables``, and the ``python`` and ``docker`` sections
    with Azure's camelCase keys. ``python.condaDependenciesFile`` and
    ``docker.baseDockerfile`` name the files below (relative to the folder).
``conda_dependencies.yml``
    The conda environment file of the packages.
``BaseDockerfile``
    The Dockerfile, when the environment is built from one.

A registry password is never written: the folder keeps the address and user name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.azureml.core.conda_dependencies import CondaDependencies
from mlmagic.azureml.core.environment_sections import ContainerRegistry
from mlmagic.exceptions import SpecError

if TYPE_CHECKING:
    from mlmagic.azureml.core.environment import Environment

__all__ = ["CONDA_FILE", "DEFINITION_FILE", "DOCKERFILE", "load_environment", "save_environment"]

DEFINITION_FILE = "azureml_environment.json"
CONDA_FILE = "conda_dependencies.yml"
DOCKERFILE = "BaseDockerfile"


def save_environment(env: Environment, folder: Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``env`` into ``folder`` (made if missing); return the files written.

    Raises
    ------
    SpecError
        ``folder`` already holds an environment definition and ``overwrite`` is false.
    """
    definition = folder / DEFINITION_FILE
    if definition.exists() and not overwrite:
        raise SpecError(
            f"{definition} exists: choose an empty folder, or pass overwrite=True "
            "(--overwrite) to replace it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    conda_file = None
    if env.python.conda_dependencies is not None and not env.python.user_managed_dependencies:
        conda_file = CONDA_FILE
        written.append(Path(env.python.conda_dependencies.save(folder / CONDA_FILE)))
    dockerfile = None
    if env.docker.base_dockerfile:
        dockerfile = DOCKERFILE
        (folder / DOCKERFILE).write_text(env.docker.base_dockerfile)
        written.append(folder / DOCKERFILE)
    registry = env.docker.base_image_registry
    data = {
        "name": env.name,
        "version": env.version,
        "environmentVariables": dict(env.environment_variables or {}),
        "python": {
            "userManagedDependencies": env.python.user_managed_dependencies,
            "interpreterPath": env.python.interpreter_path,
            "condaDependenciesFile": conda_file,
            "baseCondaEnvironment": env.python.base_conda_environment,
        },
        "docker": {
            "enabled": env.docker.enabled,
            "baseImage": env.docker.base_image,
            "baseDockerfile": dockerfile,
            "sharedVolumes": env.docker.shared_volumes,
            "shmSize": env.docker.shm_size,
            "arguments": list(env.docker.arguments),
            "baseImageRegistry": {
                "address": registry.address if registry else None,
                "username": registry.username if registry else None,
                "password": None,
            },
        },
        "inferencingStackVersion": env.inferencing_stack_version,
    }
    definition.write_text(json.dumps(data, indent=4) + "\n")
    return [definition, *written]


def load_environment(folder: Path) -> Environment:
    """The environment a folder written by :func:`save_environment` (or Azure) defines.

    Raises
    ------
    SpecError
        No ``azureml_environment.json`` in ``folder``, or it is not readable JSON of
        Azure's shape, or a file it names is missing.
    """
    from mlmagic.azureml.core.environment import Environment

    definition = folder / DEFINITION_FILE
    try:
        data = json.loads(definition.read_text())
    except FileNotFoundError as exc:
        raise SpecError(
            f"No {DEFINITION_FILE} in {folder}: make one with `mlmagic env scaffold NAME "
            f"--directory {folder}` or Environment.save_to_directory."
        ) from exc
    except (OSError, ValueError) as exc:
        raise SpecError(f"{definition} is not readable JSON ({exc}): fix it.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise SpecError(f'{definition} has no "name": add the environment\'s name.')
    env = Environment(data["name"])
    env.version = None if data.get("version") is None else str(data["version"])
    env.environment_variables = {
        str(k): str(v) for k, v in (data.get("environmentVariables") or {}).items()
    }
    python: dict[str, Any] = data.get("python") or {}
    env.python.user_managed_dependencies = bool(python.get("userManagedDependencies"))
    env.python.interpreter_path = python.get("interpreterPath") or "python"
    env.python.base_conda_environment = python.get("baseCondaEnvironment")
    conda_file = python.get("condaDependenciesFile")
    if conda_file:
        env.python.conda_dependencies = CondaDependencies(_named(folder, conda_file, definition))
    docker: dict[str, Any] = data.get("docker") or {}
    env.docker.enabled = bool(docker.get("enabled"))
    env.docker.base_image = docker.get("baseImage")
    env.docker.shm_size = docker.get("shmSize")
    env.docker.arguments = list(docker.get("arguments") or [])
    dockerfile = docker.get("baseDockerfile")
    if dockerfile:
        named = folder / dockerfile
        # Azure writes the file's name; older folders hold the Dockerfile's text itself.
        env.docker.base_dockerfile = (
            _named(folder, dockerfile, definition).read_text()
            if "\n" not in dockerfile and named.is_file()
            else dockerfile
        )
    registry = docker.get("baseImageRegistry") or {}
    env.docker.base_image_registry = ContainerRegistry(
        registry.get("address"), registry.get("username"), registry.get("password")
    )
    return env


def _named(folder: Path, name: str, definition: Path) -> Path:
    path = folder / name
    if not path.is_file():
        raise SpecError(f"{definition} names {name}, which is not in {folder}: add it.")
    return path
