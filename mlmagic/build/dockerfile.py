"""Render an :class:`EnvironmentSpec` as Dockerfile text. Pure: no I/O.

The layer order keeps Docker's cache useful: base → system packages → Python → the
dependency layers (pins first, so adding a package does not reinstall them) →
environment variables → extra steps. Package installs run with
BuildKit mounts: a cache mount shared by all environments (a second environment that
shares packages with the first does not download them again) and two secrets, the
host's CA bundle and its package-index settings, which reach the ``RUN`` step but never
a layer (see :mod:`mlmagic.build.context`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from mlmagic.spec import EnvironmentSpec
from mlmagic.spec.conda import pip_beyond_conda

__all__ = [
    "BASE_COMMENT",
    "BUILD_SETTINGS_SECRET",
    "CA_SECRET",
    "ENV_PREFIX",
    "REQUIREMENTS_FILE",
    "UV_FILE",
    "ResolvedBase",
    "render",
]

#: How the Dockerfile of a GPU environment starts: the base and the reason for it.
BASE_COMMENT = "# mlmagic base: "
#: Where the Python environment lives in every image mlmagic builds.
ENV_PREFIX = "/opt/mlmagic/env"
#: Names of files the build context holds next to the Dockerfile.
UV_FILE = "uv"
REQUIREMENTS_FILE = "requirements.txt"
#: BuildKit secret ids.
CA_SECRET = "mlmagic-ca"
BUILD_SETTINGS_SECRET = "mlmagic-build-settings"

_MICROMAMBA_URL = "https://micro.mamba.pm/api/micromamba/linux-64/latest"

_SECRETS = (
    f"--mount=type=secret,id={CA_SECRET},target=/run/secrets/{CA_SECRET} "
    f"--mount=type=secret,id={BUILD_SETTINGS_SECRET},target=/run/secrets/{BUILD_SETTINGS_SECRET}"
)
_LOAD_SETTINGS = f". /run/secrets/{BUILD_SETTINGS_SECRET}"
#: Most ``RUN`` steps that install pip requirements (each is an image layer).
_MAX_STEPS = 6


@dataclass(frozen=True)
class ResolvedBase:
    """The base image and Python a spec resolves to under the current settings.

    Attributes
    ----------
    image
        The image reference to start ``FROM``.
    python
        The Python version the image must have, or ``None`` to take the image's own.
    install_python
        Install Python with the system package manager when the image has none
        (GPU images based on plain CUDA images).
    cuda
        For a GPU environment, the CUDA ``X.Y`` the host's driver must support, when
        known (see :mod:`mlmagic.build.cuda`).
    cuda_in_image
        The CUDA libraries are the image's (an image chosen for a GPU environment is
        taken to have them); ``False`` when they come as wheels, or for a CPU one.
    reason
        Why this base, for a GPU environment: written as the Dockerfile's first line.
    """

    image: str
    python: str | None
    install_python: bool = False
    cuda: str | None = None
    cuda_in_image: bool = False
    reason: str | None = None


def render(spec: EnvironmentSpec, base: ResolvedBase) -> str:
    """The Dockerfile for ``spec`` on ``base``.

    A Dockerfile spec is returned as written. A user-managed spec installs nothing: it is
    its base image plus system packages, environment variables and extra steps.
    """
    if spec.dockerfile is not None:
        return spec.dockerfile
    lines = [f"{BASE_COMMENT}{base.reason}"] if base.reason else []
    lines += [f"FROM {base.image}", "USER root", "ENV DEBIAN_FRONTEND=noninteractive"]
    if base.reason and not base.cuda_in_image:
        # A plain base has none of nvidia/cuda's settings: ask the container toolkit for
        # the driver's compute libraries, which the wheels' CUDA runtime loads.
        lines.append("ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility")
    lines += _system_packages(spec.apt)
    if not spec.user_managed:
        lines += _python(base, check_version=spec.solver != "conda")
        if spec.solver == "conda":
            lines += _conda_layer(spec, base)
        else:
            lines += _uv_layer(spec, base)
    lines += _environment_variables(spec.env)
    lines += list(spec.dockerfile_steps)
    return "\n".join(lines) + "\n"


def _run(*commands: str, mounts: str = "") -> list[str]:
    """A ``RUN`` instruction of several commands joined by ``&&``, one per line."""
    head = f"RUN {mounts} " if mounts else "RUN "
    body = " \\\n    && ".join(commands)
    return [head + body]


def _system_packages(packages: tuple[str, ...]) -> list[str]:
    if not packages:
        return []
    names = " ".join(shlex.quote(p) for p in packages)
    return _run(
        "apt-get update",
        f"apt-get install -y --no-install-recommends {names}",
        "rm -rf /var/lib/apt/lists/*",
    )


def _python(base: ResolvedBase, *, check_version: bool) -> list[str]:
    lines = []
    if base.install_python:
        lines += _run(
            "(command -v python3 >/dev/null || (apt-get update"
            " && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates"
            " && rm -rf /var/lib/apt/lists/*))"
        )
    lines += [
        f"COPY {UV_FILE} /usr/local/bin/uv",
        f"ENV VIRTUAL_ENV={ENV_PREFIX} PATH={ENV_PREFIX}/bin:$PATH "
        "UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1",
    ]
    if base.python and check_version:
        want = base.python
        message = (
            f"mlmagic: the base image has Python $v, not {want}: choose a base image with "
            f"Python {want} (--base) or drop --python"
        )
        lines += _run(
            "v=$(python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')",
            f'{{ [ "$v" = "{want}" ] || {{ echo "{message}" >&2; exit 1; }}; }}',
        )
    return lines


def _uv_layer(spec: EnvironmentSpec, base: ResolvedBase) -> list[str]:
    """The venv, then one ``RUN`` per group of requirements (see :func:`_install_groups`).

    Each step appends its lines to the image's requirements file and installs the whole
    file, so every step resolves all the lines so far together and installs only what is
    new. Adding a line then rebuilds from its group on, not every package: Docker's cache
    keeps the steps before it.
    """
    lines = _run(f"uv venv --python python3 {ENV_PREFIX}")
    if not spec.pip:
        return lines
    options = []
    if spec.index_url:
        options.append(f"--index-url {shlex.quote(spec.index_url)}")
    options += [f"--extra-index-url {shlex.quote(url)}" for url in spec.extra_index_urls]
    requirements = f"/opt/mlmagic/{REQUIREMENTS_FILE}"
    install = " ".join(["uv pip install", *options, f"-r {requirements}"])
    for group in _install_groups(spec.pip):
        quoted = " ".join(shlex.quote(r) for r in group)
        lines += _run(
            _LOAD_SETTINGS,
            f"printf '%s\\n' {quoted} >> {requirements}",
            install,
            mounts=f"--mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv {_SECRETS}",
        )
    return lines


def _install_groups(requirements: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The requirements in install steps: exact pins first, one line a step, and the lines
    past the first ``_MAX_STEPS - 1`` together in the last step.

    Exact pins (``==``, direct URLs) come first because they are what a user changes least
    and usually the heaviest (a framework at a chosen version); a package added later,
    usually unpinned, then lands in a step after them. Pure: the same requirements give
    the same steps whatever was built before.
    """
    pinned = [r for r in requirements if "==" in r or " @ " in r]
    ordered = pinned + [r for r in requirements if r not in pinned]
    head: list[tuple[str, ...]] = [(r,) for r in ordered[: _MAX_STEPS - 1]]
    tail = tuple(ordered[_MAX_STEPS - 1 :])
    return [*head, tail] if tail else head


