"""How the result of ``run()`` becomes the body of an answer.

Every answer of ``/score`` is valid JSON: JSON has no NaN or infinity, so a non-finite
float in a result is sent as ``null``, as JavaScript's ``JSON.stringify`` and pandas'
``to_json`` do, rather than as the ``NaN`` that :func:`json.dumps` writes by default and
that most JSON parsers refuse.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["encode_result"]


def encode_result(result: Any) -> bytes:
    """``run()``'s result as a JSON document.

    Parameters
    ----------
    result
        Any JSON-able value; objects with a ``tolist()`` method (numpy arrays and scalars)
        are sent as what it returns. Non-finite floats become ``null``.

    Returns
    -------
    bytes
        The UTF-8 JSON text.

    Raises
    ------
    TypeError, ValueError, RecursionError
        When ``result`` holds something that is not JSON-able (or a reference cycle).
    """
    try:
        return json.dumps(result, default=_jsonable, allow_nan=False).encode()
    except ValueError:  # NaN or infinity somewhere (or a cycle, which fails again below)
        return json.dumps(_finite(result), default=_jsonable, allow_nan=False).encode()


def _finite(value: Any) -> Any:
    """A copy of a JSON-able value with every non-finite float replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    tolist = getattr(value, "tolist", None)
    return _finite(tolist()) if callable(tolist) else value


def _jsonable(value: Any) -> Any:
    """Turn numpy arrays and scalars (anything with ``tolist``) into JSON values."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
