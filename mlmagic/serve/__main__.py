"""``python -m mlmagic.serve``: run the scoring server under uvicorn.

Every option has an environment variable, so an image's ``CMD`` can stay fixed and the
deployer can configure the server with ``-e``::

    python -m mlmagic.serve --entry score.py --host 0.0.0.0 --port 5001 --workers 2

Each worker process makes its own app with :func:`mlmagic.serve.app.create_app` (uvicorn's
factory, given as an import string so that worker processes can import it) and calls
``init()`` at its startup. The options reach the workers as environment variables.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from .app import (
    DEFAULT_HEADER_TIMEOUT,
    ENV_ENTRY_SCRIPT,
    ENV_FAILURE_FILE,
    ENV_HEADER_TIMEOUT,
    ENV_SUPERVISOR_PID,
    ENV_THREADS,
    INIT_FAILED_EXIT_CODE,
)

__all__ = ["build_parser", "listen_without_nagle", "main"]

ENV_HOST = "MLMAGIC_HOST"
ENV_PORT = "MLMAGIC_PORT"
ENV_WORKERS = "MLMAGIC_WORKERS"
ENV_ACCESS_LOG = "MLMAGIC_ACCESS_LOG"
ENV_MAX_CONNECTIONS = "MLMAGIC_MAX_CONNECTIONS"
#: Uvicorn closes a keep-alive connection idle for this many seconds.
_KEEP_ALIVE_SECONDS = 5
#: The most bytes of a request head that h11 buffers (its own default, said out loud).
_MAX_HEAD_BYTES = 16 * 1024

_PACKAGE = __package__ or "mlmagic.serve"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of the server; defaults come from the environment.

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    env = os.environ
    parser = argparse.ArgumentParser(
        prog=f"python -m {_PACKAGE}",
        description="Serve an Azure-ML-style entry script (init() and run(raw_data)) over HTTP.",
    )
    parser.add_argument(
        "--entry",
        default=env.get(ENV_ENTRY_SCRIPT),
        help=f"path of the entry script (env {ENV_ENTRY_SCRIPT})",
    )
    parser.add_argument(
        "--host",
        default=env.get(ENV_HOST, "127.0.0.1"),
        help=f"address to listen on; 0.0.0.0 inside a container (env {ENV_HOST}; "
        "default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get(ENV_PORT, "5001")),
        help=f"port to listen on (env {ENV_PORT}; default 5001)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=int(env.get(ENV_WORKERS, "1")),
        help=f"worker processes, each with its own model (env {ENV_WORKERS}; default 1)",
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help=f"threads per worker that call run() (env {ENV_THREADS}; default cpus + 4, "
        "at most 32)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive,
        default=int(env.get(ENV_MAX_CONNECTIONS, "1000")),
        help=f"open connections per worker; past it uvicorn answers 503 (env "
        f"{ENV_MAX_CONNECTIONS}; default 1000)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        default=float(env.get(ENV_HEADER_TIMEOUT, str(DEFAULT_HEADER_TIMEOUT))),
        help=f"seconds a request line and headers may take to arrive before the connection "
        f"is closed (env {ENV_HEADER_TIMEOUT}; default {DEFAULT_HEADER_TIMEOUT:g})",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=env.get(ENV_ACCESS_LOG, "").lower() in ("1", "true", "yes"),
        help=f"log one line per request (env {ENV_ACCESS_LOG}; default off, for speed)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default info)",
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop; auto: uvloop when it is installed",
    )
    parser.add_argument(
        "--http",
        default="auto",
        choices=["auto", "h11", "httptools"],
        help="HTTP parser; auto: httptools when it is installed",
    )
    return parser


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def listen_without_nagle(config_class: Any) -> None:
    """Make the sockets that ``config_class.bind_socket`` returns pass on ``TCP_NODELAY``.

    With more than one worker, uvicorn binds the listening socket itself, with ``proto``
    left at 0, and asyncio then skips ``TCP_NODELAY`` on the connections it accepts: every
    response after the first on a keep-alive connection waits ~40 ms for the client's
    delayed ACK (Kludex/uvicorn#3149, open). On Linux an accepted socket inherits
    ``TCP_NODELAY`` from its listener, so setting it there fixes every connection.
    Idempotent; uvloop sets the option itself and is unaffected either way.

    Parameters
    ----------
    config_class
        ``uvicorn.Config``, whose ``bind_socket`` is wrapped.
    """
    original = config_class.bind_socket
    if getattr(original, "mlmagic_nodelay", False):
        return

    def bind_socket(self: Any) -> socket.socket:
        sock: socket.socket = original(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    bind_socket.mlmagic_nodelay = True  # type: ignore[attr-defined]
    config_class.bind_socket = bind_socket


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until it is stopped.

    Parameters
    ----------
    argv
        Command-line arguments, without the program name; ``None``: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 after a normal stop, :data:`INIT_FAILED_EXIT_CODE` when a
        worker's ``init()`` failed.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.entry:
        parser.error(f"give the entry script with --entry or {ENV_ENTRY_SCRIPT}")
    entry = os.path.abspath(args.entry)
    if not os.path.isfile(entry):
        parser.error(f"no entry script at {entry}")
    try:
        import uvicorn
    except ImportError:
        print(
            "mlmagic-serve: uvicorn is not installed. Install it into this environment "
            "with `pip install 'uvicorn>=0.30'`.",
            file=sys.stderr,
        )
        return 2
    loop = args.loop if args.loop != "auto" else "uvloop" if _installed("uvloop") else "asyncio"
    http = args.http if args.http != "auto" else "httptools" if _installed("httptools") else "h11"

    # Worker processes read their settings from the environment (see create_app).
    os.environ[ENV_ENTRY_SCRIPT] = entry
    os.environ[ENV_HEADER_TIMEOUT] = repr(args.header_timeout)
    if args.threads is not None:
        os.environ[ENV_THREADS] = str(args.threads)
    failure_file = None
    if args.workers > 1:
        fd, failure_file = tempfile.mkstemp(prefix="mlmagic-serve-", suffix=".failure")
        os.close(fd)
        os.environ[ENV_FAILURE_FILE] = failure_file
        os.environ[ENV_SUPERVISOR_PID] = str(os.getpid())
        listen_without_nagle(uvicorn.Config)
    print(
        f"mlmagic-serve: {entry} on http://{args.host}:{args.port} "
        f"(workers={args.workers}, loop={loop}, http={http})",
        file=sys.stderr,
        flush=True,
    )
    from .protocol import protocol_class

    try:
        uvicorn.run(
            f"{_PACKAGE}.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            lifespan="on",
            loop=loop,
            http=protocol_class(http),
            access_log=args.access_log,
            log_level=args.log_level,
            limit_concurrency=args.max_connections,
            timeout_keep_alive=_KEEP_ALIVE_SECONDS,
            h11_max_incomplete_event_size=_MAX_HEAD_BYTES,
        )
    finally:
        failed = False
        if failure_file is not None:
            with open(failure_file, encoding="utf-8") as file:
                failed = bool(file.read().strip())
            os.unlink(failure_file)
    return INIT_FAILED_EXIT_CODE if failed else 0


if __name__ == "__main__":
    sys.exit(main())
