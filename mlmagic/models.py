"""The model registry: files copied into the workspace, versioned per name, with lineage.

A model version is a folder ``<workspace>/models/<name>/<version>/`` holding the
registered file or folder under its own name, so a scoring script finds
``$AZUREML_MODEL_DIR/model.pkl`` as it would on Azure ML.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic.exceptions import MlmagicError
from mlmagic.summary import html_table

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["Model", "Models", "check_inside"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_inside(path: Path, root: Path) -> Path:
    """``path`` resolved, refused unless it and every link under it stay inside ``root``."""
    root = root.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise MlmagicError(f"{path} is outside {root}.", hint=hints.REGISTER_ANY_PATH)
    if resolved.is_dir():
        for item in resolved.rglob("*"):
            if item.is_symlink() and root not in item.resolve().parents:
                raise MlmagicError(
                    f"{item} links outside {root}; copy the file into outputs instead of "
                    "linking to it."
                )
    return resolved


@dataclass
class Model:
    """One registered version of a model."""

    name: str
    version: int
    path: Path
    run_id: str | None = None
    experiment: str | None = None
    env_name: str | None = None
    env_version: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    created: float | None = None
    _workspace: Workspace | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def folder(self) -> Path:
        """The version's folder (what ``AZUREML_MODEL_DIR`` points to for one model)."""
        return self.path.parent

    def download(self, dest: str | Path = ".") -> Path:
        """Copy the model's file or folder into ``dest``; return the copy's path."""
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        copy = target / self.path.name
        if self.path.is_dir():
            shutil.copytree(self.path, copy, dirs_exist_ok=True)
        else:
            shutil.copy2(self.path, copy)
        return copy

    def delete(self) -> None:
        """Remove this version; refused while a service uses it."""
        assert self._workspace is not None
        self._workspace.models.delete(self.name, self.version)

    def __str__(self) -> str:
        return self.ref

    def __repr__(self) -> str:
        lineage = f" · run {self.run_id}" if self.run_id else ""
        return f"<Model {self.ref} {self.path.name}{lineage}>"

    def _repr_html_(self) -> str:
        rows = [
            ("model", self.ref),
            ("file", self.path.name),
            ("run", self.run_id),
            ("experiment", self.experiment),
            ("environment", f"{self.env_name}:{self.env_version}" if self.env_name else None),
            ("tags", ", ".join(f"{k}={v}" for k, v in self.tags.items()) or None),
            ("description", self.description),
        ]
        return html_table("Model", rows)


class Models:
    """The model registry of one workspace (``ws.models``)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def register(
        self,
        name: str,
        path: str | Path,
        *,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> Model:
        """Copy a file or folder into the registry as the next version of ``name``."""
        if not _NAME.match(name):
            raise MlmagicError(
                f"{name!r} is not a valid model name: use letters, digits, '-', '_' and '.'."
            )
        source = Path(path).expanduser()
        if not source.exists():
            raise MlmagicError(f"Nothing to register at {source}: check the path.")
        lineage = lineage or {}
        staging = self._ws.path("models", name, f".staging-{time.time_ns()}")
        staging.mkdir(parents=True)
        try:
            copy = staging / source.resolve().name
            if source.is_dir():
                shutil.copytree(source, copy, symlinks=False)
            else:
                shutil.copy2(source, copy)

            def place(version: int) -> str:
                final = self._ws.path("models", name, str(version))
                staging.rename(final)
                return str(final / copy.name)

            version = self._ws.store.add_model_version(
                name,
                {
                    "run_id": lineage.get("run_id"),
                    "experiment": lineage.get("experiment"),
                    "env_name": lineage.get("env_name"),
                    "env_version": lineage.get("env_version"),
                    "tags": tags or {},
                    "description": description,
                },
                place,
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(name, version)

    def get(self, name: str, version: int | None = None) -> Model:
        """The latest (or a given) version of a model."""
        row = self._ws.store.model(name, version)
        if row is None:
            which = f"{name}:{version}" if version is not None else name
            raise MlmagicError(f"No model {which}.", hint=hints.LIST_MODELS)
        return self._model(row)

    def resolve(self, ref: str | Model) -> Model:
        """A model from ``name``, ``name:version`` or a Model."""
        if isinstance(ref, Model):
            return ref
        name, _, version = str(ref).partition(":")
        if version and not version.isdigit():
            raise MlmagicError(f"{ref!r}: the version after ':' must be a number, e.g. {name}:1.")
        return self.get(name, int(version) if version else None)

    def list(self) -> pd.DataFrame:
        """Every model version: name, version, file, run, experiment, tags, created."""
        import pandas as pd

        rows = self._ws.store.models()
        frame = pd.DataFrame(
            [
                {
                    "name": r["name"],
                    "version": r["version"],
                    "file": Path(r["path"]).name,
                    "run_id": r["run_id"],
                    "experiment": r["experiment"],
                    "tags": r["tags"],
                    "created": r["created"],
                }
                for r in rows
            ],
            columns=["name", "version", "file", "run_id", "experiment", "tags", "created"],
        )
        frame["created"] = pd.to_datetime(frame["created"], unit="s")
        return frame

    def delete(self, name: str, version: int) -> None:
        """Remove a version and its files; refused while a service uses it."""
        model = self.get(name, version)
        users = [
            s["name"]
            for s in self._ws.store.services()
            if model.ref in (s["config"] or {}).get("models", [])
        ]
        if users:
            raise MlmagicError(
                f"Model {model.ref} is used by the service {', '.join(users)}: delete or "
                "update the service first."
            )
        self._ws.store.delete_model(name, version)
        shutil.rmtree(model.folder, ignore_errors=True)

    def _model(self, row: dict[str, Any]) -> Model:
        return Model(
            name=row["name"],
            version=row["version"],
            path=Path(row["path"]),
            run_id=row["run_id"],
            experiment=row["experiment"],
            env_name=row["env_name"],
            env_version=row["env_version"],
            tags=row["tags"],
            description=row["description"],
            created=row["created"],
            _workspace=self._ws,
        )
