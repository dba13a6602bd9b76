"""``azureml.core.model``: ``Model`` and ``InferenceConfig`` over mlmagic's model registry.

A model version is a folder of the workspace (``models/<name>/<version>/``); Azure's
``Model`` object is a view of one version, by name and number. Nothing is uploaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.azureml.core.model_deploy import InferenceConfig, deploy
from mlmagic.azureml.core.workspace import Workspace
from mlmagic.azureml.shim.azureml.core.model import find_model_path
from mlmagic.exceptions import MlmagicError, NotFoundError
from mlmagic.models import Model as RegisteredModel

if TYPE_CHECKING:
    from mlmagic.azureml.core.webservice import Webservice

__all__ = ["InferenceConfig", "Model"]


class Model:
    """One registered version of a model, as Azure's ``Model``.

    Parameters
    ----------
    workspace
        The workspace it is registered in.
    name
        The model's name; the latest version unless ``version`` (or ``id``) says.
    id
        ``name:version``, as :attr:`id` gives it.
    version
        The version number.
    tags
        Only versions carrying these tags: a list of keys, or of ``[key, value]`` pairs,
        or a dict.

    Raises
    ------
    mlmagic.NotFoundError
        No such model or version (or none with those tags).
    """

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: Any = None,
        properties: Any = None,
        version: int | str | None = None,
        run_id: str | None = None,
        **_ignored: Any,
    ) -> None:
        if id:
            name, _, number = id.partition(":")
            version = number or version
        if not name:
            raise MlmagicError("Model(workspace, name=...) needs a name or an id (name:version).")
        self.workspace = workspace
        if version is not None:
            self._model = workspace.mlmagic.models.get(name, int(version))
        else:
            found = Model.list(workspace, name=name, tags=tags, run_id=run_id)
            if not found:
                which = f" with tags {tags}" if tags else ""
                raise NotFoundError(f"No model {name}{which}: register it with Model.register.")
            self._model = found[0]._model

    @classmethod
    def _of(cls, workspace: Workspace, model: RegisteredModel) -> Model:
        self = cls.__new__(cls)
        self.workspace = workspace
        self._model = model
        return self

    # -- what it is ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def version(self) -> int:
        return self._model.version

    @property
    def id(self) -> str:
        """``name:version``."""
        return self._model.ref

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._model.tags)

    @property
    def properties(self) -> dict[str, str]:
        """The run and environment it came from, when known."""
        lineage = {
            "run_id": self._model.run_id,
            "experiment": self._model.experiment,
            "environment": (
                f"{self._model.env_name}:{self._model.env_version}"
                if self._model.env_name
                else None
            ),
        }
        return {k: v for k, v in lineage.items() if v}

    @property
    def description(self) -> str | None:
        return self._model.description

    @property
    def run_id(self) -> str | None:
        return self._model.run_id

    @property
    def created_time(self) -> float | None:
        """When it was registered (seconds since the epoch)."""
        return self._model.created

    @property
    def url(self) -> str:
        """Where the registered copy is (a ``file://`` URL)."""
        return self._model.path.as_uri()

    @property
    def mlmagic(self) -> RegisteredModel:
        """The mlmagic :class:`~mlmagic.Model` this is a view of."""
        return self._model

    def __repr__(self) -> str:
        return (
            f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, "
            f"version={self.version}, tags={self.tags})"
        )

    # -- registering and finding ----------------------------------------------------------

    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        description: str | None = None,
        **_ignored: Any,
    ) -> Model:
        """Copy a file or folder into the registry as the next version of ``model_name``.

        ``properties`` are kept with the tags (mlmagic has one set of labels). Azure's
        cloud options (datasets, frameworks, resource configuration) are accepted and
        change nothing.
        """
        labels = {str(k): str(v) for k, v in {**(properties or {}), **(tags or {})}.items()}
        model = workspace.mlmagic.models.register(
            model_name, Path(model_path), tags=labels, description=description
        )
        print(f"Registering model {model_name}")
        return Model._of(workspace, model)

    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        latest: bool = False,
        **_ignored: Any,
    ) -> list[Model]:
        """The registered versions, newest first: of ``name``, with ``tags`` and
        ``properties`` (keys, ``[key, value]`` pairs or a dict), from ``run_id``; with
        ``latest``, only the newest version of each name."""
        registry = workspace.mlmagic.models
        rows = workspace.mlmagic.store.models()
        found: list[Model] = []
        wanted = _pairs(tags) + _pairs(properties)
        for row in sorted(rows, key=lambda r: (r["created"] or 0, r["version"]), reverse=True):
            if name is not None and row["name"] != name:
                continue
            if run_id is not None and row["run_id"] != run_id:
                continue
            if not all(_has(row["tags"], key, value) for key, value in wanted):
                continue
            if latest and any(m.name == row["name"] for m in found):
                continue
            found.append(Model._of(workspace, registry.get(row["name"], row["version"])))
        return found

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Workspace | None = None
    ) -> str:
        """Where the model's file (or folder) is.

        Inside a service (``AZUREML_MODEL_DIR`` set) it is found among the models the
        service was deployed with, as on Azure; elsewhere it is the registered copy in
        the workspace.

        Raises
        ------
        mlmagic.NotFoundError
            The service was not deployed with that model, or it is not registered.
        """
        model_dir = os.environ.get("AZUREML_MODEL_DIR")
        if model_dir:
            return str(_in_service(Path(model_dir), model_name, version))
        workspace = _workspace or Workspace()
        return str(workspace.mlmagic.models.get(model_name, version).path)

    # -- using it -------------------------------------------------------------------------

    def download(
        self, target_dir: str = ".", exist_ok: bool = False, exists_ok: bool | None = None
    ) -> str:
        """Copy the model's file or folder into ``target_dir``; return the copy's path.

        Raises
        ------
        mlmagic.MlmagicError
            Something of that name is there already and ``exist_ok`` is false.
        """
        overwrite = exist_ok if exists_ok is None else exists_ok
        destination = Path(target_dir) / self._model.path.name
        if destination.exists() or destination.is_symlink():
            if not overwrite:
                raise MlmagicError(
                    f"{destination} exists: pass exist_ok=True to replace it, or choose "
                    "another target_dir."
                )
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            else:
                destination.unlink()
        return str(self._model.download(target_dir))

    def delete(self) -> None:
        """Remove this version; refused while a service uses it."""
        self._model.delete()

    @staticmethod
    def deploy(
        workspace: Workspace,
        name: str,
        models: Sequence[Model],
        inference_config: InferenceConfig | None = None,
        deployment_config: Any = None,
        deployment_target: Any = None,
        overwrite: bool = False,
        show_output: bool = False,
        **_ignored: Any,
    ) -> Webservice:
        """Serve ``models`` as the service ``name`` on this machine, as Azure's
        ``Model.deploy``: the service is returned while it deploys; call
        ``wait_for_deployment`` on it. See :func:`.model_deploy.deploy`."""
        return deploy(
            workspace,
            name,
            models,
            inference_config,
            deployment_config,
            overwrite=overwrite,
            show_output=show_output,
        )


def _pairs(value: Any) -> list[tuple[str, str | None]]:
    """Tag filters as Azure takes them: keys, ``[key, value]`` pairs, or a dict."""
    if not value:
        return []
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    pairs: list[tuple[str, str | None]] = []
    for item in value if isinstance(value, Iterable) and not isinstance(value, str) else [value]:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((str(item[0]), str(item[1])))
        else:
            pairs.append((str(item), None))
    return pairs


def _has(tags: Mapping[str, str], key: str, value: str | None) -> bool:
    return key in tags and (value is None or tags[key] == value)


def _in_service(model_dir: Path, name: str, version: int | None) -> Path:
    """The model's file or folder under ``AZUREML_MODEL_DIR`` (see the shim's
    :func:`~mlmagic.azureml.shim.azureml.core.model.find_model_path`, which a scoring
    script's own ``Model.get_model_path`` uses inside the service)."""
    found = find_model_path(model_dir, name, version)
    if found is None:
        which = f"{name}:{version}" if version is not None else name
        raise NotFoundError(
            f"This service was not deployed with the model {which} (AZUREML_MODEL_DIR is "
            f"{model_dir}): pass it in Model.deploy(..., models=[...])."
        )
    return found
