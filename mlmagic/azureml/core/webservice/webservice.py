"""``Webservice`` and its kinds: a deployed mlmagic service under Azure's names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlmagic.azureml.core.webservice.configuration import (
    AciServiceDeploymentConfiguration,
    AksServiceDeploymentConfiguration,
    DeploymentConfiguration,
    LocalWebserviceDeploymentConfiguration,
)
from mlmagic.exceptions import DeployError, MlmagicError

if TYPE_CHECKING:
    from mlmagic.azureml.core.model_deploy import InferenceConfig
    from mlmagic.azureml.core.webservice.deployment import Deployment
    from mlmagic.azureml.core.workspace import Workspace
    from mlmagic.deploy.service import Service

__all__ = ["AciWebservice", "AksWebservice", "LocalWebservice", "Webservice", "WebserviceException"]


class WebserviceException(DeployError):
    """A service call failed (Azure's ``WebserviceException``; an mlmagic DeployError)."""


class Webservice:
    """A service of the workspace, found by name, as Azure's ``Webservice(ws, name)``.

    Raises
    ------
    WebserviceException
        No service has that name.
    """

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = name
        self._deployment: Deployment | None = None
        try:
            self._service: Service = workspace.mlmagic.services.get(name)
        except MlmagicError as exc:
            raise WebserviceException(
                f"There is no service {name} in this workspace: deploy it with Model.deploy."
            ) from exc

    # -- what it is ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        """Transitioning, Healthy, Unhealthy or Failed, checked now."""
        return self._service.state

    @property
    def scoring_uri(self) -> str:
        return self._service.scoring_uri

    @property
    def swagger_uri(self) -> str:
        return self._service.swagger_uri

    @property
    def port(self) -> int:
        return int(self._service.config["port"])

    @property
    def compute_type(self) -> str:
        return "Local"

    @property
    def models(self) -> list[Any]:
        """The models it serves (Azure's ``Model`` objects)."""
        from mlmagic.azureml.core.model import Model

        return [Model(self.workspace, id=ref) for ref in self._service.config["models"]]

    @property
    def mlmagic(self) -> Service:
        """The mlmagic :class:`~mlmagic.deploy.service.Service` this is a view of."""
        return self._service

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, "
            f"state={self.state}, scoring_uri={self.scoring_uri})"
        )

    # -- deploying ------------------------------------------------------------------------

    def wait_for_deployment(
        self, show_output: bool = False, timeout_sec: float | None = None
    ) -> None:
        """Wait until the deployment Model.deploy started has ended; print its build and
        start output with ``show_output``.

        Raises
        ------
        WebserviceException
            The deployment failed (its reason and the server's last lines), or is not
            Healthy.
        """
        if self._deployment is not None:
            error = self._deployment.wait(show_output, timeout_sec)
            if error is not None:
                raise WebserviceException(str(error)) from error
        state = self.state
        if show_output:
            print(f"{self.name}: {state}, scoring URI {self.scoring_uri}")
        if state != "Healthy":
            raise WebserviceException(
                f"{self.name} is {state}, not Healthy: see service.get_logs(), fix score.py, "
                "then service.reload()."
            )

    def reload(self, wait: bool = False) -> None:
        """Rebuild from the entry script and its folder as they are now; restart."""
        self._call(self._service.reload)

    def update(
        self,
        models: Sequence[Any] | None = None,
        image_config: Any = None,
        deployment_config: DeploymentConfiguration | None = None,
        wait: bool = False,
        inference_config: InferenceConfig | None = None,
        **_ignored: Any,
    ) -> None:
        """Serve other models, code or environment; rebuild and restart.

        Raises
        ------
        WebserviceException
            ``deployment_config`` asks for another port (delete and deploy again), or
            the new deployment failed.
        """
        from mlmagic.azureml.core.model_deploy import _model_ref
        from mlmagic.deploy.registry import registry_password
        from mlmagic.events import drain

        changes: dict[str, Any] = {}
        if models is not None:
            changes["models"] = [_model_ref(m) for m in models]
        if deployment_config is not None and deployment_config.port not in (None, self.port):
            raise WebserviceException(
                f"{self.name} listens on {self.port}: a service keeps its port. Delete it and "
                f"deploy again to use {deployment_config.port}."
            )
        if inference_config is not None:
            entry, source, env, password = inference_config._resolve(self.workspace, self.name)
            if password is not None:
                with registry_password(env.spec.registry, password):
                    drain(self.workspace.mlmagic.environments.build(env), None)
            changes.update(entry_script=entry, source_dir=source, environment=env)
        self._call(self._service.update, **changes)

    # -- using it -------------------------------------------------------------------------

    def run(self, input_data: Any) -> Any:
        """Send ``input_data`` (a JSON string, as Azure takes it; other values are sent as
        JSON) to the service; return its decoded answer.

        Raises
        ------
        WebserviceException
            The service answered with an error (its message), or does not answer.
        """
        return self._call(self._service.run, input_data)

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        """What the server printed, its last ``num_lines`` lines."""
        return self._service.get_logs(num_lines)

    def get_keys(self) -> tuple[str, str]:
        """The primary and secondary keys of a service deployed with ``auth_enabled``."""
        return self._call(self._service.get_keys)  # type: ignore[no-any-return]

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """Replace the ``Primary`` or ``Secondary`` key."""
        if set_key is not None:
            raise WebserviceException("regen_key(set_key=...): keys are made here, not chosen.")
        self._call(self._service.regen_key, key)

    def delete(self) -> None:
        """Stop and remove the service."""
        self._call(self._service.delete)

    def serialize(self) -> dict[str, Any]:
        """The service as a dict: name, state, URIs, models, compute type."""
        return {
            "name": self.name,
            "state": self.state,
            "scoringUri": self.scoring_uri,
            "swaggerUri": self.swagger_uri,
            "models": list(self._service.config["models"]),
            "computeType": self.compute_type,
        }

    @staticmethod
    def list(
        workspace: Workspace, compute_type: str | None = None, **_ignored: Any
    ) -> list[Webservice]:
        """Every service of the workspace."""
        names = [record.name for record in workspace.mlmagic.store.services()]
        return [Webservice(workspace, name) for name in names]

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except WebserviceException:
            raise
        except MlmagicError as exc:
            raise WebserviceException(str(exc)) from exc


