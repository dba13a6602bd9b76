"""``azureml.core.authentication``: Azure's logins, accepted and unused.

The local workspace needs no login, so each class takes Azure's arguments, keeps them,
and signs in to nothing; a notebook that makes one and passes it as ``auth=`` runs as is.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AzureCliAuthentication",
    "InteractiveLoginAuthentication",
    "MsiAuthentication",
    "ServicePrincipalAuthentication",
]


class _NoLogin:
    """A login the local workspace does not need."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def get_authentication_header(self) -> dict[str, str]:
        """No header: nothing is called over the network."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(unused: the local workspace needs no login)"


class InteractiveLoginAuthentication(_NoLogin):
    """Azure's browser login; unused here."""


class ServicePrincipalAuthentication(_NoLogin):
    """Azure's service principal login; unused here (its secret is not kept)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("service_principal_password", None)
        super().__init__(*args[:2], **kwargs)


class MsiAuthentication(_NoLogin):
    """Azure's managed identity login; unused here."""


class AzureCliAuthentication(_NoLogin):
    """Azure CLI's login; unused here."""
