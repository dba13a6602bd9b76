"""Docker engines elsewhere as computes: ``%compute attach gpu-box --docker ssh://me@host``.

A compute of kind ``docker`` records a Docker engine's address (``ssh://``, ``tcp://`` or
``unix://``) and, for ``tcp://``, the *paths* of its TLS files; never a secret's value.
SSH goes through the ``ssh`` command with the user's own agent and ``~/.ssh/config``, as
the docker CLI does (docker-py's ``use_ssh_client``), so a host alias, a jump host or a
key in the agent all work unchanged.

Whether the engine sees this machine's files is decided here, once, per compute
(:func:`shares_files`): a ``unix://`` socket of this machine does; ``ssh://`` and
``tcp://`` do not, unless the user said so at attach time (``--shared-path``: the
workspace has the same path on the engine's host, e.g. an NFS mount). The target chosen
for the compute (:func:`compute_target`) follows from that: the ordinary Docker target
with bind mounts, or :class:`~mlmagic.targets.remote_docker.RemoteDockerTarget`, which
copies files in and out through the engine's API.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlmagic.computes.record import Compute, check_compute_name
from mlmagic.exceptions import MlmagicError

if TYPE_CHECKING:
    from mlmagic.config import MLMagic
    from mlmagic.engine.endpoint import Endpoint
    from mlmagic.targets.base import Target

__all__ = [
    "KIND",
    "check_docker_address",
    "compute_target",
    "describe",
    "docker_compute",
    "endpoint",
    "published_url",
    "shares_files",
    "target_name",
]

#: The kind of a compute that is a Docker engine.
KIND = "docker"
_SCHEMES = ("ssh", "tcp", "unix")


def check_docker_address(address: str) -> str:
    """``address`` when it names a Docker engine (``ssh://[user@]host[:port]``,
    ``tcp://host:port`` or ``unix:///path``), else a one-line :class:`MlmagicError`."""
    text = str(address).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES:
        raise MlmagicError(
            f"--docker {address!r} is not a Docker engine's address: give ssh://user@host, "
            "tcp://host:2376 (with --tls-ca/--tls-cert/--tls-key) or unix:///path/docker.sock."
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise MlmagicError(f"--docker {address!r} names no socket: unix:///path/docker.sock.")
        return text
    if not parts.hostname:
        raise MlmagicError(f"--docker {address!r} names no host: {parts.scheme}://HOST.")
    try:
        port = parts.port
    except ValueError as exc:
        raise MlmagicError(f"--docker {address!r} has a port that is not a number.") from exc
    if parts.scheme == "tcp" and port is None:
        raise MlmagicError(f"--docker {address!r} needs its port: tcp://HOST:2376.")
    if parts.password:
        raise MlmagicError(
            f"--docker {parts.scheme}://{parts.hostname}: leave the password out of the "
            "address; SSH uses your agent and ~/.ssh/config, as the docker CLI does."
        )
    return text


def _tls_settings(
    address: str, ca: str | None, cert: str | None, key: str | None, verify: bool
) -> dict[str, Any]:
    """The TLS paths to store (absolute), each checked to exist now."""
    given = {"tls_ca": ca, "tls_cert": cert, "tls_key": key}
    if not any(given.values()):
        return {}
    if not address.startswith("tcp://"):
        raise MlmagicError(
            "--tls-ca/--tls-cert/--tls-key are for tcp:// engines; ssh:// is secured by SSH."
        )
    if bool(cert) != bool(key):
        raise MlmagicError("--tls-cert and --tls-key go together: give both, or neither.")
    settings: dict[str, Any] = {"tls_verify": verify}
    for name, value in given.items():
        if value:
            path = Path(value).expanduser().resolve()
            if not path.is_file():
                flag = "--" + name.replace("_", "-")
                raise MlmagicError(
                    f"{flag} {value}: no such file. Give the path of the engine's "
                    f"{name[4:]} file (PEM), e.g. ~/.docker/{name[4:]}.pem."
                )
            settings[name] = str(path)
    return settings


def docker_compute(
    name: str,
    address: str,
    *,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_verify: bool = True,
    shared_path: bool | None = None,
) -> Compute:
    """The record of a Docker engine attached as compute ``name`` (checked, not stored).

    ``shared_path``: whether the engine sees this machine's paths; ``None`` decides by
    the address (``unix://``: yes; ``ssh://``, ``tcp://``: no).

    Raises
    ------
    MlmagicError
        The name, the address or a TLS file is wrong (one line saying which).
    """
    address = check_docker_address(address)
    extra: dict[str, Any] = _tls_settings(address, tls_ca, tls_cert, tls_key, tls_verify)
    # This machine's own socket sees this machine's files; nothing else does unless told.
    shared = address.startswith("unix://") if shared_path is None else shared_path
    extra["shares_files"] = bool(shared)
    return Compute(
        name=check_compute_name(name), kind=KIND, address=address, created=time.time(), extra=extra
    )


def shares_files(compute: Compute) -> bool:
    """Whether the compute's engine sees this machine's paths (bind mounts work)."""
    return bool(compute.extra.get("shares_files"))


def endpoint(compute: Compute) -> Endpoint:
    """The engine address of a ``docker`` compute, with its TLS settings.

    Raises
    ------
    EngineError
        A TLS file recorded at attach time is gone.
    """
    from mlmagic.engine.endpoint import explicit_endpoint

    extra = compute.extra
    return explicit_endpoint(
        compute.address,
        f"the compute '{compute.name}'",
        tls_ca=extra.get("tls_ca"),
        tls_cert=extra.get("tls_cert"),
        tls_key=extra.get("tls_key"),
        tls_verify=extra.get("tls_verify"),
    )


def describe(compute: Compute, config: MLMagic) -> dict[str, Any]:
    """Ask the compute's engine now: its row of ``%computes`` (``nodes``, ``CPUs``,
    ``GPUs``: ``None`` where the engine does not say).

    Raises
    ------
    EngineError
        The engine does not answer (why, in one line).
    """
    from mlmagic.engine.docker import DockerEngine

    DockerEngine(cli=config.docker_cli, endpoint=endpoint(compute)).ping()
    return {"nodes": 1, "CPUs": None, "GPUs": None}


def target_name(compute: Compute) -> str:
    """The target name runs and services of ``compute`` record (``docker@NAME`` for an
    engine, the compute's kind otherwise), which :func:`compute_target` turns back into a
    target."""
    return f"{KIND}@{compute.name}" if compute.kind == KIND else compute.kind


def compute_target(compute: Compute, root: Path, config: MLMagic) -> Target:
    """The target that builds and runs on a ``docker`` compute's engine: the Docker target
    itself when the engine shares this machine's files, else the one that copies them."""
    from mlmagic.engine.docker import DockerEngine
    from mlmagic.targets.base import TargetContext
    from mlmagic.targets.docker import DockerTarget
    from mlmagic.targets.remote_docker import RemoteDockerTarget

    engine = DockerEngine(cli=config.docker_cli, endpoint=endpoint(compute))
    context = TargetContext(root=root, config=config, engine=engine)
    if shares_files(compute):
        return DockerTarget(context)
    return RemoteDockerTarget(context, compute.address)


def published_url(compute: Compute | None, publish_host: str, port: int, service: str) -> str:
    """The URL of a service published on ``publish_host:port`` of the compute's engine
    host (``docker -p HOST_IP:PORT:...``), with no SSH forward; says once on stderr that
    the network reaches it.

    A specific address is the URL's host; ``0.0.0.0`` or ``::`` (every interface) gives the
    host name of the engine's address.

    Raises
    ------
    MlmagicError
        ``publish_host`` is not an IP address, or there is no remote engine to publish on
        (no compute, or one on this machine's socket: ``--host`` is for this machine).
    """
    try:
        address = ipaddress.ip_address(publish_host)
    except ValueError:
        raise MlmagicError(
            f"--publish-host {publish_host!r} is not an IP address: give one of the engine "
            "host's addresses, or 0.0.0.0 for all of its interfaces."
        ) from None
    if compute is None or compute.kind != KIND or compute.address.startswith("unix://"):
        raise MlmagicError(
            "--publish-host is for a service on another host's Docker engine (--compute "
            "NAME); on this machine, publish on an interface with --host ADDRESS."
        )
    where = urlsplit(compute.address).hostname if address.is_unspecified else str(address)
    shown = f"[{where}]" if where and ":" in where else where
    print(
        f"mlmagic: {service} is published on {publish_host}:{port} of {compute.name}'s host, "
        "so the network reaches it: add --auth to require a key.",
        file=sys.stderr,
    )
    return f"http://{shown}:{port}"
