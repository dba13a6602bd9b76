"""Which ``Host`` headers the server answers: a guard against DNS rebinding.

A web page can make the user's browser send requests to a loopback port, under a name the
page's own DNS resolves to 127.0.0.1; the request then carries that name in ``Host``. The
server answers only requests whose ``Host`` is an address it was published on.

The deployer sets :data:`ENV_ALLOWED_HOSTS` to a comma-separated list of ``host:port``
(that port only), ``host`` (any port) or ``*`` (any host). Unset or empty: the loopback
names ``127.0.0.1``, ``localhost`` and ``[::1]``, on any port.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ENV_ALLOWED_HOSTS", "LOOPBACK", "host_allowed", "parse_hosts", "request_host"]

ENV_ALLOWED_HOSTS = "MLMAGIC_ALLOWED_HOSTS"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")

#: One allowed address: a lower-case host (``*`` for any) and a port (``None`` for any).
Address = tuple[str, str | None]


def _split(value: str) -> Address:
    """``host[:port]`` into its parts; an IPv6 host keeps its brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value.partition("]")
        return host + "]", rest[1:] if rest.startswith(":") else None
    host, colon, port = value.partition(":")
    return host, port if colon else None


def parse_hosts(text: str) -> tuple[Address, ...]:
    """Read the value of :data:`ENV_ALLOWED_HOSTS`.

    Parameters
    ----------
    text
        Comma-separated ``host:port``, ``host`` or ``*``; blank: the loopback names.

    Returns
    -------
    tuple
        The allowed ``(host, port)`` pairs; ``None`` as a port allows any port.

    Raises
    ------
    ValueError
        When an entry has an empty host or a port that is not a number.
    """
    entries = [part for part in text.split(",") if part.strip()]
    if not entries:
        return tuple((host, None) for host in LOOPBACK)
    addresses = tuple(_split(entry) for entry in entries)
    for host, port in addresses:
        if not host or (port is not None and not port.isdigit()):
            raise ValueError(
                f"{ENV_ALLOWED_HOSTS} must be comma-separated host:port, host or *, not {text!r}."
            )
    return addresses


def request_host(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's ``Host`` header as text (empty when it has none)."""
    for name, value in headers:
        if name == b"host":
            return value.decode("latin-1")
    return ""


def host_allowed(host: str, allowed: tuple[Address, ...]) -> bool:
    """Whether a ``Host`` header names an allowed address.

    Parameters
    ----------
    host
        The header's value, from :func:`request_host`.
    allowed
        The allowed addresses, from :func:`parse_hosts`.

    Returns
    -------
    bool
        ``True`` when some entry matches its host (or is ``*``) and its port (or has none).
    """
    if not host:
        return False
    name, port = _split(host)
    return any(
        (entry == "*" or entry == name) and (wanted is None or wanted == port)
        for entry, wanted in allowed
    )
