"""The OpenAPI 3 document that ``GET /swagger.json`` serves.

The document describes the routes of the scoring server. The body of a scoring request
is whatever JSON the entry script's ``run(raw_data)`` reads, so it is described as any
JSON value, unless ``run`` is decorated with inference-schema: then the body and the
answer are described by the schemas its decorators made (see :mod:`.schema`), as on
Azure ML.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_document"]

_JSON_ANY: dict[str, Any] = {"description": "Any JSON value."}
_ERROR_REF: dict[str, Any] = {"$ref": "#/components/schemas/Error"}


def build_document(
    *,
    title: str,
    auth: bool,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the OpenAPI 3 document of a scoring server.

    Parameters
    ----------
    title
        The API's title, for example ``"score.py (mlmagic scoring service)"``.
    auth
        Whether the scoring routes require an ``Authorization: Bearer <key>`` header.
    input_schema, output_schema
        Schemas of the request body and of the answer (from inference-schema's
        decorators); ``None``: any JSON value.

    Returns
    -------
    dict
        The document, ready for :func:`json.dumps`.
    """
    health = _health_operation()
    score = _score_operation(auth, input_schema, output_schema)
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": (
                "Scoring service run by mlmagic.serve. POST a JSON body to /score; it is "
                "passed as a string to run(raw_data) of the entry script, and what run() "
                "returns is sent back as JSON."
            ),
        },
        "paths": {
            "/": {"get": {**health, "operationId": "health"}},
            "/ping": {"get": {**health, "operationId": "ping"}},
            "/score": {"post": {**score, "operationId": "score"}},
            "/invocations": {"post": {**score, "operationId": "invocations"}},
            "/swagger.json": {
                "get": {
                    "operationId": "swagger",
                    "summary": "This OpenAPI document.",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                }
            }
        },
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearerKey": {"type": "http", "scheme": "bearer", "description": "A scoring key."}
        }
    return document


def _health_operation() -> dict[str, Any]:
    """The health probe: 200 once ``init()`` has finished, 503 before."""
    return {
        "summary": "Health probe: 200 once init() has finished, 503 while it runs.",
        "responses": {
            "200": {
                "description": "The model is loaded.",
                "content": {"text/plain": {"schema": {"type": "string", "example": "Healthy"}}},
            },
            "503": {"description": "init() has not finished yet."},
        },
    }


def _error(description: str) -> dict[str, Any]:
    """A response whose body is the ``Error`` object."""
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _score_operation(
    auth: bool, input_schema: dict[str, Any] | None, output_schema: dict[str, Any] | None
) -> dict[str, Any]:
    """A scoring route: the body goes to ``run(raw_data)``, or as arguments to a decorated
    ``run``."""
    responses: dict[str, Any] = {
        "200": {
            "description": (
                "What run() returned, as JSON (bytes are sent as they are); non-finite "
                "floats are sent as null."
            ),
            "content": {
                "application/json": {"schema": output_schema or _JSON_ANY},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "400": _error(
            "The body is not valid JSON (or not UTF-8), or not the arguments run() takes."
        ),
        "408": _error("The body did not arrive in time."),
        "413": _error("The body is larger than the server accepts."),
        "415": _error("The Content-Type is not application/json."),
        "421": _error("The Host header is not an address the service was published on."),
        "500": _error("run() raised; the message names the exception."),
        "503": {
            **_error("Too many requests or large bodies at once; retry after a moment."),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    }
    summary = (
        "Score: the members of the JSON object are passed to run() as its arguments."
        if input_schema
        else "Score: the JSON body is passed to run(raw_data) as a string."
    )
    operation: dict[str, Any] = {
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": input_schema or _JSON_ANY}},
        },
        "responses": responses,
    }
    if auth:
        responses["401"] = _error("No key, or a key that is not accepted.")
        operation["security"] = [{"bearerKey": []}]
    return operation
