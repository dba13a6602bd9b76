"""Azure ML's inference configuration file (``inferenceconfig.json``), read as it is.

So an existing project deploys unchanged: ``entryScript``, ``sourceDirectory``,
``condaFile``, ``baseImage``, ``baseImageRegistry``, ``extraDockerfileSteps`` (a file of
Dockerfile lines), ``enableGpu`` and ``cudaVersion``. Paths are relative to the
configuration file's folder. As in Azure's own files, ``null`` means "not given" for every
key (``"sourceDirectory": null``: the file's own folder).

``baseImageRegistry`` is an address (a public registry: nothing to log in with) or an
object with ``address``, ``username`` and ``password``. The password is handed back apart
from the environment (:attr:`InferenceConfig.registry_password`), for the build alone:
see :func:`mlmagic.deploy.registry.registry_password`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlmagic.deploy.registry import login_for
from mlmagic.environment import Environment
from mlmagic.exceptions import DeployError
from mlmagic.spec import RegistryLogin

__all__ = ["InferenceConfig", "inference_config", "read_inference_config"]

_KNOWN = {
    "baseImage",
    "baseImageRegistry",
    "condaFile",
    "cudaVersion",
    "description",
    "enableGpu",
    "entryScript",
    "extraDockerfileSteps",
    "runtime",
    "sourceDirectory",
}
_REGISTRY_KEYS = ("address", "password", "username")


@dataclass(frozen=True)
class InferenceConfig:
    """What the file asks for.

    Attributes
    ----------
    entry_script
        The scoring script, relative to ``source_dir``.
    source_dir
        The folder copied beside it.
    environment
        The environment made from ``condaFile`` (and the image keys), or ``None``.
    registry_password
        The base image registry's password, when the file gives one: for the build of
        ``environment`` only, never stored (its login names a variable instead).
    """

    entry_script: str
    source_dir: Path
    environment: Environment | None
    registry_password: str | None = field(default=None, repr=False)


def read_inference_config(path: str | Path, service_name: str) -> InferenceConfig:
    """Read ``path``; the environment (from ``condaFile``) is named ``<service>-env``.

    Raises
    ------
    DeployError
        The file is unreadable or not JSON, a key is unknown or malformed, or the entry
        script or a file it names is missing; the one-line message names the key.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DeployError(f"Cannot read {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise DeployError(f"{path} is not valid JSON: {exc}.") from exc
    return inference_config(data, path.resolve().parent, service_name, origin=str(path))


def inference_config(data: Any, folder: Path, service_name: str, *, origin: str) -> InferenceConfig:
    """The same from the file's content: keys as in the file, paths relative to ``folder``;
    ``origin`` names where the keys came from in messages.

    Raises
    ------
    DeployError
        As :func:`read_inference_config`.
    """
    path = origin
    if not isinstance(data, dict) or not isinstance(data.get("entryScript"), str):
        raise DeployError(f"{path} has no entryScript: it must name the scoring script.")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise DeployError(
            f"{path}: {', '.join(unknown)} not supported; known keys: {', '.join(sorted(_KNOWN))}."
        )
    # Azure writes null for a key left unset; it means the same as leaving it out.
    data = {key: value for key, value in data.items() if value is not None}
    if str(data.get("runtime", "python")).lower() != "python":
        raise DeployError(f"{path}: only the python runtime is supported, not {data['runtime']}.")
    source = (folder / str(data.get("sourceDirectory", "."))).resolve()
    if not source.is_dir():
        raise DeployError(
            f"{path}: sourceDirectory {data['sourceDirectory']} is not a folder beside it: "
            "fix the path (relative to the file), or set it to null."
        )
    entry = _entry_script(path, folder, source, data["entryScript"])
    login, password = _registry(path, data.get("baseImageRegistry"))
    environment = None
    if data.get("condaFile"):
        environment = Environment.from_conda_yaml(
            f"{service_name}-env",
            folder / data["condaFile"],
            base_image=data.get("baseImage") or None,
            gpu=bool(data.get("enableGpu")) or None,
            cuda=str(data["cudaVersion"]) if data.get("cudaVersion") else None,
        )
        steps = _steps(folder, data.get("extraDockerfileSteps"))
        if steps or login:
            spec = replace(environment.spec, dockerfile_steps=steps or (), registry=login)
            environment = Environment(environment.name, spec)
    return InferenceConfig(
        entry_script=entry,
        source_dir=source,
        environment=environment,
        registry_password=password,
    )


def _entry_script(path: str, folder: Path, source: Path, entry_script: str) -> str:
    entry = Path(entry_script)
    if (source / entry).is_file():
        return entry.as_posix()
    # Azure also accepts an entry script given relative to the config file.
    full = (folder / entry).resolve()
    if full.is_file() and source in full.parents:
        return full.relative_to(source).as_posix()
    raise DeployError(
        f"{path}: No entry script {entry_script} in {source}: fix entryScript, or "
        "sourceDirectory (the folder that holds it)."
    )


def _steps(folder: Path, name: Any) -> tuple[str, ...]:
    if not name:
        return ()
    steps_file = folder / str(name)
    try:
        return tuple(steps_file.read_text().splitlines())
    except OSError as exc:
        raise DeployError(f"Cannot read {steps_file}: {exc.strerror}.") from exc


def _registry(path: str, value: Any) -> tuple[RegistryLogin | None, str | None]:
    """The login for the base image's registry and its password (kept apart)."""
    if value is None or isinstance(value, str):
        return None, None  # an address alone: a public registry, pulled without a login
    if not isinstance(value, dict):
        raise DeployError(
            f"{path}: baseImageRegistry must be an address or an object with address, "
            f"username and password, not {json.dumps(value)}."
        )
    unknown = sorted(set(value) - set(_REGISTRY_KEYS))
    if unknown:
        raise DeployError(
            f"{path}: baseImageRegistry has {', '.join(unknown)}; its keys are "
            f"{', '.join(_REGISTRY_KEYS)}."
        )
    address, username = value.get("address"), value.get("username")
    if not username:
        return None, None
    if not address:
        raise DeployError(f"{path}: baseImageRegistry names a username but no address.")
    password = value.get("password") or None
    return login_for(str(address), str(username), password), password
