"""The ASGI application of the scoring server: routes, JSON, errors and key auth.

A raw ASGI callable rather than a web framework: it is installed into the user's inference
image beside their pinned packages, so it needs only the standard library (and uvicorn to
run it). Routes: ``GET /`` and ``/ping`` (``Healthy`` once ``init()`` has finished, 503
before), ``POST /score`` and ``/invocations`` (the body, as a ``str``, to
``run(raw_data)``; its result as JSON), ``GET /swagger.json`` (see :mod:`.openapi`).
Errors are ``{"error": "..."}``; an exception in ``run()`` is a 500 that names it, and its
traceback goes to the service log (stderr).

``init()`` runs in a thread that the ASGI lifespan startup starts. If loading the script
or ``init()`` raises, the worker logs the traceback, prints ``mlmagic-serve: init() failed:
<Type>: <message>`` and exits with :data:`INIT_FAILED_EXIT_CODE`, so the container stops
within seconds instead of failing its health check much later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, NoReturn

from .entry import EntryScript
from .keys import ENV_AUTH_KEYS, is_authorized, parse_digests
from .openapi import build_document

__all__ = [
    "ENV_ENTRY_SCRIPT",
    "ENV_MAX_BODY_BYTES",
    "ENV_THREADS",
    "INIT_FAILED_EXIT_CODE",
    "ScoringApp",
    "create_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ENV_ENTRY_SCRIPT = "MLMAGIC_ENTRY_SCRIPT"
#: Threads per worker process that call ``run()``.
ENV_THREADS = "MLMAGIC_THREADS"
ENV_MAX_BODY_BYTES = "MLMAGIC_MAX_BODY_BYTES"
#: Set by ``__main__`` for multi-worker servers, so a failing worker can stop the supervisor.
ENV_FAILURE_FILE = "MLMAGIC_SERVE_FAILURE_FILE"
ENV_SUPERVISOR_PID = "MLMAGIC_SERVE_SUPERVISOR_PID"
#: Uvicorn's own code for "the application failed to start".
INIT_FAILED_EXIT_CODE = 3

_DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
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
    """

    def __init__(
        self,
        entry: EntryScript,
        *,
        key_digests: tuple[str, ...] = (),
        threads: int = 4,
        max_body_bytes: int = _DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.entry = entry
        self.key_digests = key_digests
        self.threads = threads
        self.max_body_bytes = max_body_bytes
        self._ready = threading.Event()
        self._ready_async: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._swagger = json.dumps(
            build_document(title=f"{entry.name} (mlmagic scoring service)", auth=bool(key_digests))
        ).encode()
        routes: dict[str, tuple[tuple[str, ...], Callable[..., Awaitable[_Response]]]] = {
            "/": (("GET", "HEAD"), self._health),
            "/ping": (("GET", "HEAD"), self._health),
            "/score": (("POST",), self._score),
            "/invocations": (("POST",), self._score),
            "/swagger.json": (("GET", "HEAD"), self._swagger_json),
        }
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._ready_async is None:  # an ASGI server that sends no lifespan events
            self._start()
        route = self._routes.get(scope["path"])
        if route is None:
            response = _error(404, f"No route {scope['path']}: try POST /score, or GET /.")
        elif scope["method"] not in route[0]:
            allowed = ", ".join(route[0])
            response = _error(
                405,
                f"{scope['method']} is not allowed on {scope['path']}: use {allowed}.",
                (b"allow", allowed.encode()),
            )
        else:
            response = await route[1](scope, receive)
        headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            *response.headers,
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

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
        if self.key_digests and not is_authorized(scope["headers"], self.key_digests):
            return _error(
                401,
                "Send a scoring key of this service as `Authorization: Bearer <key>`.",
                (b"www-authenticate", b"Bearer"),
            )
        body = await self._read_body(scope, receive)
        if body is None:
            return _error(413, f"The request body is larger than {self.max_body_bytes} bytes.")
        if not self._ready.is_set():
            # A request that reaches a worker still loading its model waits for it.
            assert self._ready_async is not None
            await self._ready_async.wait()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._score_sync, body)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole request body, or ``None`` when it is over the size limit."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _score_sync(self, body: bytes) -> _Response:
        """Validate the body, call ``run()`` and encode its result (in a pool thread)."""
        try:
            raw_data = body.decode("utf-8")
            json.loads(raw_data)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both are
            return _error(400, f"The request body is not valid JSON: {exc}")
        try:
            result = self.entry.run(raw_data)
        except Exception as exc:
            logger.exception("run() of %s raised", self.entry.name)
            return _error(500, f"{type(exc).__name__}: {exc}")
        if isinstance(result, bytes | bytearray | memoryview):
            return _Response(200, bytes(result), b"application/octet-stream")
        try:
            return _Response(200, json.dumps(result, default=_jsonable).encode())
        except (TypeError, ValueError) as exc:
            logger.exception("The result of run() of %s is not JSON", self.entry.name)
            return _error(500, f"run() returned a value that is not JSON-serialisable: {exc}")


def _jsonable(value: Any) -> Any:
    """Turn numpy arrays and scalars (anything with ``tolist``) into JSON values."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


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
    :mod:`.keys`), :data:`ENV_THREADS` and :data:`ENV_MAX_BODY_BYTES`.

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
    )


def _positive_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}.")
    return int(value)
