"""Services: a model served from a labelled container (or process), found again by any
kernel.

:meth:`Services.deploy` is a generator of :class:`BuildEvent` (see :mod:`mlmagic.events`)
that returns the :class:`Service`; the steps themselves are in :mod:`.rollout`. A
service's record holds its :class:`~mlmagic.deploy.config.ServiceConfig` and the digests
of its keys (:mod:`.keys`), never the keys.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic.computes.docker_host import published_url
from mlmagic.deploy.config import ServiceConfig
from mlmagic.deploy.keys import KeyRing, check_key_name, digest
from mlmagic.deploy.rollout import check_entry, healthy, resolve_models, restart, rollout
from mlmagic.events import BuildEvent, drain
from mlmagic.exceptions import ConflictError, DeployError, NotFoundError
from mlmagic.records import KEY_NAMES, ServiceRecord
from mlmagic.run.config import parse_gpus
from mlmagic.summary import html_table

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.environment import Environment
    from mlmagic.models import Model
    from mlmagic.workspace import Workspace

__all__ = ["Service", "Services", "free_port"]


_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


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


def _live_state(ws: Workspace, record: ServiceRecord) -> str:
    """The state of a service, asked of its server now unless it is mid-rollout or failed."""
    if record.state in ("Transitioning", "Failed"):
        return record.state
    running = ws.target(record.target).state(record.handle) if record.handle else None
    if running is None:
        return "Failed"
    if not running.running:
        return "Failed" if running.exit_code else "Unhealthy"
    return "Healthy" if healthy(record.url) else "Unhealthy"


class Service:
    """A deployed model: its URL, state, logs, and calls to it.

    Raises
    ------
    NotFoundError
        No service has that name.
    """

    def __init__(self, workspace: Workspace, name: str) -> None:
        self._ws = workspace
        self.name = name
        self._record()

    def _record(self) -> ServiceRecord:
        record = self._ws.store.service(self.name)
        if record is None:
            raise NotFoundError(f"No service {self.name}.", hint=hints.LIST_SERVICES)
        return record

    @property
    def _keys(self) -> KeyRing:
        return self._ws.services.keys

    @property
    def config(self) -> dict[str, Any]:
        """What it serves and how, as a plain dict (a copy: changing it changes nothing;
        :meth:`update` does)."""
        return self._record().config.to_dict()

    @property
    def target(self) -> str:
        """Where it runs (``docker``: a container; ``local``: a process)."""
        return self._record().target

    @property
    def url(self) -> str:
        return self._record().url

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
        return _live_state(self._ws, self._record())

    def run(self, data: Any, *, key: str | None = None, timeout: float = 60) -> Any:
        """Send ``data`` as JSON to the service; return its decoded answer.

        Without ``key``, a key this process made is used. Raises :class:`DeployError`
        with the server's message for an error answer.
        """
        body = data if isinstance(data, (bytes, str)) else json.dumps(data)
        request = urllib.request.Request(
            self.scoring_uri,
            data=body.encode() if isinstance(body, str) else body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self._record().config.auth:
            known = self._keys.known(self.name)
            key = key or next((known[n] for n in KEY_NAMES if n in known), None)
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
        if not record.handle:
            return ""
        lines = self._ws.target(record.target).service_logs(self.name, record.handle)
        return "\n".join(lines[-num_lines:])

    def _check_auth(self) -> None:
        if not self._record().config.auth:
            raise DeployError(f"{self.name} was deployed without --auth: it takes no keys.")

    def get_keys(self) -> tuple[str, str]:
        """The primary and secondary keys, when this process made them."""
        self._check_auth()
        known = self._keys.known(self.name)
        if not all(n in known for n in KEY_NAMES):
            raise DeployError(
                "Keys are stored hashed and this process did not make both of them.",
                hint=hints.NEW_KEYS.format(name=self.name),
            )
        return known["Primary"], known["Secondary"]

    def regen_key(self, key: str = "Primary") -> tuple[str | None, str | None]:
        """Replace the primary (or secondary) key; restarts the server, no rebuild.

        Only the named key changes: the other one keeps working, whichever process
        made it. Returns the primary and secondary keys this process knows (``None``
        for one it did not make).
        """
        self._check_auth()
        check_key_name(key)
        made = self._keys.make(self.name, (key,))
        record = self._record()
        hashes = {**record.key_hashes, key: digest(made[key])}
        self._ws.store.update_service(self.name, key_hashes=hashes)
        drain(restart(self._ws, self.name))
        known = self._keys.known(self.name)
        return known.get("Primary"), known.get("Secondary")

    def reload(self) -> Service:
        """Rebuild the top layers from the entry script and source folder; restart."""
        drain(rollout(self._ws, self.name, self._record().config))
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
        changes: dict[str, Any] = {}
        if models is not None:
            changes["models"] = tuple(m.ref for m in resolve_models(self._ws, models))
        if environment is not None:
            changes["environment"] = self._ws.environments.resolve(environment).ref
        if source_dir is not None:
            changes["source_dir"] = str(Path(source_dir).resolve())
        if entry_script is not None:
            changes["entry_script"] = entry_script
        if workers is not None:
            changes["workers"] = workers
        config = replace(self._record().config, **changes)
        check_entry(config)
        drain(rollout(self._ws, self.name, config))
        return self

    def delete(self) -> None:
        """Stop and remove the server, what it ran from, and its record."""
        record = self._record()
        target = self._ws.target(record.target)
        if record.handle:
            target.stop_service(record.handle)
        if record.image:
            target.discard_service(self.name, record.image)
        self._ws.store.delete_service(self.name)
        self._keys.forget(self.name)

    def __repr__(self) -> str:
        record = self._record()
        return f"<Service {self.name} {record.state} {record.url}/score>"

    def _repr_html_(self) -> str:
        record = self._record()
        rows = [
            ("service", self.name),
            ("state", _live_state(self._ws, record)),
            ("scoring URI", f"{record.url}/score"),
            ("models", ", ".join(record.config.models)),
            ("environment", record.config.environment),
            ("entry script", record.config.entry_script),
            ("error", record.error),
        ]
        return html_table("Service", rows)


class Services:
    """The services of one workspace (``ws.services``).

    Attributes
    ----------
    keys
        The scoring keys this process made, per service.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self.keys = KeyRing()

    def get(self, name: str) -> Service:
        """A service by name; :class:`NotFoundError` when there is none."""
        return Service(self._ws, name)

    def rows(self) -> list[dict[str, Any]]:
        """One plain row per service (name, state checked now, URLs, models, environment,
        target, created, error), for the list and the REST API."""
        rows = []
        for record in self._ws.store.services():
            rows.append(
                {
                    "name": record.name,
                    "state": _live_state(self._ws, record),
                    "url": record.url,
                    "scoring_uri": f"{record.url}/score",
                    "models": ", ".join(record.config.models),
                    "environment": record.config.environment,
                    "target": record.target,
                    "created": record.created,
                    "error": record.error,
                }
            )
        return rows

    def list(self) -> pd.DataFrame:
        """name, state, URL, models, environment."""
        import pandas as pd

        columns = ["name", "state", "scoring_uri", "models", "environment"]
        return pd.DataFrame([{c: r[c] for c in columns} for r in self.rows()], columns=columns)

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
        compute: str | None = None,
        publish_host: str | None = None,
    ) -> Generator[BuildEvent, None, Service]:
        """Build what the service runs from, start it and wait until it is ready.

        ``compute`` deploys on that compute's Docker engine; on an ``ssh://`` one the
        server is published on the host's 127.0.0.1 only and this machine's ``port``
        (the service's URL) is forwarded there over SSH. ``publish_host`` instead
        publishes it on that address of the engine's host (``0.0.0.0``: every interface),
        at ``port`` there, reached directly (``http://ADDRESS:PORT``, or the engine's host
        name for every interface); it needs a remote engine (``host`` is this machine's).

        Raises
        ------
        ConflictError
            A service of that name exists.
        NotFoundError
            A model or the environment is not registered.
        DeployError
            Anything else about the request, the build or the start.
        """
        if not _NAME.fullmatch(name):
            raise DeployError(
                f"{name!r} is not a valid service name: use lowercase letters, digits and "
                "'-' (at most 63), starting with a letter or digit."
            )
        if self._ws.store.service(name) is not None:
            raise ConflictError(
                f"A service named {name} exists:", hint=hints.SERVICE_EXISTS.format(name=name)
            )
        if workers < 1:
            raise DeployError("--workers must be 1 or more.")
        parse_gpus(gpus or "none")
        env = self._ws.environments.resolve(environment)
        resolved = self._ws.resolve_target(target, compute)
        if publish_host is not None:
            if host is not None:
                raise DeployError(
                    "--host is this machine's address and --publish-host the engine host's: "
                    "give only --publish-host for a service on a remote engine."
                )
            port = port or free_port()  # checked by the engine there, not here
            on = self._ws.computes.get(compute) if compute is not None else None
            url = published_url(on, publish_host, port, name)
        host = host or self._ws.config.service_host
        if port is None:
            port = free_port(host)
        elif publish_host is None:
            _check_port(host, port)
        if publish_host is None:
            url = f"http://{host}:{port}"
        config = ServiceConfig(
            models=tuple(m.ref for m in resolve_models(self._ws, models)),
            entry_script=entry_script,
            source_dir=str(Path(source_dir or Path.cwd()).resolve()),
            environment=env.ref,
            port=port,
            host=host,
            workers=workers,
            auth=auth,
            gpus=gpus,
            memory=memory,
            cpus=cpus,
            target=resolved,
            publish_host=publish_host,
        )
        check_entry(config)
        key_hashes = {}
        if auth:
            key_hashes = {n: digest(k) for n, k in self.keys.make(name).items()}
        self._ws.store.insert_service(
            ServiceRecord(
                name=name,
                state="Transitioning",
                config=config,
                url=url,
                key_hashes=key_hashes,
            )
        )
        yield from rollout(self._ws, name, config)
        return Service(self._ws, name)
