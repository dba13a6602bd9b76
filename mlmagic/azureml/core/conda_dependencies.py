"""``CondaDependencies``: a conda environment.yml held as lists, as Azure ML's SDK has it.

The text it writes is an ordinary conda environment file, the one mlmagic's ``conda``
format reads (:mod:`mlmagic.spec.conda`), so it builds like a ``%%environment`` cell.

Unlike Azure's, a new one pins no Python and adds no ``azureml-defaults``: without a
``python=`` line the image's Python (mlmagic's default) is used, and a run needs nothing
of the SDK inside its image.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlmagic.spec import _yaml
from mlmagic.spec.conda import read_channels

__all__ = ["CondaDependencies", "is_sdk_package"]

_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# The Azure ML SDK's own packages: they reach the cloud, and a run needs none of them.
_SDK = re.compile(r"azureml[-_.]", re.IGNORECASE)


def is_sdk_package(requirement: str) -> bool:
    """Whether a pip requirement names one of the Azure ML SDK's packages."""
    return bool(_SDK.match(requirement.strip()))


class CondaDependencies:
    """The packages of an environment: conda packages, channels and a pip list.

    Parameters
    ----------
    conda_dependencies_file_path
        A conda environment.yml to start from; ``None`` starts empty.
    """

    def __init__(
        self,
        conda_dependencies_file_path: str | Path | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        self.name = "project_environment"
        self._channels: list[str] = []
        self._conda: list[str] = []
        self._pip: list[str] = []
        self._pip_options: list[str] = []
        if conda_dependencies_file_path is not None:
            self._load(Path(conda_dependencies_file_path).read_text())
        elif _underlying_structure is not None:
            self._load_data(_underlying_structure)

    @classmethod
    def create(
        cls,
        pip_indexurl: str | None = None,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """A new set of dependencies from lists of packages (Azure's factory)."""
        made = cls()
        if python_version:
            made.set_python_version(python_version)
        for package in conda_packages or ():
            made.add_conda_package(package)
        for package in pip_packages or ():
            made.add_pip_package(package)
        if pip_indexurl:
            made.set_pip_option(f"--index-url {pip_indexurl}")
        return made

    @classmethod
    def _from_text(cls, text: str) -> CondaDependencies:
        made = cls()
        made._load(text)
        return made

    # -- reading -------------------------------------------------------------------------

    @property
    def conda_packages(self) -> list[str]:
        """The conda package specs, without Python's."""
        return [p for p in self._conda if _name(p) != "python"]

    @property
    def pip_packages(self) -> list[str]:
        """The pip requirements."""
        return list(self._pip)

    @property
    def conda_channels(self) -> list[str]:
        """The conda channels."""
        return list(self._channels)

    @property
    def pip_options(self) -> list[str]:
        """Options of the pip list (``--index-url ...``, ``--extra-index-url ...``)."""
        return list(self._pip_options)

    def get_python_version(self) -> str | None:
        """The ``X.Y`` (or ``X.Y.Z``) of the ``python=`` spec, or ``None`` when unpinned."""
        for package in self._conda:
            if _name(package) == "python":
                return package[len("python") :].lstrip("=<>!~ ") or None
        return None

    # -- changing ------------------------------------------------------------------------

    def add_conda_package(self, conda_package: str) -> None:
        """Add (or replace, by name) a conda package spec."""
        self._conda = _replaced(self._conda, conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        """Add (or replace, by name) a pip requirement."""
        self._pip = _replaced(self._pip, pip_package)

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (once)."""
        if channel not in self._channels:
            self._channels.append(channel)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove a conda package, by name."""
        self._conda = [p for p in self._conda if _name(p) != _name(conda_package)]

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove a pip requirement, by name."""
        self._pip = [p for p in self._pip if _name(p) != _name(pip_package)]

    def remove_channel(self, channel: str) -> None:
        """Remove a conda channel."""
        self._channels = [c for c in self._channels if c != channel]

    def set_python_version(self, version: str) -> None:
        """Pin Python (``"3.11"``)."""
        self.add_conda_package(f"python={version}")

    def set_pip_option(self, pip_option: str) -> None:
        """Add an option line to the pip list (``--extra-index-url URL``)."""
        if pip_option not in self._pip_options:
            self._pip_options.append(pip_option)

    def add_tensorflow_pip_package(
        self, core_type: str = "cpu", version: str | None = None
    ) -> None:
        """Add ``tensorflow`` (pinned to ``version`` when given)."""
        self.add_pip_package(f"tensorflow=={version}" if version else "tensorflow")

    # -- writing -------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The environment.yml as data."""
        dependencies: list[Any] = list(self._conda)
        if self._pip or self._pip_options:
            if not any(_name(p) == "pip" for p in self._conda):
                dependencies.append("pip")
            dependencies.append({"pip": [*self._pip_options, *self._pip]})
        data: dict[str, Any] = {"name": self.name}
        if self._channels:
            data["channels"] = list(self._channels)
        data["dependencies"] = dependencies
        return data

    def serialize_to_string(self) -> str:
        """The conda environment.yml text."""
        import yaml

        return yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=False)

    def save(self, path: str | Path | None = None) -> str:
        """Write the environment.yml to ``path`` (``./conda_dependencies.yml``); return it."""
        target = Path(path or "conda_dependencies.yml")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.serialize_to_string())
        return str(target)

    def save_to_file(self, base_directory: str | Path, conda_file_path: str | None = None) -> str:
        """Write ``conda_file_path`` (``conda_dependencies.yml``) in ``base_directory``."""
        return self.save(Path(base_directory) / (conda_file_path or "conda_dependencies.yml"))

    def _load(self, text: str) -> None:
        document = _yaml.load_mapping(text)
        self._load_data(document.data if document is not None else {})

    def _load_data(self, data: dict[str, Any]) -> None:
        self.name = str(data.get("name") or self.name)
        self._channels = list(read_channels((None, str(c)) for c in data.get("channels") or ()))
        for item in data.get("dependencies") or ():
            if isinstance(item, dict):
                for line in item.get("pip") or ():
                    line = str(line).strip()
                    if line.startswith("-"):
                        self.set_pip_option(line)
                    else:
                        self._pip.append(line)
            else:
                self._conda.append(str(item))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return self.serialize_to_string()


def _name(spec: str) -> str:
    match = _PACKAGE_NAME.match(spec.strip())
    return (match.group(0) if match else spec).lower().replace("_", "-")


def _replaced(specs: list[str], new: str) -> list[str]:
    kept = [s for s in specs if _name(s) != _name(new)]
    return [*kept, new.strip()]
