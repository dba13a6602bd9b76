"""Reading request bodies within a worker's bounds: size, bytes buffered at once, time.

A body is refused with 413 when it is larger than the limit (known from
``Content-Length`` before anything is read, or while a chunked body arrives), with 503
when the bodies the worker already holds leave no room for it, and with 408 when it does
not arrive in time. Refusals are :class:`BodyRefused` exceptions, which the app turns into
answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["BUFFERED_BODIES", "BodyReader", "BodyRefused"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

#: The body bytes one worker buffers at once, in bodies of the largest size: many small
#: requests may be in flight, but only a few of the largest.
BUFFERED_BODIES = 4


class BodyRefused(Exception):
    """A body the server will not take; ``str()`` says why, in the client's terms.

    Parameters
    ----------
    status
        The HTTP status of the answer (400, 408, 413 or 503).
    message
        What went wrong and what to do.
    retry
        Whether the client may send it again in a moment (``Retry-After``).
    close
        Whether the connection must be closed after the answer (its body is half read).
    """

    def __init__(self, status: int, message: str, *, retry: bool = False, close: bool = False):
        super().__init__(message)
        self.status = status
        self.retry = retry
        self.close = close


class _Held:
    """The bytes one request counts against its worker's budget."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0


class BodyReader:
    """Reads the bodies of one worker's requests, counting what they hold together.

    Parameters
    ----------
    max_bytes
        The largest body taken.
    timeout
        Seconds a body may take to arrive, from the end of its request's head.
    setting
        The name of the setting of ``max_bytes``, for the 413 message.
    """

    def __init__(self, max_bytes: int, timeout: float, setting: str) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.setting = setting
        self.buffered = 0  # bytes counted by the bodies being read or scored now

    def busy(self, why: str) -> BodyRefused:
        """The 503 refusal of a request that the worker has no room for now."""
        return BodyRefused(503, f"The service is busy ({why}): retry in a moment.", retry=True)

    @asynccontextmanager
    async def read(
        self, headers: list[tuple[bytes, bytes]], receive: Receive
    ) -> AsyncIterator[bytearray]:
        """The whole body, counted against the worker's budget until the block ends.

        Parameters
        ----------
        headers
            The request's headers, as ASGI gives them.
        receive
            The ASGI ``receive`` of the request.

        Yields
        ------
        bytearray
            The body; clearing it early gives its memory back.

        Raises
        ------
        BodyRefused
            When the body is too large, there is no room for it, it is too slow, or the
            client went away.
        """
        held = _Held()
        try:
            yield await self._read(headers, receive, held)
        finally:
            self.buffered -= held.size

    def _reserve(self, size: int, held: _Held) -> None:
        if self.buffered + size > BUFFERED_BODIES * self.max_bytes:
            raise self.busy("too many large bodies are being received")
        self.buffered += size
        held.size += size

    def _too_big(self) -> BodyRefused:
        return BodyRefused(
            413,
            f"The request body is larger than {self.max_bytes} bytes, this service's limit "
            f"({self.setting}).",
        )

    async def _read(
        self, headers: list[tuple[bytes, bytes]], receive: Receive, held: _Held
    ) -> bytearray:
        declared = next((value for name, value in headers if name == b"content-length"), b"")
        if declared.isdigit():
            if int(declared) > self.max_bytes:
                raise self._too_big()
            self._reserve(int(declared), held)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        body = bytearray()
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                raise BodyRefused(
                    408,
                    f"The request body did not arrive within {self.timeout:g} s: send it "
                    "whole, at once.",
                    close=True,
                ) from None
            if message["type"] == "http.disconnect":
                raise BodyRefused(400, "The client closed the connection before its body arrived.")
            chunk = message.get("body", b"")
            size = len(body) + len(chunk)
            if size > self.max_bytes:
                raise self._too_big()
            if size > held.size:
                self._reserve(size - held.size, held)
            body += chunk
            if not message.get("more_body", False):
                return body
