"""The sections of an Azure ML ``Environment``: ``docker``, ``python`` and a registry.

Plain mutable objects, as Azure's are; :func:`sections_from_spec` reads them back from a
registered mlmagic definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlmagic.azureml.core.conda_dependencies import CondaDependencies
from mlmagic.spec.base import EnvironmentSpec
from mlmagic.spec.conda import pip_beyond_conda

__all__ = [
    "AZURE_BASE_PREFIX",
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "ContainerRegistry",
    "DockerSection",
    "PythonSection",
    "sections_from_spec",
]

#: Where Azure's own images live; mlmagic's default base image stands in for them.
AZURE_BASE_PREFIX = "mcr.microsoft.com/azureml/"
#: Azure's defaults, kept so code that reads or compares them works.
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"


@dataclass
class ContainerRegistry:
    """A private registry the base image is pulled from.

    The ``password`` is used by this process's builds and never stored: a registered
    environment keeps the address and user name only.
    """

    address: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass
class DockerSection:
    """How the image is made: a base image (or a Dockerfile) and run-time options.

    ``gpu_support`` (an estimator's ``use_gpu``) starts from a GPU base image and gives
    the run every GPU. ``enabled`` and ``arguments`` are kept for code that reads them;
    runs always use the workspace's target (``DockerConfiguration(use_docker=False)``
    chooses the local one).
    """

    enabled: bool = False
    base_image: str | None = DEFAULT_CPU_IMAGE
    base_dockerfile: str | None = None
    base_image_registry: ContainerRegistry = field(default_factory=ContainerRegistry)
    shm_size: str | None = None
    arguments: list[str] = field(default_factory=list)
    shared_volumes: bool = True
    gpu_support: bool = False


@dataclass
class PythonSection:
    """The Python of the image: its packages, or the image's own as it is."""

    user_managed_dependencies: bool = False
    interpreter_path: str = "python"
    conda_dependencies: CondaDependencies | None = field(default_factory=CondaDependencies)
    conda_dependencies_file: str | None = None
    base_conda_environment: str | None = None


def sections_from_spec(
    spec: EnvironmentSpec,
) -> tuple[DockerSection, PythonSection, dict[str, str]]:
    """The ``docker`` and ``python`` sections and the variables of a stored definition."""
    docker = DockerSection(
        base_image=None if spec.dockerfile else spec.base_image or DEFAULT_CPU_IMAGE,
        base_dockerfile=spec.dockerfile,
        gpu_support=spec.gpu,
    )
    if spec.registry is not None:
        docker.base_image_registry = ContainerRegistry(
            spec.registry.address, spec.registry.username
        )
    deps = CondaDependencies()
    if spec.python:
        deps.set_python_version(spec.python)
    for channel in spec.channels:
        deps.add_channel(channel)
    if spec.format == "conda":
        conda: tuple[str, ...] = spec.conda
        pip: tuple[str, ...] = pip_beyond_conda(spec)
    else:
        conda, pip = (), spec.pip
    for package in conda:
        deps.add_conda_package(package)
    for package in pip:
        deps.add_pip_package(package)
    if spec.index_url:
        deps.set_pip_option(f"--index-url {spec.index_url}")
    for url in spec.extra_index_urls:
        deps.set_pip_option(f"--extra-index-url {url}")
    python = PythonSection(
        user_managed_dependencies=spec.user_managed or spec.dockerfile is not None,
        conda_dependencies=deps,
    )
    variables: dict[str, Any] = dict(spec.env)
    return docker, python, variables
