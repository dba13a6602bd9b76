"""The cache key of an environment, and the build context it is built from.

The image tag is a content id: the hash of the normalised definition, the builder's
version and the resolved base image. Two names with the same content share one image,
and reformatting a cell does not rebuild.

The context holds the Dockerfile, the ``uv`` binary (copied from the ``uv`` wheel, so no
network is needed to get it) and the requirements. The host's CA bundle and package-index
settings go in as BuildKit secrets: they reach the install step, never a layer, so a
corporate proxy's CA or an index URL with a token is never baked into an image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import ssl
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from mlmagic._version import __version__
from mlmagic.build.cuda import choose_gpu_base, cuda_of_image
from mlmagic.build.dockerfile import (
    BUILD_SETTINGS_SECRET,
    CA_SECRET,
    REQUIREMENTS_FILE,
    UV_FILE,
    ResolvedBase,
    render,
)
from mlmagic.config import MLMagic
from mlmagic.exceptions import BuildError
from mlmagic.spec import EnvironmentSpec
from mlmagic.spec.conda import pip_beyond_conda

__all__ = [
    "BUILDER_VERSION",
    "IMAGE_REPOSITORY",
    "INDEX_VARIABLES",
    "BuildContext",
    "build_settings",
    "cache_key",
    "host_ca_bundle",
    "image_tag",
    "resolve_base",
    "write_build_secrets",
]

#: Changes whenever rendering changes what an unchanged spec builds.
BUILDER_VERSION = f"{__version__}+render.2"
#: Repository of the images mlmagic builds; the tag is the cache key.
IMAGE_REPOSITORY = "mlmagic-env"
#: Package-index settings carried from the host into builds.
INDEX_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL")
_CA_VARIABLES = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def resolve_base(spec: EnvironmentSpec, config: MLMagic) -> ResolvedBase:
    """The base image and Python version ``spec`` builds on under ``config``.

    A GPU environment (``gpu`` or ``cuda`` set) gets its base, and the reason for it,
    from :func:`~mlmagic.build.cuda.choose_gpu_base` unless it names its base image.

    Raises
    ------
    SpecError
        The GPU rules refuse the environment (frameworks that want different CUDA).
    """
    gpu = spec.gpu or spec.cuda is not None
    if spec.dockerfile is not None:
        return ResolvedBase(image=spec.base_image or "", python=None)
    if spec.base_image:
        if not gpu:
            return ResolvedBase(image=spec.base_image, python=spec.python)
        cuda = cuda_of_image(spec.base_image)
        return ResolvedBase(
            image=spec.base_image,
            python=spec.python,
            cuda=cuda,
            cuda_in_image=True,
            reason=f"{spec.base_image}: named as the base image",
        )
    if not gpu:
        return _configured(spec, config.cpu_base_image, config)
    indexes = [url for url in (spec.index_url, *spec.extra_index_urls) if url]
    choice = choose_gpu_base(spec.pip, indexes, cuda=spec.cuda, default_image=config.gpu_base_image)
    if choice.image is None:
        # The frameworks bring CUDA as wheels: the CPU image has the Python asked for.
        plain = _configured(spec, config.cpu_base_image, config)
        return replace(plain, cuda=choice.cuda, reason=f"{plain.image}: {choice.reason}")
    return replace(
        _configured(spec, choice.image, config, install_python=True),
        cuda=choice.cuda,
        cuda_in_image=True,
        reason=f"{choice.image}: {choice.reason}",
    )


def _configured(
    spec: EnvironmentSpec, template: str, config: MLMagic, *, install_python: bool = False
) -> ResolvedBase:
    """``template`` with the Python asked for, when it names one (``{python}``)."""
    python = spec.python or config.default_python
    if "{python}" in template:
        # The tag names the Python: nothing to check or install.
        return ResolvedBase(image=template.format(python=python), python=python)
    return ResolvedBase(image=template, python=spec.python, install_python=install_python)


def cache_key(spec: EnvironmentSpec, base: ResolvedBase) -> str:
    """The content hash (hex sha256) that names the image of ``spec`` on ``base``."""
    payload = {
        "spec": spec.normalised(),
        "builder": BUILDER_VERSION,
        "base": base.image,
        "python": base.python,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def image_tag(key: str) -> str:
    """The image tag for a cache key."""
    return f"{IMAGE_REPOSITORY}:{key[:20]}"


def host_ca_bundle(environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle this host trusts, the way pip and requests would find it."""
    environ = os.environ if environ is None else environ
    for name in _CA_VARIABLES:
        value = environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    default = ssl.get_default_verify_paths().cafile
    if default and Path(default).is_file():
        return Path(default)
    return None


def build_settings(ca_present: bool, environ: Mapping[str, str] | None = None) -> str:
    """Shell lines that set the CA and index variables during an install step."""
    environ = os.environ if environ is None else environ
    lines = []
    if ca_present:
        ca = f"/run/secrets/{CA_SECRET}"
        # uv, pip, requests, curl and conda each read one of these.
        lines += [f"export {name}={ca}" for name in (*_CA_VARIABLES, "CONDA_SSL_VERIFY")]
    for name in INDEX_VARIABLES:
        if environ.get(name):
            lines.append(f"export {name}={shlex.quote(environ[name])}")
    return "\n".join(["# mlmagic build settings (never stored in the image)", *lines]) + "\n"


def write_build_secrets(
    directory: Path, environ: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Write the CA and settings secrets into ``directory`` (outside any context)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = host_ca_bundle(environ)
    ca_file = directory / CA_SECRET
    ca_file.write_bytes(ca.read_bytes() if ca else b"")
    settings = directory / BUILD_SETTINGS_SECRET
    settings.write_text(build_settings(ca is not None, environ))
    return {CA_SECRET: ca_file, BUILD_SETTINGS_SECRET: settings}


class BuildContext:
    """A build context folder for one spec: Dockerfile, uv, requirements, secrets.

    Parameters
    ----------
    directory
        An empty folder the context is written into. The secrets go in a folder beside
        it (``<directory>-secrets``), never inside; the caller removes both, e.g. by
        making ``directory`` inside a temporary folder.
    spec, base
        What to build, on what.
    environ
        Where the CA and index settings are read from (the process environment).
    """

    def __init__(
        self,
        directory: Path,
        spec: EnvironmentSpec,
        base: ResolvedBase,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.dockerfile = render(spec, base)
        (directory / "Dockerfile").write_text(self.dockerfile)
        if spec.dockerfile is None and not spec.user_managed:
            self._copy_uv()
            # With micromamba, the packages it converted from conda are installed by it.
            pip = pip_beyond_conda(spec) if spec.solver == "conda" else spec.pip
            (directory / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in pip))
        secrets_dir = directory.parent / f"{directory.name}-secrets"
        self.secrets = write_build_secrets(secrets_dir, environ)

    def _copy_uv(self) -> None:
        try:
            from uv import find_uv_bin
        except ImportError as exc:  # pragma: no cover - uv is a dependency
            raise BuildError("The uv package is missing: pip install uv") from exc
        shutil.copy2(find_uv_bin(), self.directory / UV_FILE)
