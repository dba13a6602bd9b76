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
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic.copying import copy_out
from mlmagic.exceptions import ConflictError, MlmagicError, NotFoundError
from mlmagic.summary import html_table

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["Model", "Models"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


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
        """Copy the model's file or folder into ``dest``; return the copy's path.

        Services see the version's folder, so it is copied as :func:`copy_out` copies:
        a link or special file found in it is refused, never followed.
        """
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        return copy_out(self.folder, PurePath(self.path.name), target / self.path.name)

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
        path: str | PurePath,
        *,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        lineage: dict[str, Any] | None = None,
        within: Path | None = None,
    ) -> Model:
        """Copy a file or folder into the registry as the next version of ``name``.

        Parameters
        ----------
        name
            The model's name: letters, digits, ``-``, ``_`` and ``.``.
        path
            The file or folder. The path itself may lead through links (it is the one
            you chose); nothing under it is followed: a link, named pipe, socket or
            device file met while copying refuses the registration, naming it.
        tags, description
            Kept with the version.
        lineage
            ``run_id``, ``experiment``, ``env_name`` and ``env_version`` of the run it
            came from.
        within
            A folder ``path`` is relative to, and the copy may not leave: no part of
            ``path`` is followed as a link either (a run's folder, which its script can
            write).

        Raises
        ------
        MlmagicError
            The name is not valid, nothing is at ``path``, or the copy met something it
            refuses. Nothing is registered then.
        """
        if not _NAME.fullmatch(name):
            raise MlmagicError(
                f"{name!r} is not a valid model name: use letters, digits, '-', '_' and '.'."
            )
        if within is None:
            source = Path(path).expanduser()
            if not source.exists():
                raise MlmagicError(f"Nothing to register at {source}: check the path.")
            source = source.resolve()
            if not source.name:
                raise MlmagicError(f"{path}: give a file or a folder to register, not /.")
            root, relative, shown = source.parent, PurePath(source.name), None
        else:
            root, relative, shown = within, PurePath(path), PurePath("")
        lineage = lineage or {}
        staging = self._ws.path("models", name, f".staging-{time.time_ns()}")
        staging.mkdir(parents=True)
        try:
            copy = copy_out(root, relative, staging / relative.name, shown=shown)

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
            raise NotFoundError(f"No model {which}.", hint=hints.LIST_MODELS)
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
        users = [s.name for s in self._ws.store.services() if model.ref in s.config.models]
        if users:
            raise ConflictError(
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
