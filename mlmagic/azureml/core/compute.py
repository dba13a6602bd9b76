"""``azureml.core.compute``: compute targets, all of them this machine's engine.

``ComputeTarget.create(ws, "cpu-cluster", AmlCompute.provisioning_configuration(...))`` is
recorded in the workspace (``azureml/computes.json``) so ``ComputeTarget(ws,
"cpu-cluster")`` finds it later, as Azure's code expects; a run sent to it runs on the
workspace's target (Docker, or local without an engine), and ``max_nodes`` limits the
nodes of its distributed runs. ``"local"`` is always there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.exceptions import MlmagicError

if TYPE_CHECKING:
    from mlmagic.azureml.core.workspace import Workspace

__all__ = ["AmlCompute", "ComputeTarget", "ComputeTargetException", "ProvisioningConfiguration"]


class ComputeTargetException(MlmagicError):
    """A compute target that does not exist (what Azure's code catches to create one)."""


class ProvisioningConfiguration:
    """What ``AmlCompute.provisioning_configuration`` returns: size and node limits."""

    def __init__(self, vm_size: str = "", min_nodes: int = 0, max_nodes: int = 4, **extra: Any):
        if not isinstance(max_nodes, int) or max_nodes < 1:
            raise ComputeTargetException(
                f"max_nodes={max_nodes!r}: give a whole number, 1 or more."
            )
        self.vm_size, self.min_nodes, self.max_nodes = vm_size, min_nodes, max_nodes
        self.extra = extra


class ComputeTarget:
    """A compute of this workspace: the local engine under a name.

    Parameters
    ----------
    workspace
        The workspace.
    name
        A compute made with :meth:`create`, or ``"local"``.

    Raises
    ------
    ComputeTargetException
        No compute of that name.
    """

    def __init__(self, workspace: Workspace, name: str) -> None:
        record = _computes(workspace).get(name)
        if record is None and name != "local":
            raise ComputeTargetException(
                f"ComputeTargetException: no compute target {name!r} in this workspace; make "
                "it with ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration())."
            )
        record = record or {"type": "local", "vm_size": "", "min_nodes": 0, "max_nodes": 1}
        self.workspace, self.name = workspace, name
        self.type: str = record["type"]
        self.vm_size: str = record["vm_size"]
        self.min_nodes: int = record["min_nodes"]
        self.max_nodes: int | None = None if name == "local" else record["max_nodes"]
        self.provisioning_state = "Succeeded"

    @classmethod
    def create(
        cls, workspace: Workspace, name: str, provisioning_configuration: ProvisioningConfiguration
    ) -> ComputeTarget:
        """Record a compute of this name (the existing one's limits are replaced)."""
        config = provisioning_configuration
        computes = _computes(workspace)
        computes[name] = {
            "type": "AmlCompute",
            "vm_size": config.vm_size,
            "min_nodes": config.min_nodes,
            "max_nodes": config.max_nodes,
        }
        _store(workspace).write_text(json.dumps(computes, indent=1, sort_keys=True))
        return cls(workspace, name)

    @classmethod
    def list(cls, workspace: Workspace) -> list[ComputeTarget]:
        """The computes made in this workspace."""
        return [cls(workspace, name) for name in sorted(_computes(workspace))]

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: int = 20,
    ) -> None:
        """Ready at once: the engine is this machine's."""
        if show_output:
            print(f"{self.name}: Succeeded (this machine's engine, up to {self.max_nodes} nodes)")

    def get_status(self) -> str:
        """``Succeeded``."""
        return self.provisioning_state

    def delete(self) -> None:
        """Forget the compute (nothing runs on it of its own)."""
        computes = _computes(self.workspace)
        computes.pop(self.name, None)
        _store(self.workspace).write_text(json.dumps(computes, indent=1, sort_keys=True))

    def __repr__(self) -> str:
        return f"ComputeTarget(name={self.name!r}, type={self.type!r}, max_nodes={self.max_nodes})"


class AmlCompute(ComputeTarget):
    """Azure's managed cluster: here a name and a node limit on this machine's engine."""

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "", min_nodes: int = 0, max_nodes: int = 4, **extra: Any
    ) -> ProvisioningConfiguration:
        """The size and node limits of a compute to create."""
        return ProvisioningConfiguration(vm_size, min_nodes, max_nodes, **extra)

    @staticmethod
    def supported_vmsizes(
        workspace: Workspace, location: str | None = None
    ) -> list[dict[str, Any]]:
        """No sizes to choose from: the machine is this one."""
        return []


def _store(workspace: Workspace) -> Path:
    folder = workspace.mlmagic.path("azureml")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "computes.json"


def _computes(workspace: Workspace) -> dict[str, dict[str, Any]]:
    path = _store(workspace)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MlmagicError(f"{path} is not readable JSON ({exc}): fix or delete it.") from exc
    return data if isinstance(data, dict) else {}
