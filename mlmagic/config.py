"""Settings, as a traitlets ``Configurable`` so ``%config MLMagic.cpu_base_image = ...`` works.

Each setting also reads an environment variable (``MLMAGIC_<NAME>``) for its default, so
scripts, CI and the CLI can change it without a notebook.
"""

from __future__ import annotations

import os

from traitlets import Float, Integer, TraitError, Unicode, default
from traitlets.config import Configurable

__all__ = ["MLMagic", "get_config", "set_config"]


def _env(name: str, fallback: str) -> str:
    return os.environ.get(f"MLMAGIC_{name}", fallback)


class MLMagic(Configurable):
    """mlmagic's settings."""

    cpu_base_image = Unicode(
        help="Base image of CPU environments. '{python}' is replaced by the Python version "
        "asked for (env: MLMAGIC_CPU_BASE_IMAGE).",
    ).tag(config=True)
    gpu_base_image = Unicode(
        help="Base image of GPU environments whose framework pins choose none (see "
        "mlmagic.build.cuda); Python is installed into it when it has none (env: "
        "MLMAGIC_GPU_BASE_IMAGE).",
    ).tag(config=True)
    default_python = Unicode(
        help="Python version of environments that do not ask for one (env: "
        "MLMAGIC_DEFAULT_PYTHON).",
    ).tag(config=True)
    target = Unicode(
        help="Where environments, runs and services go: 'docker', 'local' (uv virtual "
        "environments and processes) or 'auto' (Docker when an engine answers, else local; "
        "env: MLMAGIC_TARGET).",
    ).tag(config=True)
    docker_cli = Unicode(
        help="The docker command used for BuildKit builds; empty finds one (env: "
        "MLMAGIC_DOCKER_CLI).",
    ).tag(config=True)
    snapshot_max_bytes = Integer(
        300 * 1024 * 1024, help="Largest source snapshot a run may take, in bytes."
    ).tag(config=True)
    snapshot_max_files = Integer(2000, help="Most files a run's source snapshot may hold.").tag(
        config=True
    )
    log_tail_lines = Integer(200, help="Log lines a widget shows.").tag(config=True)
    run_log_max_bytes = Integer(
        min=0,
        help="Most bytes of a run's output kept in its log; past it the script goes on, and "
        "the log says how much it dropped. 0 keeps everything (env: "
        "MLMAGIC_RUN_LOG_MAX_BYTES; default 256 MiB).",
    ).tag(config=True)
    default_shm_size = Unicode("2g", help="Shared memory of GPU runs (data loaders).").tag(
        config=True
    )
    service_host = Unicode(
        "127.0.0.1", help="Address services publish their port on unless asked otherwise."
    ).tag(config=True)
    health_timeout = Float(120.0, help="Seconds a service may take to become healthy.").tag(
        config=True
    )

    @default("cpu_base_image")
    def _cpu_base_image(self) -> str:
        return _env("CPU_BASE_IMAGE", "python:{python}-slim")

    @default("gpu_base_image")
    def _gpu_base_image(self) -> str:
        return _env("GPU_BASE_IMAGE", "nvidia/cuda:12.4.1-runtime-ubuntu22.04")

    @default("default_python")
    def _default_python(self) -> str:
        return _env("DEFAULT_PYTHON", "3.11")

    @default("target")
    def _target(self) -> str:
        return _env("TARGET", "auto")

    @default("docker_cli")
    def _docker_cli(self) -> str:
        return _env("DOCKER_CLI", "")

    @default("run_log_max_bytes")
    def _run_log_max_bytes(self) -> int:
        text = _env("RUN_LOG_MAX_BYTES", str(256 * 1024 * 1024))
        try:
            return int(text)
        except ValueError:
            raise TraitError(
                f"MLMAGIC_RUN_LOG_MAX_BYTES={text!r} is not a number of bytes: give a whole "
                "number, 0 for no limit."
            ) from None


_config: MLMagic | None = None


def get_config() -> MLMagic:
    """The settings of this process (the instance ``%config`` edits once loaded)."""
    global _config
    if _config is None:
        _config = MLMagic()
    return _config


def set_config(config: MLMagic) -> None:
    """Make ``config`` the settings of this process (done by ``%load_ext mlmagic``)."""
    global _config
    _config = config
