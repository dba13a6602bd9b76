"""Azure ML's inference configuration file (``inferenceconfig.json``), read as it is.

So an existing project deploys unchanged: ``entryScript``, ``sourceDirectory``,
``condaFile``, ``baseImage``, ``extraDockerfileSteps`` (a file of Dockerfile lines) and
``enableGpu``. Paths are relative to the configuration file's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlmagic.environment import Environment
from mlmagic.exceptions import DeployError

__all__ = ["InferenceConfig", "read_inference_config"]

_KNOWN = {
    "entryScript",
    "sourceDirectory",
    "condaFile",
    "baseImage",
    "extraDockerfileSteps",
    "enableGpu",
    "runtime",
    "description",
}


@dataclass(frozen=True)
class InferenceConfig:
    """What the file asks for."""

    entry_script: str
    source_dir: Path
    environment: Environment | None


def read_inference_config(path: str | Path, service_name: str) -> InferenceConfig:
    """Read ``path``; the environment (from ``condaFile``) is named ``<service>-env``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DeployError(f"Cannot read {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise DeployError(f"{path} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict) or "entryScript" not in data:
        raise DeployError(f"{path} has no entryScript: it must name the scoring script.")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise DeployError(
            f"{path}: {', '.join(unknown)} not supported; known keys: {', '.join(sorted(_KNOWN))}."
        )
    if data.get("runtime", "python").lower() != "python":
        raise DeployError(f"{path}: only the python runtime is supported.")
    folder = path.resolve().parent
    source = (folder / data.get("sourceDirectory", ".")).resolve()
    entry = Path(data["entryScript"])
    if not (source / entry).is_file():
        # Azure also accepts an entry script given relative to the config file.
        full = (folder / entry).resolve()
        if full.is_file() and source in full.parents:
            entry = full.relative_to(source)
    environment = None
    if data.get("condaFile"):
        steps = ()
        if data.get("extraDockerfileSteps"):
            steps_file = folder / data["extraDockerfileSteps"]
            try:
                steps = tuple(steps_file.read_text().splitlines())
            except OSError as exc:
                raise DeployError(f"Cannot read {steps_file}: {exc.strerror}.") from exc
        environment = Environment.from_conda_yaml(
            f"{service_name}-env",
            folder / data["condaFile"],
            base_image=data.get("baseImage") or None,
            gpu=bool(data.get("enableGpu")) or None,
        )
        if steps:
            from dataclasses import replace

            environment = Environment(
                environment.name, replace(environment.spec, dockerfile_steps=steps)
            )
    return InferenceConfig(
        entry_script=entry.as_posix(), source_dir=source, environment=environment
    )
