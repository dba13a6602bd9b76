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
``MLMAGIC_MAX_BODY_BYTES``
    Largest request body accepted (default 100 MiB).
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
