"""Uvicorn's HTTP protocols, with a deadline for each request's head.

Uvicorn closes a keep-alive connection that stays idle, but it waits without end for the
request line and headers of a connection that sends them slowly, one byte at a time, or
opens and sends nothing: a few hundred such connections are held open for as long as their
clients like. These subclasses close a connection whose request head has not fully arrived
:data:`ENV_HEADER_TIMEOUT` seconds after it opened or after its previous answer.

They rely on two attributes that both uvicorn protocols have had since before 0.30: the
``cycle`` of the current request, replaced when a new request's head is complete, and
``on_response_complete()``, called when an answer has been sent. This module imports
uvicorn: only :mod:`.__main__` imports it, once uvicorn is known to be installed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import DEFAULT_HEADER_TIMEOUT, ENV_HEADER_TIMEOUT, positive_seconds

__all__ = ["H11WithDeadline", "protocol_class"]


class _HeadDeadline(asyncio.Protocol):
    """Closes the connection when a request head is overdue (a mixin for uvicorn's)."""

    # Set by uvicorn's protocol classes, which come after this one in the MRO.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        seconds = positive_seconds(ENV_HEADER_TIMEOUT, DEFAULT_HEADER_TIMEOUT)
        self._head_deadline = self.loop.call_later(seconds, self._head_overdue, self.cycle)

    def _head_overdue(self, cycle: Any) -> None:
        # The same cycle as when the wait began: no new request head has completed since.
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()


class H11WithDeadline(_HeadDeadline, H11Protocol):
    """Uvicorn's ``h11`` protocol, with the head deadline."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: __main__ then chooses h11
    pass
else:

    class HttpToolsWithDeadline(_HeadDeadline, HttpToolsProtocol):
        """Uvicorn's ``httptools`` protocol, with the head deadline."""


def protocol_class(http: str) -> type[asyncio.Protocol]:
    """The protocol class for an ``--http`` choice (``h11`` or ``httptools``).

    Parameters
    ----------
    http
        The HTTP implementation's name, as uvicorn's ``http`` setting names it.

    Returns
    -------
    type
        A module-level class, so that uvicorn can hand it to worker processes by name.
    """
    if http == "httptools":
        return HttpToolsWithDeadline
    return H11WithDeadline
