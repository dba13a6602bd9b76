"""Entry scripts whose ``run`` carries inference-schema's ``@input_schema``/``@output_schema``.

Azure ML's server calls such a ``run`` differently from a plain one: the request body must
be a JSON object, and its members are passed to ``run`` as keyword arguments (the
decorators then turn each into the type its sample has: a list, a numpy array, a pandas
data frame). The same decorators describe the body and the answer, which go into
``/swagger.json``. This module does the same with the real ``inference_schema`` package,
which the inference image installs beside the user's packages (their own pin wins).

Like the rest of :mod:`mlmagic.serve` it imports only the standard library; it looks for
``inference_schema`` only when a script is loaded, and a script that is not decorated (or
an image without the package) is served as a plain one.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BadRequest", "RunSchema"]

_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


class BadRequest(ValueError):
    """A request body that a decorated ``run`` cannot be called with (an HTTP 400)."""


@dataclass(frozen=True)
class RunSchema:
    """How to call a decorated ``run``, and what its decorators say about it.

    Attributes
    ----------
    parameters
        The names ``run`` takes, in order.
    required
        Those of them without a default.
    input_schema, output_schema
        The OpenAPI schema objects inference-schema made from the decorators' samples.
    """

    parameters: tuple[str, ...]
    required: frozenset[str]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    @classmethod
    def of(cls, run: Callable[..., Any]) -> RunSchema | None:
        """The schema of ``run``, or ``None`` when it is not decorated (or the package is
        not importable, in which case the script could not have used it)."""
        try:
            from inference_schema.schema_util import (  # type: ignore[import-not-found]
                get_input_schema,
                get_output_schema,
                is_schema_decorated,
            )
        except ImportError:
            return None
        if not is_schema_decorated(run):
            return None
        # A wrapt FunctionWrapper reports the signature of the function it wraps.
        signature = inspect.signature(run)
        names = tuple(signature.parameters)
        required = frozenset(
            name
            for name, parameter in signature.parameters.items()
            if parameter.default is inspect.Parameter.empty
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        )
        return cls(names, required, get_input_schema(run), get_output_schema(run))

    def arguments(self, raw_data: str) -> dict[str, Any]:
        """The keyword arguments for ``run`` from a request body.

        Raises
        ------
        BadRequest
            The body is not a JSON object, names a parameter ``run`` does not take, or
            leaves out one it needs; the message lists what ``run`` takes.
        """
        data = json.loads(raw_data)
        takes = ", ".join(self.parameters)
        if not isinstance(data, dict):
            raise BadRequest(
                f"Send a JSON object whose members are the arguments of run() ({takes}), "
                f"not {_JSON_KINDS.get(type(data), 'that')}."
            )
        unknown = sorted(set(data) - set(self.parameters))
        if unknown:
            raise BadRequest(f"run() takes no {', '.join(unknown)}: it takes {takes}.")
        missing = sorted(self.required - set(data))
        if missing:
            raise BadRequest(f"The request leaves out {', '.join(missing)}: run() takes {takes}.")
        return data
