"""``Workspace``: the local mlmagic workspace under Azure ML's names.

No cloud call is ever made: the subscription, resource group and region are kept only
so that code which reads them back gets what it passed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlmagic

if TYPE_CHECKING:
    from mlmagic.azureml.core.compute import ComputeTarget
    from mlmagic.azureml.core.datastore import Datastore
    from mlmagic.azureml.core.environment import Environment
    from mlmagic.azureml.core.experiment import Experiment

__all__ = ["Workspace"]

_CONFIG_NAMES = ("config.json", ".azureml/config.json", "aml_config/config.json")


class Workspace:
    """An Azure ML ``Workspace`` that is the local mlmagic workspace.

    Parameters
    ----------
    subscription_id, resource_group, workspace_name
        Kept as given (Azure's positional order); they choose nothing locally.
    _workspace
        The mlmagic workspace to use; ``None`` is the one of the current directory.

    Attributes
    ----------
    mlmagic : mlmagic.Workspace
        The workspace every call of this layer goes to.
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        _location: str | None = None,
        *,
        _workspace: mlmagic.Workspace | None = None,
        **_ignored: Any,
    ) -> None:
        self.mlmagic = _workspace or mlmagic.Workspace.current()
        self.subscription_id = subscription_id or "local"
        self.resource_group = resource_group or "local"
        self.name = workspace_name or self.mlmagic.root.parent.name or "local"
        self.location = _location or "local"

    @classmethod
    def from_config(
        cls, path: str | None = None, auth: Any = None, _file_name: str | None = None, **_: Any
    ) -> Workspace:
        """The local workspace; a ``config.json`` found as Azure looks for it gives its name.

        Parameters
        ----------
        path
            A ``config.json`` file, or a folder to search from (then its parents), as Azure
            does; ``None`` searches from the current directory.
        """
        found = _find_config(Path(path) if path else Path.cwd(), _file_name)
        values: dict[str, Any] = {}
        if found is not None:
            try:
                values = json.loads(found.read_text())
            except (OSError, ValueError) as exc:
                raise mlmagic.MlmagicError(
                    f"The workspace config {found} is not readable JSON ({exc}): fix or remove it."
                ) from exc
        return cls(
            values.get("subscription_id"),
            values.get("resource_group"),
            values.get("workspace_name"),
        )

    @classmethod
    def get(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        **_: Any,
    ) -> Workspace:
        """The local workspace, under the name given."""
        return cls(subscription_id, resource_group, name)

    def get_details(self) -> dict[str, Any]:
        """Name, ids and the local folder, as a dict like Azure's."""
        return {
            "name": self.name,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "location": self.location,
            "localPath": str(self.mlmagic.root),
        }

    def get_default_datastore(self) -> Datastore:
        """The default datastore: a folder of the workspace (``workspaceblobstore``)."""
        from mlmagic.azureml.core.datastore import Datastore

        return Datastore(self)

    @property
    def datastores(self) -> dict[str, Datastore]:
        """The datastores made in this workspace, by name (the default one always)."""
        from mlmagic.azureml.core.datastore import DEFAULT_DATASTORE, Datastore

        folder = self.mlmagic.path("datastores")
        names = (
            {DEFAULT_DATASTORE, *(p.name for p in folder.iterdir() if p.is_dir())}
            if (folder.is_dir())
            else {DEFAULT_DATASTORE}
        )
        return {name: Datastore(self, name) for name in sorted(names)}

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """The compute targets made in this workspace, by name."""
        from mlmagic.azureml.core.compute import ComputeTarget

        return {c.name: c for c in ComputeTarget.list(self)}

    @property
    def environments(self) -> dict[str, Environment]:
        """Every environment, name → latest version (``Environment.list(ws)``)."""
        from mlmagic.azureml.core.environment import Environment

        return Environment.list(self)

    @property
    def experiments(self) -> dict[str, Experiment]:
        """Every experiment that has a run, by name."""
        from mlmagic.azureml.core.experiment import Experiment

        return {e.name: e for e in Experiment.list(self)}

    def write_config(self, path: str | None = None, file_name: str | None = None) -> None:
        """Write ``config.json`` (``path``/.azureml/ by default) as Azure does."""
        folder = Path(path or ".") / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / (file_name or "config.json")).write_text(
            json.dumps(
                {
                    "subscription_id": self.subscription_id,
                    "resource_group": self.resource_group,
                    "workspace_name": self.name,
                },
                indent=4,
            )
        )

    def __repr__(self) -> str:
        return f"Workspace.create(name={self.name!r}, path={str(self.mlmagic.root)!r})"


def _find_config(start: Path, file_name: str | None) -> Path | None:
    if start.is_file():
        return start
    names = (file_name,) if file_name else _CONFIG_NAMES
    for folder in (start.resolve(), *start.resolve().parents):
        for name in names:
            if name and (folder / name).is_file():
                return folder / name
    return None
