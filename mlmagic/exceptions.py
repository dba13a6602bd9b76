"""The exception tree of mlmagic.

Every error a user can see derives from :class:`MlmagicError`. Third-party errors
(docker, yaml, http) are mapped to these at the boundary with ``raise ... from exc``, and
every message says what happened and what to do about it, in one line where it can.

    MlmagicError
    ├── SpecError       a cell or file cannot be read as an environment definition
    ├── BuildError      an image (or virtual environment) could not be built
    ├── EngineError     no container engine answers, or it refused a request
    ├── RunError        a run could not be submitted, or failed
    ├── DeployError     a service could not be deployed, or failed
    ├── NotFoundError   no environment, run, model or service by that name or id
    └── ConflictError   a name is taken, or a thing is in use or in the wrong state

Front ends map by type, never by message text: the REST layer answers
:class:`NotFoundError` with 404 and :class:`ConflictError` with 409.
"""

from __future__ import annotations

from typing import Any

from mlmagic.hints import Hint, render

__all__ = [
    "BuildError",
    "ConflictError",
    "DeployError",
    "EngineError",
    "MlmagicError",
    "NotFoundError",
    "RunError",
    "SpecError",
]


class MlmagicError(Exception):
    """Root of every error raised by mlmagic.

    ``hint`` says what to do next in each front end's words (see :mod:`mlmagic.hints`);
    ``str()`` ends with the Python API's.
    """

    def __init__(self, *args: Any, hint: Hint | None = None) -> None:
        super().__init__(*args)
        self.hint = hint

    def __str__(self) -> str:
        return render(self, "python") if self.hint else super().__str__()


class SpecError(MlmagicError, ValueError):
    """An environment definition is malformed.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    line
        The 1-based line of the cell or file where the problem is, when known.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        if line is not None:
            message = f"line {line}: {message}"
        super().__init__(message)


class BuildError(MlmagicError):
    """An environment could not be materialised.

    Parameters
    ----------
    message
        What failed and what to do.
    step
        The build step that failed (for example ``"[3/5] RUN uv pip install ..."``).
    log_tail
        The last lines of the failing step's output.
    log_path
        Where the whole build log is kept.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        log_tail: list[str] | None = None,
        log_path: str | None = None,
    ) -> None:
        self.step = step
        self.log_tail = list(log_tail or [])
        self.log_path = log_path
        parts = [message]
        if step:
            parts.append(f"Failing step: {step}")
        if self.log_tail:
            parts.append("Last lines of its output:\n" + "\n".join(self.log_tail))
        if log_path:
            parts.append(f"Full log: {log_path}")
        super().__init__("\n".join(parts))


class EngineError(MlmagicError):
    """The container engine cannot be reached or refused a request."""


class RunError(MlmagicError):
    """A run could not be submitted, or it ended in failure."""


class DeployError(MlmagicError):
    """A service could not be deployed, or it stopped serving."""


class NotFoundError(MlmagicError, LookupError):
    """No environment, run, model or service has the name, version or id asked for."""


class ConflictError(MlmagicError):
    """The request contradicts the current state: a name is taken, a model is in use by a
    service, a run has already ended."""
