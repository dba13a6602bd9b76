"""``azureml.core.webservice``: services deployed on this machine.

``LocalWebservice`` is what it says. ``AciWebservice`` and ``AksWebservice`` take their
deployment configurations as Azure does, and deploy the same local service (saying so in
one line), so code written for the cloud runs as it is.
"""

from __future__ import annotations

from mlmagic.azureml.core.webservice.configuration import (
    AciServiceDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
    LocalWebserviceDeploymentConfiguration,
)
from mlmagic.azureml.core.webservice.webservice import (
    AciWebservice,
    AksWebservice,
    LocalWebservice,
    Webservice,
    WebserviceException,
)

__all__ = [
    "AciServiceDeploymentConfiguration",
    "AciWebservice",
    "AksServiceDeploymentConfiguration",
    "AksWebservice",
    "DeploymentConfiguration",
    "LocalWebservice",
    "LocalWebserviceDeploymentConfiguration",
    "Webservice",
    "WebserviceException",
]