class LocalWebservice(Webservice):
    """A service on this machine (Azure's local deployment, here the only kind)."""

    @staticmethod
    def deploy_configuration(port: int | None = None, **_ignored: Any) -> DeploymentConfiguration:
        """Where it listens: ``port`` on 127.0.0.1 (``None``: a free one)."""
        return LocalWebserviceDeploymentConfiguration(port=port)


class AciWebservice(Webservice):
    """Azure Container Instances' service class; its services are local ones here."""

    @staticmethod
    def deploy_configuration(
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        auth_enabled: bool | None = None,
        **options: Any,
    ) -> DeploymentConfiguration:
        """Azure's arguments; cores, memory and key auth apply to the local service."""
        return AciServiceDeploymentConfiguration(
            cpu_cores=cpu_cores, memory_gb=memory_gb, auth_enabled=auth_enabled, **options
        )


class AksWebservice(Webservice):
    """Azure Kubernetes Service's service class; its services are local ones here."""

    @staticmethod
    def deploy_configuration(
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        gpu_cores: int | None = None,
        auth_enabled: bool | None = None,
        **options: Any,
    ) -> DeploymentConfiguration:
        """Azure's arguments; cores, memory, GPUs and key auth (on by default, as on AKS)
        apply to the local service."""
        return AksServiceDeploymentConfiguration(
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            gpu_cores=gpu_cores,
            auth_enabled=auth_enabled,
            **options,
        )
