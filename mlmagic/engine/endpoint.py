"""Which Docker engine to talk to, and why: the docker CLI's own rules, said in words.

Docker Desktop, colima and rootless Docker select their engine with ``docker context use``,
not with ``DOCKER_HOST``. docker-py's ``from_env`` reads ``DOCKER_HOST`` only, so without
this module a build (made by the docker CLI, which follows the context) and the run of its
image (made through docker-py) could reach two different engines. The CLI's order is:

1. ``DOCKER_HOST``, when set;
2. the context named by ``DOCKER_CONTEXT``;
3. the ``currentContext`` of ``config.json`` in ``DOCKER_CONFIG`` (default ``~/.docker``);
4. the default socket, ``unix:///var/run/docker.sock``.

A context is read from the CLI's own store (``contexts/meta/<sha256 of name>/meta.json``,
TLS files under ``contexts/tls/<sha256 of name>/docker/``). :attr:`Endpoint.source` names
the rule that chose the engine, so an engine that does not answer can be reported with
where that choice came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import docker.tls

from mlmagic.exceptions import EngineError

__all__ = ["DEFAULT_HOST", "Endpoint", "explicit_endpoint", "find_endpoint"]

# An API version every engine answers, to make a client before it asks the engine's own.
_FIRST_API_VERSION = "1.24"

#: Where the engine listens when nothing else is said (Linux and Docker Desktop both).
DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Endpoint:
    """A Docker engine's address and the rule that chose it.

    Attributes
    ----------
    host
        The engine's address (``unix://``, ``tcp://``, ``ssh://`` or ``npipe://``).
    source
        Where the choice came from, in words, e.g. ``"set by DOCKER_HOST"`` or
        ``"the Docker context 'colima', current in /home/me/.docker/config.json"``.
    context
        The context's name when a context chose the engine, else ``None``.
    tls
        The TLS settings of a context with TLS files or ``SkipTLSVerify`` (or of a
        compute), else ``None``.
    explicit
        The address and TLS settings are used as given (a compute's engine), never the
        process's ``DOCKER_*`` variables.
    """

    host: str
    source: str
    context: str | None = None
    tls: docker.tls.TLSConfig | None = None
    explicit: bool = False

    def describe(self) -> str:
        """``"<host> (<source>)"``: for messages about this engine."""
        return f"{self.host} ({self.source})"

    def client(self, timeout: int = 120) -> docker.DockerClient:
        """A docker-py client of this engine (it does not connect until first used)."""
        if self.context is None and not self.explicit:
            # DOCKER_HOST or the default: docker-py's own reading of DOCKER_TLS_VERIFY and
            # DOCKER_CERT_PATH applies, exactly as for the docker CLI.
            return docker.from_env(timeout=timeout)
        if self.explicit and self.tls is not None and self.tls.ca_cert:
            return _client_trusting_only(self.host, self.tls, timeout)
        return docker.DockerClient(
            base_url=self.host,
            tls=self.tls or False,
            timeout=timeout,
            # The ssh command, as the docker CLI uses, rather than paramiko.
            use_ssh_client=self.host.startswith("ssh://"),
        )

    def cli_flags(self) -> list[str]:
        """The docker CLI's global flags that reach this same engine (``[]``: the CLI's
        own choice, which is this one)."""
        if self.context is not None:
            return ["--context", self.context]
        if not self.explicit:
            return []
        flags = ["--host", self.host]
        if self.tls is not None:
            flags.append("--tlsverify" if self.tls.verify else "--tls")
            if isinstance(self.tls.ca_cert, str):
                flags += ["--tlscacert", self.tls.ca_cert]
            if self.tls.cert:
                flags += ["--tlscert", self.tls.cert[0], "--tlskey", self.tls.cert[1]]
        return flags


def _client_trusting_only(
    host: str, tls: docker.tls.TLSConfig, timeout: int
) -> docker.DockerClient:
    """A client that checks the engine's certificate against the compute's CA only.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (set on many machines behind
    a TLS-intercepting proxy) replace a session's own CA file on every request, so the
    engine's private CA would be ignored: the session stops reading the environment, and
    the engine's API version is asked only after that (docker-py asks while it is made).
    """
    client = docker.DockerClient(
        base_url=host, tls=tls, timeout=timeout, version=_FIRST_API_VERSION
    )
    client.api.trust_env = False
    client.api._version = client.api._retrieve_server_version()
    return client


def explicit_endpoint(
    host: str,
    source: str,
    *,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_verify: bool | None = None,
) -> Endpoint:
    """The engine at ``host`` as given (a compute's), TLS on when ``tls_verify`` is not
    ``None``.

    Raises
    ------
    EngineError
        A TLS file is missing (one line naming it).
    """
    tls = None
    if tls_verify is not None:
        cert = (tls_cert, tls_key) if tls_cert and tls_key else None
        try:
            tls = docker.tls.TLSConfig(client_cert=cert, ca_cert=tls_ca, verify=tls_verify)
        except docker.errors.TLSParameterError as exc:
            missing = [p for p in (tls_ca, tls_cert, tls_key) if p and not Path(p).is_file()]
            raise EngineError(
                f"The TLS files of {source} are missing ({', '.join(missing) or exc}): put "
                "them back, or attach it again with the right --tls-ca/--tls-cert/--tls-key."
            ) from exc
    return Endpoint(host, source, tls=tls, explicit=True)


def find_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the docker CLI would use with ``environ`` (default ``os.environ``).

    Raises
    ------
    EngineError
        The context asked for does not exist or its description cannot be read.
    """
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return Endpoint(env["DOCKER_HOST"], "set by DOCKER_HOST")
    config_dir = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker").expanduser()
    name = env.get("DOCKER_CONTEXT")
    chooser = "named by DOCKER_CONTEXT"
    if not name:
        name = _current_context(config_dir / "config.json")
        chooser = f"current in {config_dir / 'config.json'}"
    if not name or name == "default":
        source = "the default socket: no DOCKER_HOST, and no Docker context in use"
        if name == "default":
            source = f"the Docker context 'default', {chooser}"
        return Endpoint(DEFAULT_HOST, source)
    return _load_context(config_dir, name, chooser)


def _current_context(config_file: Path) -> str | None:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EngineError(
            f"The Docker client settings {config_file} cannot be read ({exc}): fix or remove "
            "the file, or set DOCKER_HOST."
        ) from exc
    current = data.get("currentContext") if isinstance(data, dict) else None
    return current if isinstance(current, str) and current else None


def _load_context(config_dir: Path, name: str, chooser: str) -> Endpoint:
    source = f"the Docker context '{name}', {chooser}"
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_file = config_dir / "contexts" / "meta" / digest / "meta.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        docker_endpoint = meta["Endpoints"]["docker"]
        host = str(docker_endpoint["Host"])
    except FileNotFoundError as exc:
        raise EngineError(
            f"The Docker context '{name}' ({chooser}) does not exist in {config_dir}: "
            "pick one of `docker context ls` with `docker context use NAME`, or set DOCKER_HOST."
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(
            f"The Docker context '{name}' ({chooser}) cannot be read from {meta_file} ({exc}): "
            "recreate it with `docker context create`, or set DOCKER_HOST."
        ) from exc
    tls_dir = config_dir / "contexts" / "tls" / digest / "docker"
    files = {f: tls_dir / f"{f}.pem" for f in ("ca", "cert", "key")}
    skip_verify = bool(docker_endpoint.get("SkipTLSVerify"))
    tls = None
    if any(p.exists() for p in files.values()) or skip_verify:
        cert = (str(files["cert"]), str(files["key"])) if files["cert"].exists() else None
        ca = str(files["ca"]) if files["ca"].exists() else None
        tls = docker.tls.TLSConfig(client_cert=cert, ca_cert=ca, verify=not skip_verify)
    return Endpoint(host, source, context=name, tls=tls)
