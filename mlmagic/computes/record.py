"""A compute: a named Ray cluster or Docker engine that runs can be sent to, as the
workspace stores it.

A Ray compute is either *attached* (a cluster someone else runs: its Jobs API address) or
*made* by ``%compute up`` (containers of an environment's image on this engine); a Docker
one is an attached engine (:mod:`.docker_host`). Either way the record holds where to
reach it and how to authenticate, but never a token or a key: only the name of the
environment variable that holds one (``token_env``), for a made cluster the file in the
workspace mlmagic wrote it to (``token_file``, mode 0600), or a TLS file's path.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlmagic.exceptions import MlmagicError

__all__ = ["Compute", "check_address", "check_compute_name", "check_token_env"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_compute_name(name: str) -> str:
    """``name`` when it can name a compute, else a one-line :class:`MlmagicError`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MlmagicError(
            f"{name!r} is not a valid compute name: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit (at most 63 characters)."
        )
    return name


def check_address(address: str) -> str:
    """The Jobs API address ``http(s)://host:port`` without a trailing slash.

    Raises
    ------
    MlmagicError
        It is not an http(s) URL with a host (``ray://`` client addresses are not the
        Jobs API).
    """
    text = str(address).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MlmagicError(
            f"--ray {address!r} is not a Ray Jobs API address: give the dashboard's URL, "
            "e.g. http://ray-head:8265 (not ray://...:10001, which is Ray Client's)."
        )
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise MlmagicError(f"--ray {address!r} has a port that is not a number.") from exc
    return text


def check_token_env(name: str | None) -> str | None:
    """``name`` when it can name an environment variable (or ``None``)."""
    if name is None:
        return None
    if not _VARIABLE.fullmatch(name):
        raise MlmagicError(
            f"--token-env {name!r} is not an environment variable's name: give the NAME of "
            "the variable that holds the token (e.g. RAY_TOKEN), never the token itself."
        )
    return name


@dataclass(frozen=True)
class Compute:
    """A compute as stored in the workspace.

    Attributes
    ----------
    name
        What runs name with ``--compute``.
    kind
        ``ray`` or ``docker`` (:data:`.docker_host.KIND`).
    address
        A Ray cluster's Jobs API (dashboard) URL, e.g. ``http://127.0.0.1:8265``; a Docker
        engine's ``ssh://``, ``tcp://`` or ``unix://`` address.
    token_env
        The environment variable that holds the cluster's token, if it asks for one.
    token_file
        For a cluster made by ``%compute up``: the workspace file that holds its token.
    storage
        A folder both the cluster and this machine see: a run's ``./outputs`` come back
        through it. ``None``: outputs stay on the cluster.
    cluster_storage
        The same folder as the cluster's nodes see it (a made cluster mounts
        ``storage`` there); ``None`` when it is the same path.
    python
        The interpreter the launcher runs with, by absolute path (``python`` on an
        attached cluster: whatever its runtime environment puts on PATH).
    environment
        The environment ``name:version`` the nodes run (a made cluster's image is made
        from it; an attached one says so with ``--env``); ``None``: runs install their
        packages per job.
    env_image
        That environment's own image: a run's environment must be built as it to run
        there.
    image
        For a made cluster: its image (the environment's, with Ray added).
    network
        For a made cluster: the engine network of its containers.
    workers
        For a made cluster: how many worker containers it has.
    notebooks
        For a made cluster: its image has what runs a notebook (the notebook layer;
        ``False`` for one made before mlmagic added it).
    created
        When it was attached or made (seconds since 1970).
    extra
        Settings of a Docker engine (its TLS files' paths, whether it shares this
        machine's files).
    """

    name: str
    kind: str
    address: str
    token_env: str | None = None
    token_file: str | None = None
    storage: str | None = None
    cluster_storage: str | None = None
    python: str = "python"
    environment: str | None = None
    env_image: str | None = None
    image: str | None = None
    network: str | None = None
    workers: int = 0
    notebooks: bool = False
    created: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def made(self) -> bool:
        """Whether mlmagic started this cluster (``%compute up``)."""
        return self.network is not None

    def token(self) -> str | None:
        """The token to send, read now from where the record says it is; ``None`` when
        the cluster asks for none.

        Raises
        ------
        MlmagicError
            The variable is unset or empty, or the token file cannot be read.
        """
        if self.token_env:
            value = os.environ.get(self.token_env, "").strip()
            if not value:
                raise MlmagicError(
                    f"The compute {self.name!r} takes its token from ${self.token_env}, which "
                    f"is not set in this process: set it (e.g. %env {self.token_env}=...) "
                    "and try again."
                )
            return value
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise MlmagicError(
                    f"The token of the compute {self.name!r} ({self.token_file}) cannot be "
                    f"read: {exc.strerror}. Start it again with %compute up."
                ) from exc
        return None

    def options(self) -> dict[str, Any]:
        """What the store keeps as JSON (everything but name, kind, address, created)."""
        data = asdict(self)
        for key in ("name", "kind", "address", "created"):
            data.pop(key)
        return data

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Compute:
        """The compute of a store row."""
        options = dict(row.get("options") or {})
        # Keys a newer mlmagic wrote and this one does not know are left out.
        known = set(cls.__dataclass_fields__) - {"name", "kind", "address", "created"}
        return cls(
            name=row["name"],
            kind=row["kind"],
            address=row["address"],
            created=row["created"],
            **{k: v for k, v in options.items() if k in known},
        )
