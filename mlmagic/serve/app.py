"""The ASGI application of the scoring server: routes, JSON, errors and key auth.

A raw ASGI callable rather than a web framework: it is installed into the user's inference
image beside their pinned packages, so it needs only the standard library (and uvicorn to
run it). Routes: ``GET /`` and ``/ping`` (``Healthy`` once ``init()`` has finished, 503
before), ``POST /score`` and ``/invocations`` (the body, as a ``str``, to
``run(raw_data)``, or its members as the arguments of a ``run`` decorated with
inference-schema, see :mod:`.schema`; its result as JSON), ``GET /swagger.json`` (see
:mod:`.openapi`).
Errors are ``{"error": "..."}``; an exception in ``run()`` (any, ``SystemExit`` and
``KeyboardInterrupt`` too) is a 500 that names it, its traceback goes to the service log
(stderr), and the server keeps serving. Non-finite floats in a result are sent as ``null``,
as JavaScript's ``JSON.stringify`` does, so that every answer is valid JSON.

What a request may cost is bounded: ``/score`` takes only ``Content-Type:
application/json`` (415 otherwise; a web page cannot send that to another origin without a
CORS preflight, which this server never grants), bodies up to a size (413), a number of
requests at once and a total of buffered body bytes (503 with ``Retry-After``), bodies
that arrive within a time (408), and requests whose ``Host`` is an address the service was
published on (421, see :mod:`.hosts`). The body is checked to be JSON without building it
(:mod:`.jsonbody`) and reaches ``run()`` as the ``str`` it is, as on Azure.

``init()`` runs in a thread that the ASGI lifespan startup starts. If loading the script
or ``init()`` raises, the worker logs the traceback, prints ``mlmagic-serve: init() failed:
<Type>: <message>`` and exits with :data:`INIT_FAILED_EXIT_CODE`, so the container stops
within seconds instead of failing its health check much later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, NoReturn

from .body import BodyReader, BodyRefused
from .entry import EntryScript
from .hosts import ENV_ALLOWED_HOSTS, Address, host_allowed, parse_hosts, request_host
from .jsonbody import check_json
from .keys import ENV_AUTH_KEYS, is_authorized, parse_digests
from .openapi import build_document
from .results import encode_result
from .schema import BadRequest

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "ENV_BODY_TIMEOUT",
    "ENV_ENTRY_SCRIPT",
    "ENV_HEADER_TIMEOUT",
    "ENV_MAX_BODY_BYTES",
    "ENV_MAX_IN_FLIGHT",
    "ENV_THREADS",
    "INIT_FAILED_EXIT_CODE",
    "ScoringApp",
    "create_app",
    "positive_seconds",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ENV_ENTRY_SCRIPT = "MLMAGIC_ENTRY_SCRIPT"
#: Threads per worker process that call ``run()``.
ENV_THREADS = "MLMAGIC_THREADS"
ENV_MAX_BODY_BYTES = "MLMAGIC_MAX_BODY_BYTES"
#: Scoring requests one worker process holds at once (reading, waiting or in ``run()``).
ENV_MAX_IN_FLIGHT = "MLMAGIC_MAX_IN_FLIGHT"
#: Seconds a request's body may take to arrive.
ENV_BODY_TIMEOUT = "MLMAGIC_BODY_TIMEOUT"
#: Seconds a request line and headers may take to arrive (read by :mod:`.protocol`).
ENV_HEADER_TIMEOUT = "MLMAGIC_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
#: Set by ``__main__`` for multi-worker servers, so a failing worker can stop the supervisor.
ENV_FAILURE_FILE = "MLMAGIC_SERVE_FAILURE_FILE"
ENV_SUPERVISOR_PID = "MLMAGIC_SERVE_SUPERVISOR_PID"
#: Uvicorn's own code for "the application failed to start".
INIT_FAILED_EXIT_CODE = 3

_DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_DEFAULT_MAX_IN_FLIGHT = 64
_DEFAULT_BODY_TIMEOUT = 30.0
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"

logger = logging.getLogger("mlmagic.serve")


class _Response(NamedTuple):
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _error(status: int, message: str, *headers: tuple[bytes, bytes]) -> _Response:
    return _Response(status, json.dumps({"error": message}).encode(), _JSON, headers)


#: Closes the connection after the answer. Not for answers sent before the body was read:
#: uvicorn reads and drops the rest of it on an open connection (until the head deadline of
#: .protocol), while closing with unread data makes the kernel reset the connection, and a
#: client still sending its body would get that reset instead of the answer. Hence
#: BodyRefused closes only after a half-read body (408).
_CLOSE = (b"connection", b"close")


class ScoringApp:
    """The scoring server, as an ASGI 3 application.

    Parameters
    ----------
    entry
        The entry script; it is loaded and initialised at lifespan startup.
    key_digests
        SHA-256 hex digests of the accepted scoring keys; empty: no auth.
    threads
        Size of the thread pool that calls ``run()``.
    max_body_bytes
        Larger request bodies are refused with 413.
    max_in_flight
        Scoring requests held at once; more are refused with 503.
    body_timeout
        Seconds a body may take to arrive; a slower one is refused with 408.
    allowed_hosts
        The ``Host`` addresses answered (see :mod:`.hosts`); others get 421.
    """

    def __init__(
        self,
        entry: EntryScript,
        *,
        key_digests: tuple[str, ...] = (),
        threads: int = 4,
        max_body_bytes: int = _DEFAULT_MAX_BODY_BYTES,
        max_in_flight: int = _DEFAULT_MAX_IN_FLIGHT,
        body_timeout: float = _DEFAULT_BODY_TIMEOUT,
        allowed_hosts: tuple[Address, ...] = parse_hosts(""),
    ) -> None:
        self.entry = entry
        self.key_digests = key_digests
        self.threads = threads
        self.max_in_flight = max_in_flight
        self.allowed_hosts = allowed_hosts
        self._bodies = BodyReader(max_body_bytes, body_timeout, ENV_MAX_BODY_BYTES)
        self._in_flight = 0
        self._ready = threading.Event()
        self._ready_async: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._swagger = self._document()
        routes: dict[str, tuple[tuple[str, ...], Callable[..., Awaitable[_Response]]]] = {
            "/": (("GET", "HEAD"), self._health),
            "/ping": (("GET", "HEAD"), self._health),
            "/score": (("POST",), self._score),
            "/invocations": (("POST",), self._score),
            "/swagger.json": (("GET", "HEAD"), self._swagger_json),
        }
        self._routes = routes

    def _document(self) -> bytes:
        """The OpenAPI document, with the entry script's inference-schema when it has one."""
        schema = self.entry.schema
        return json.dumps(
            build_document(
                title=f"{self.entry.name} (mlmagic scoring service)",
                auth=bool(self.key_digests),
                input_schema=schema.input_schema if schema else None,
                output_schema=schema.output_schema if schema else None,
            )
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._ready_async is None:  # an ASGI server that sends no lifespan events
            self._start()
        try:
            response = await self._respond(scope, receive)
        except Exception:  # a defect of this server: still a JSON answer, and it goes on
            logger.exception("Answering %s %s failed", scope["method"], scope["path"])
            response = _error(500, "The scoring server failed: see the service log.", _CLOSE)
        headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            *response.headers,
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: Scope, receive: Receive) -> _Response:
        host = request_host(scope["headers"])
        if not host_allowed(host, self.allowed_hosts):
            allowed = ", ".join(f"{name}:{port or '*'}" for name, port in self.allowed_hosts)
            return _error(
                421,
                f"This service does not answer to the host {host or '(none)'!r}: call it at "
                f"one of {allowed}, the addresses it was published on.",
            )
        route = self._routes.get(scope["path"])
        if route is None:
            return _error(404, f"No route {scope['path']}: try POST /score, or GET /.")
        if scope["method"] not in route[0]:
            allowed = ", ".join(route[0])
            return _error(
                405,
                f"{scope['method']} is not allowed on {scope['path']}: use {allowed}.",
                (b"allow", allowed.encode()),
            )
        return await route[1](scope, receive)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start(self) -> None:
        """Start loading the model; the server answers 503 on ``/`` until it is done."""
        loop = asyncio.get_running_loop()
        self._ready_async = asyncio.Event()
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="mlmagic-run")
        # A daemon thread rather than the loop's executor: a worker stopped while a slow
        # init() runs must exit without waiting for init() to return.
        threading.Thread(
            target=self._load_and_init, args=(loop,), name="mlmagic-init", daemon=True
        ).start()

    def _load_and_init(self, loop: asyncio.AbstractEventLoop) -> None:
        stage = f"loading {self.entry.name}"
        started = time.perf_counter()
        try:
            self.entry.load()
            if self.entry.schema is not None:
                # The decorators are known only now: describe their schema from here on.
                self._swagger = self._document()
            stage = "init()"
            self.entry.init()
        except BaseException as exc:
            _exit_after_init_failure(stage, exc)
        elapsed = time.perf_counter() - started
        logger.info("init() of %s finished in %.2f s", self.entry.name, elapsed)
        self._ready.set()
        ready_async = self._ready_async
        if ready_async is not None:
            loop.call_soon_threadsafe(ready_async.set)

    async def _health(self, scope: Scope, receive: Receive) -> _Response:
        if self._ready.is_set():
            return _Response(200, b"Healthy", _TEXT)
        return _Response(503, b"Initializing: init() has not finished", _TEXT)

    async def _swagger_json(self, scope: Scope, receive: Receive) -> _Response:
        return _Response(200, self._swagger)

    async def _score(self, scope: Scope, receive: Receive) -> _Response:
        headers = scope["headers"]
        if self.key_digests and not is_authorized(headers, self.key_digests):
            return _error(
                401,
                "Send a scoring key of this service as `Authorization: Bearer <key>`.",
                (b"www-authenticate", b"Bearer"),
            )
        try:
            self._check_head(headers)
            self._in_flight += 1
            try:
                async with self._bodies.read(headers, receive) as body:
                    if not self._ready.is_set():
                        # A request that reaches a worker still loading its model waits.
                        assert self._ready_async is not None
                        await self._ready_async.wait()
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(self._executor, self._score_sync, body)
            finally:
                self._in_flight -= 1
        except BodyRefused as refused:
            headers = [(b"retry-after", b"1")] if refused.retry else []
            if refused.close:
                headers.append(_CLOSE)
            return _error(refused.status, str(refused), *headers)

    def _check_head(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Refuse a scoring request by its headers, before its body is read."""
        content_type = _header(headers, b"content-type")
        if content_type.partition(";")[0].strip().lower() != "application/json":
            sent = f"`{content_type}`" if content_type else "none"
            raise BodyRefused(
                415,
                f"Send the body as JSON with `Content-Type: application/json`; this request's "
                f"content type is {sent}.",
            )
        if self._in_flight >= self.max_in_flight:
            raise self._bodies.busy(f"{self.max_in_flight} requests are in progress")

    def _score_sync(self, body: bytearray) -> _Response:
        """Check the body, call ``run()`` and encode its result (in a pool thread)."""
        try:
            raw_data = body.decode("utf-8")
            body.clear()  # only the text is needed from here on
            check_json(raw_data)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both are
            return _error(400, f"The request body is not valid JSON: {exc}")
        try:
            result = self.entry.run(raw_data)
        except BadRequest as exc:
            return _error(400, str(exc))
        except BaseException as exc:
            # SystemExit and KeyboardInterrupt too: in this pool thread they can only come
            # from the script itself (signals reach the main thread), and one request must
            # not take the server down with it.
            logger.error("run() of %s raised", self.entry.name, exc_info=exc)
            return _error(500, _describe(exc))
        if isinstance(result, bytes | bytearray | memoryview):
            return _Response(200, bytes(result), b"application/octet-stream")
        try:
            return _Response(200, encode_result(result))
        except Exception as exc:
            logger.exception("The result of run() of %s is not JSON", self.entry.name)
            return _error(500, f"run() returned a value that is not JSON-serialisable: {exc}")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    """The value of the first header called ``name`` (lower case), or ``""``."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def _describe(exc: BaseException) -> str:
    """``Type: message``, or ``Type`` alone when the message is empty."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _exit_after_init_failure(stage: str, exc: BaseException) -> NoReturn:
    """Log the traceback, print one line that says what failed, and end the process."""
    logger.error("%s failed", stage, exc_info=exc)
    line = f"mlmagic-serve: {stage} failed: {type(exc).__name__}: {exc}"
    print(line, file=sys.stderr, flush=True)
    failure_file = os.environ.get(ENV_FAILURE_FILE)
    if failure_file:
        with open(failure_file, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    supervisor = os.environ.get(ENV_SUPERVISOR_PID, "")
    if supervisor.isdigit() and int(supervisor) == os.getppid():
        # Uvicorn's supervisor would start a fresh worker that fails the same way;
        # stopping it makes the whole server, and so the container, exit.
        os.kill(os.getppid(), signal.SIGTERM)
    for handler in logger.handlers:
        handler.flush()
    sys.stdout.flush()
    # os._exit: from a thread, and without waiting for uvicorn's graceful shutdown.
    os._exit(INIT_FAILED_EXIT_CODE)


def create_app() -> ScoringApp:
    """Make the app from environment variables (uvicorn's factory, once per worker).

    Reads :data:`ENV_ENTRY_SCRIPT` (required), ``MLMAGIC_AUTH_KEYS_SHA256`` (see
    :mod:`.keys`), ``MLMAGIC_ALLOWED_HOSTS`` (see :mod:`.hosts`), :data:`ENV_THREADS`,
    :data:`ENV_MAX_BODY_BYTES`, :data:`ENV_MAX_IN_FLIGHT` and :data:`ENV_BODY_TIMEOUT`.

    Returns
    -------
    ScoringApp
        The application; it loads the script when the server starts it.

    Raises
    ------
    ValueError
        When a variable is missing or malformed; the message names it.
    """
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     [%(process)d] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    path = os.environ.get(ENV_ENTRY_SCRIPT, "")
    if not path:
        raise ValueError(f"Set {ENV_ENTRY_SCRIPT} to the path of the entry script (score.py).")
    return ScoringApp(
        EntryScript(path),
        key_digests=parse_digests(os.environ.get(ENV_AUTH_KEYS, "")),
        threads=_positive_int(ENV_THREADS, min(32, (os.cpu_count() or 1) + 4)),
        max_body_bytes=_positive_int(ENV_MAX_BODY_BYTES, _DEFAULT_MAX_BODY_BYTES),
        max_in_flight=_positive_int(ENV_MAX_IN_FLIGHT, _DEFAULT_MAX_IN_FLIGHT),
        body_timeout=positive_seconds(ENV_BODY_TIMEOUT, _DEFAULT_BODY_TIMEOUT),
        allowed_hosts=parse_hosts(os.environ.get(ENV_ALLOWED_HOSTS, "")),
    )


def _positive_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}.")
    return int(value)


def positive_seconds(name: str, default: float) -> float:
    """The number of seconds in the environment variable ``name``, or ``default``.

    Raises
    ------
    ValueError
        When the value is not a positive, finite number; the message names the variable.
    """
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}.")
    return seconds