def _conda_layer(spec: EnvironmentSpec, base: ResolvedBase) -> list[str]:
    """micromamba makes the environment from conda channels; pip packages go in with uv."""
    channels = " ".join(f"-c {shlex.quote(c)}" for c in spec.channels or ("conda-forge",))
    python = f"python={base.python}" if base.python else "python"
    packages = " ".join(shlex.quote(p) for p in (python, *spec.conda))
    fetch = (
        'python3 -c "import tarfile, urllib.request as u; '
        f"u.urlretrieve('{_MICROMAMBA_URL}', '/tmp/mm.tar.bz2'); "
        "tarfile.open('/tmp/mm.tar.bz2').extract('bin/micromamba', '/usr/local')\""
    )
    lines = _run(
        _LOAD_SETTINGS,
        fetch,
        "rm /tmp/mm.tar.bz2",
        f"micromamba create -y -p {ENV_PREFIX} {channels} {packages}",
        "micromamba clean -a -y",
        mounts=_SECRETS,
    )
    if pip_beyond_conda(spec):
        lines.append(f"COPY {REQUIREMENTS_FILE} /opt/mlmagic/{REQUIREMENTS_FILE}")
        lines += _run(
            _LOAD_SETTINGS,
            f"uv pip install -r /opt/mlmagic/{REQUIREMENTS_FILE}",
            mounts=f"--mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv {_SECRETS}",
        )
    return lines


def _environment_variables(env: tuple[tuple[str, str], ...]) -> list[str]:
    if not env:
        return []
    pairs = " ".join(f"{name}={_env_value(value)}" for name, value in env)
    return [f"ENV {pairs}"]


def _env_value(value: str) -> str:
    """Quote an ENV value the Dockerfile way (double quotes, backslash escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
