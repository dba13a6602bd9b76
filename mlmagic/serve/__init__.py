"""The scoring server that runs inside a service container.

It serves an Azure-ML-style entry script: ``init()`` loads the model once per worker,
``run(raw_data)`` scores one request body. Start it with::

    python -m mlmagic.serve --entry score.py --host 0.0.0.0 --port 5001 --workers 2

This package is copied alone into the user's inference image, so it imports only the
standard library and itself (relative imports); running it needs ``uvicorn`` too.

Environment variables
---------------------
``MLMAGIC_ENTRY_SCRIPT``, ``MLMAGIC_HOST``, ``MLMAGIC_PORT``, ``MLMAGIC_WORKERS``,
``MLMAGIC_THREADS``, ``MLMAGIC_ACCESS_LOG``
    Defaults of the command-line options.
``MLMAGIC_AUTH_KEYS_SHA256``
    Comma-separated SHA-256 hex digests of the accepted scoring keys. When set,
    ``/score`` and ``/invocations`` need ``Authorization: Bearer <key>``; the health
    routes and ``/swagger.json`` stay open.
``MLMAGIC_ALLOWED_HOSTS``
    Comma-separated ``host:port`` (or ``host``, any port; or ``*``) that requests may name
    in ``Host``; others get 421. The deployer passes the addresses it published the
    service on. Default: ``127.0.0.1``, ``localhost`` and ``[::1]`` on any port.
``MLMAGIC_MAX_BODY_BYTES``
    Largest request body accepted (default 16 MiB); larger ones get 413. A worker buffers
    at most four bodies of this size at once (503 past it).
``MLMAGIC_MAX_IN_FLIGHT``
    Scoring requests one worker holds at once (default 64); more get 503.
``MLMAGIC_BODY_TIMEOUT``, ``MLMAGIC_HEADER_TIMEOUT``
    Seconds a request's body (default 30; 408 past it) and its request line and headers
    (default 10; the connection is closed) may take to arrive.
``MLMAGIC_MAX_CONNECTIONS``
    Open connections per worker (default 1000); past it uvicorn answers 503.
``AZUREML_MODEL_DIR``, ``MLMAGIC_MODEL_DIR``
    Set by the deployer to the folder of the model files; the entry script reads them.
"""

from __future__ import annotations

from .app import ScoringApp, create_app
from .entry import EntryScript, EntryScriptError
from .keys import is_authorized, parse_digests

__all__ = [
    "EntryScript",
    "EntryScriptError",
    "ScoringApp",
    "create_app",
    "is_authorized",
    "parse_digests",
]
