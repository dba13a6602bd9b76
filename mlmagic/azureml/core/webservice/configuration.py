"""Deployment configurations: where and with what a service runs.

Each maps onto the options of :meth:`mlmagic.deploy.service.Services.deploy`. The cloud
ones (ACI, AKS) keep every argument Azure takes, use what has a local meaning (cores,
memory, GPUs, key auth) and print one line saying the service is local.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "AciServiceDeploymentConfiguration",
    "AksServiceDeploymentConfiguration",
    "DeploymentConfiguration",
    "LocalWebserviceDeploymentConfiguration",
]


class DeploymentConfiguration:
    """What every deployment configuration gives ``Model.deploy``.

    Attributes
    ----------
    port
        The port on 127.0.0.1; ``None``: a free one.
    cpu_cores, memory_gb, gpu_cores
        Resources; ``None``: no limit (no GPU).
    auth_enabled
        Whether requests need a key (``service.get_keys()``).
    """

    compute_type = "Local"

    def __init__(
        self,
        port: int | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        gpu_cores: int | None = None,
        auth_enabled: bool | None = None,
        **options: Any,
    ) -> None:
        self.port = port
        self.cpu_cores = cpu_cores
        self.memory_gb = memory_gb
        self.gpu_cores = gpu_cores
        self.auth_enabled = auth_enabled
        self.options = options

    def settings(self) -> dict[str, Any]:
        """The keyword arguments of ``Services.deploy`` this configuration gives."""
        settings: dict[str, Any] = {"port": self.port, "auth": bool(self.auth_enabled)}
        if self.cpu_cores:
            settings["cpus"] = float(self.cpu_cores)
        if self.memory_gb:
            settings["memory"] = f"{math.ceil(float(self.memory_gb) * 1024)}m"
        if self.gpu_cores:
            settings["gpus"] = str(int(self.gpu_cores))
        return settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port})"


class LocalWebserviceDeploymentConfiguration(DeploymentConfiguration):
    """``LocalWebservice.deploy_configuration(port=)``."""


class _Cloud(DeploymentConfiguration):
    """A cloud configuration deployed here: it says so once, when it is made."""

    service = ""

    def __init__(self, **arguments: Any) -> None:
        super().__init__(**arguments)
        print(
            f"{type(self).__name__[:3]}Webservice: no {self.service} here; this deploys a local "
            "service on 127.0.0.1 (cores, memory, GPUs and key auth apply)."
        )


class AciServiceDeploymentConfiguration(_Cloud):
    """``AciWebservice.deploy_configuration(cpu_cores=, memory_gb=, auth_enabled=, ...)``."""

    service = "Azure Container Instances"


class AksServiceDeploymentConfiguration(_Cloud):
    """``AksWebservice.deploy_configuration(...)``: key auth is on unless
    ``auth_enabled=False``, as on AKS."""

    service = "Azure Kubernetes Service"

    def __init__(self, auth_enabled: bool | None = None, **arguments: Any) -> None:
        super().__init__(auth_enabled=True if auth_enabled is None else auth_enabled, **arguments)
