"""Services: a model served from a labelled container, found again by any kernel.

:meth:`Services.deploy` is a generator of :class:`BuildEvent` (the inference image's
build, then the steps "starting the container" and "waiting for init()") that returns the
:class:`Service`. A service's container carries the workspace's labels, so a new kernel
finds it; its record holds the configuration and the hashes of its keys, never the keys.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import re
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic.deploy.backends import ServiceBackend, backend_for
from mlmagic.events import BuildEvent, BuildEventKind, drain
from mlmagic.exceptions import DeployError, MlmagicError
from mlmagic.run.config import parse_gpus
from mlmagic.run.snapshot import ignored_by
from mlmagic.summary import html_table

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.workspace import Workspace

__all__ = ["Service", "Services"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Keys live only in the process that made them; the store keeps their hashes.
_KEYS: dict[tuple[str, str], list[str]] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DeployError(
                f"Port {port} on {host} is taken: choose another with --port, or leave it out "
                "to pick a free one."
            ) from exc


class Service:
    """A deployed model: its URL, state, logs, and calls to it."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        self._ws = workspace
        self.name = name
        if self._record() is None:
            raise DeployError(f"No service {name}.", hint=hints.LIST_SERVICES)

    def _record(self) -> dict[str, Any]:
        return self._ws.store.service(self.name)  # type: ignore[return-value]

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._record()["config"])

    @property
    def target(self) -> str:
        """``docker`` (a container) or ``local`` (a process)."""
        return str(self.config.get("target", "docker"))

    def _backend(self) -> ServiceBackend:
        return backend_for(self._ws, self.target)

    @property
    def url(self) -> str:
        return str(self._record()["url"])

    @property
    def scoring_uri(self) -> str:
        """Where to POST requests."""
        return f"{self.url}/score"

    @property
    def swagger_uri(self) -> str:
        return f"{self.url}/swagger.json"

    @property
    def state(self) -> str:
        """Transitioning, Healthy, Unhealthy or Failed, checked now."""
        record = self._record()
        if record["state"] in ("Transitioning", "Failed"):
            return str(record["state"])
        container = self._backend().state(record["handle"]) if record["handle"] else None
        if container is None:
            return "Failed"
        if not container.running:
            return "Failed" if container.exit_code else "Unhealthy"
        return "Healthy" if self._healthy() else "Unhealthy"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/", timeout=5) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def run(self, data: Any, *, key: str | None = None, timeout: float = 60) -> Any:
        """Send ``data`` as JSON to the service; return its decoded answer.

        Raises :class:`DeployError` with the server's message for an error answer.
        """
        body = data if isinstance(data, (bytes, str)) else json.dumps(data)
        request = urllib.request.Request(
            self.scoring_uri,
            data=body.encode() if isinstance(body, str) else body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self.config.get("auth"):
            key = key or next(iter(_KEYS.get((str(self._ws.root), self.name), [])), None)
            if key is None:
                raise DeployError(
                    f"{self.name} needs a key: pass run(data, key=...), or svc.regen_key() "
                    "for a new one (keys are stored hashed, so a new kernel cannot read them)."
                )
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("error", detail)
            raise DeployError(f"{self.name} answered {exc.code}: {detail}") from exc
        except OSError as exc:
            raise DeployError(
                f"{self.name} does not answer at {self.scoring_uri} ({exc}); its state is "
                f"{self.state}: see svc.get_logs()."
            ) from exc
        try:
            return json.loads(payload)
        except ValueError:
            return payload

    def get_logs(self, num_lines: int = 5000) -> str:
        """The last ``num_lines`` lines the service printed (also after it died)."""
        record = self._record()
        if not record["handle"]:
            return ""
        lines = self._backend().logs(self._ws, self.name, record["handle"])
        return "\n".join(lines[-num_lines:])

    def get_keys(self) -> tuple[str, str]:
        """The primary and secondary keys, when this process made them."""
        keys = _KEYS.get((str(self._ws.root), self.name))
        if not self.config.get("auth"):
            raise DeployError(f"{self.name} was deployed without --auth: it takes no keys.")
        if not keys:
            raise DeployError(
                "Keys are stored hashed and this process did not make them.",
                hint=hints.NEW_KEYS.format(name=self.name),
            )
        return keys[0], keys[1]

    def regen_key(self, key: str = "Primary") -> tuple[str, str]:
        """Make a new primary (or secondary) key; restarts the container, no rebuild."""
        if not self.config.get("auth"):
            raise DeployError(f"{self.name} was deployed without --auth: it takes no keys.")
        if key not in ("Primary", "Secondary"):
            raise DeployError("key must be 'Primary' or 'Secondary'.")
        cache = (str(self._ws.root), self.name)
        keys = list(_KEYS.get(cache) or [secrets.token_urlsafe(32), secrets.token_urlsafe(32)])
        keys[0 if key == "Primary" else 1] = secrets.token_urlsafe(32)
        _KEYS[cache] = keys
        self._ws.store.update_service(self.name, key_hashes=[_digest(k) for k in keys])
        drain(self._ws.services._start(self.name))
        return keys[0], keys[1]

    def reload(self) -> Service:
        """Rebuild the top layers from the entry script and source folder; restart."""
        drain(self._ws.services._rollout(self.name, self.config))
        return self

    def update(
        self,
        *,
        models: Sequence[str | Model] | None = None,
        entry_script: str | None = None,
        source_dir: str | Path | None = None,
        environment: str | Environment | None = None,
        workers: int | None = None,
    ) -> Service:
        """Change the models, code, environment or workers; rebuild and restart."""
        services = self._ws.services
        config = self.config
        if models is not None:
            config["models"] = [m.ref for m in services._models(models)]
        if environment is not None:
            config["environment"] = self._ws.environments.resolve(environment).ref
        if source_dir is not None:
            config["source_dir"] = str(Path(source_dir).resolve())
        if entry_script is not None:
            config["entry_script"] = entry_script
        if workers is not None:
            config["workers"] = workers
        services._check_entry(config)
        drain(services._rollout(self.name, config))
        return self

    def delete(self) -> None:
        """Stop and remove the container, its image and its record."""
        record = self._record()
        backend = self._backend()
        if record["handle"]:
            backend.stop(record["handle"])
        if record["image"]:
            backend.discard(self._ws, self.name, record["image"])
        self._ws.store.delete_service(self.name)
        _KEYS.pop((str(self._ws.root), self.name), None)

    def __repr__(self) -> str:
        record = self._record()
        return f"<Service {self.name} {record['state']} {record['url']}/score>"

    def _repr_html_(self) -> str:
        record = self._record()
        rows = [
            ("service", self.name),
            ("state", self.state),
            ("scoring URI", self.scoring_uri),
            ("models", ", ".join(record["config"]["models"])),
            ("environment", record["config"]["environment"]),
            ("entry script", record["config"]["entry_script"]),
            ("error", record["error"]),
        ]
        return html_table("Service", rows)


class Services:
    """The services of one workspace (``ws.services``)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def get(self, name: str) -> Service:
        """A service by name."""
        return Service(self._ws, name)

    def list(self) -> pd.DataFrame:
        """name, state, URL, models, environment."""
        import pandas as pd

        rows = []
        for record in self._ws.store.services():
            service = Service(self._ws, record["name"])
            config = service.config
            rows.append(
                {
                    "name": service.name,
                    "state": service.state,
                    "scoring_uri": service.scoring_uri,
                    "models": ", ".join(config["models"]),
                    "environment": config["environment"],
                }
            )
        return pd.DataFrame(rows, columns=["name", "state", "scoring_uri", "models", "environment"])

    def deploy(
        self,
        name: str,
        *,
        models: Sequence[str | Model],
        entry_script: str,
        environment: str | Environment,
        source_dir: str | Path | None = None,
        port: int | None = None,
        host: str | None = None,
        workers: int = 1,
        auth: bool = False,
        gpus: str | None = None,
        memory: str | None = None,
        cpus: float | None = None,
        target: str | None = None,
    ) -> Generator[BuildEvent, None, Service]:
        """Build the inference image, start the service and wait until it is healthy."""
        if not _NAME.match(name):
            raise DeployError(
                f"{name!r} is not a valid service name: use lowercase letters, digits and "
                "'-' (at most 63), starting with a letter or digit."
            )
        if self._ws.store.service(name) is not None:
            raise DeployError(
                f"A service named {name} exists:", hint=hints.SERVICE_EXISTS.format(name=name)
            )
        if workers < 1:
            raise DeployError("--workers must be 1 or more.")
        parse_gpus(gpus or "none")
        env = self._ws.environments.resolve(environment)
        host = host or self._ws.config.service_host
        if port is None:
            port = free_port(host)
        else:
            _check_port(host, port)
        config = {
            "models": [m.ref for m in self._models(models)],
            "entry_script": entry_script,
            "source_dir": str(Path(source_dir or Path.cwd()).resolve()),
            "environment": env.ref,
            "port": port,
            "host": host,
            "workers": workers,
            "auth": auth,
            "gpus": gpus,
            "memory": memory,
            "cpus": cpus,
            "target": self._ws.resolve_target(target),
        }
        self._check_entry(config)
        key_hashes: list[str] = []
        if auth:
            keys = [secrets.token_urlsafe(32), secrets.token_urlsafe(32)]
            _KEYS[(str(self._ws.root), name)] = keys
            key_hashes = [_digest(k) for k in keys]
        self._ws.store.insert_service(
            name,
            {
                "state": "Transitioning",
                "config": config,
                "url": f"http://{host}:{port}",
                "key_hashes": key_hashes,
            },
        )
        yield from self._rollout(name, config)
        return Service(self._ws, name)

    # -- internals shared by deploy, reload and update ----------------------------------

    def _models(self, refs: Sequence[str | Model]) -> builtins.list[Model]:
        if not refs:
            raise DeployError("Give at least one model: --model NAME[:VERSION].")
        try:
            return [self._ws.models.resolve(r) for r in refs]
        except MlmagicError as exc:
            raise DeployError(*exc.args, hint=exc.hint) from exc

    @staticmethod
    def _check_entry(config: dict[str, Any]) -> None:
        source = Path(config["source_dir"])
        entry = config["entry_script"]
        if not (source / entry).is_file():
            raise DeployError(
                f"No entry script {entry} in {source}: check --entry, or pass --source-dir "
                "with the folder that holds it."
            )
        rules = ignored_by(source, entry)
        if rules is not None:
            raise DeployError(
                f"{entry} is left out of the copy of {source} by {rules.name}: change that "
                "file, or add a .mlignore (used instead of .amlignore and .gitignore)."
            )

    def _update(self, name: str, **values: Any) -> None:
        self._ws.store.update_service(name, **values)

    def _rollout(self, name: str, config: dict[str, Any]) -> Generator[BuildEvent, None, None]:
        """Build what ``config`` needs and (re)start the server with it."""
        self._update(name, state="Transitioning", config=config, error=None)
        target = config.get("target", "docker")
        env = self._ws.environments.resolve(config["environment"])
        models = self._models(config["models"])
        backend = backend_for(self._ws, target)
        try:
            built = yield from self._ws.environments.build(env, target=target)
            artefact = yield from backend.build(self._ws, name, config, built, models)
        except MlmagicError as exc:
            self._update(name, state="Failed", error=str(exc))
            raise
        previous = Service(self._ws, name)._record()["image"]
        self._update(name, image=artefact)
        yield from self._start(name)
        if previous and previous != artefact:
            backend.discard(self._ws, name, previous)

    def _start(self, name: str) -> Generator[BuildEvent, None, None]:
        """Replace the server with a fresh one; wait until it is healthy."""
        service = Service(self._ws, name)
        backend = service._backend()
        record = service._record()
        if record["handle"]:
            backend.stop(record["handle"])
        yield BuildEvent(BuildEventKind.STEP, step="starting the server")
        try:
            handle = backend.start(self._ws, name, record)
        except MlmagicError as exc:
            self._update(name, state="Failed", error=str(exc))
            raise DeployError(str(exc)) from exc
        self._update(name, handle=handle)
        yield BuildEvent(BuildEventKind.STEP, step="waiting for init()")
        yield from self._wait_healthy(service, backend, handle)

    def _wait_healthy(
        self, service: Service, backend: ServiceBackend, handle: str
    ) -> Generator[BuildEvent, None, None]:
        deadline = time.monotonic() + self._ws.config.health_timeout
        shown = 0
        while True:
            lines = backend.logs(self._ws, service.name, handle)
            for line in lines[shown:]:
                yield BuildEvent(BuildEventKind.LOG, message=line, step="waiting for init()")
            shown = len(lines)
            if service._healthy():
                self._update(service.name, state="Healthy")
                yield BuildEvent(BuildEventKind.DONE, image=service.url)
                return
            state = backend.state(handle)
            if state is None or not state.running:
                time.sleep(0.2)  # let the last lines reach the log
                lines = backend.logs(self._ws, service.name, handle)
                tail = "\n".join(lines[-15:])
                code = state.exit_code if state and state.exit_code is not None else "?"
                error = f"{service.name} stopped while starting (exit {code})"
                self._update(service.name, state="Failed", error=f"{error}\n{tail}")
                raise DeployError(
                    f"{error}.\nIts last lines:\n{tail}",
                    hint=hints.RELOAD_SERVICE.format(name=service.name),
                )
            if time.monotonic() > deadline:
                self._update(service.name, state="Unhealthy", error="no answer to its health check")
                raise DeployError(
                    f"{service.name} did not become healthy in "
                    f"{self._ws.config.health_timeout:g} s.",
                    hint=hints.SERVICE_LOGS.format(name=service.name),
                )
            time.sleep(0.2)
