"""Talking to a Ray cluster's Jobs API: the one module that imports ``ray``.

Ray's own client (:class:`ray.job_submission.JobSubmissionClient`, from the optional
``mlmagic[ray]`` extra) does the talking; this module hands it the compute's address and
token (as an ``Authorization`` header, so the process's own ``RAY_AUTH_*`` settings play
no part) and maps what it raises to :class:`~mlmagic.exceptions.MlmagicError` with one
line that says what to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlmagic.computes.record import Compute
from mlmagic.exceptions import MlmagicError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = ["JobInfo", "RayJobs", "client_version"]

_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
# Ray's client narrates each upload and websocket close at INFO on the kernel's stderr.
_CHATTY_LOGGERS = (
    "ray.dashboard.modules.dashboard_sdk",
    "ray.dashboard.modules.job.sdk",
    "ray._private.runtime_env.packaging",
)


def client_version() -> str:
    """The version of the Ray client installed here.

    Raises
    ------
    MlmagicError
        Ray is not installed in this Python.
    """
    try:
        import ray
    except ImportError as exc:
        raise MlmagicError(
            "Ray computes need Ray's client in this Python: pip install 'mlmagic[ray]'."
        ) from exc
    return str(ray.__version__)


@dataclass(frozen=True)
class JobInfo:
    """What Ray says of one job.

    Attributes
    ----------
    status
        ``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``STOPPED``.
    message
        Ray's words on it (why it failed).
    exit_code
        The entrypoint's exit code, once Ray knows it.
    """

    status: str
    message: str
    exit_code: int | None

    @property
    def ended(self) -> bool:
        """Whether the job is over."""
        return self.status in _TERMINAL


class RayJobs:
    """The Jobs API of one compute.

    Parameters
    ----------
    compute
        The compute whose cluster is asked; its token is read when first needed.
    """

    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    @cached_property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for the compute's token (none without one)."""
        token = self.compute.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    @cached_property
    def client(self) -> JobSubmissionClient:
        """Ray's client, connected (it asks the cluster's version on creation)."""
        client_version()
        from ray.job_submission import JobSubmissionClient

        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)

        return self._call(
            "connect", lambda: JobSubmissionClient(self.compute.address, headers=self.headers)
        )

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except MlmagicError:
            raise
        except Exception as exc:  # Ray raises RuntimeError, ConnectionError, ValueError...
            raise MlmagicError(self._explain(what, exc)) from exc

    def _explain(self, what: str, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        where = f"the Ray cluster of the compute {self.compute.name!r} at {self.compute.address}"
        lowered = text.lower()
        if any(word in lowered for word in ("401", "403", "unauthorized", "authentication")):
            fix = (
                f"check ${self.compute.token_env} holds this cluster's token"
                if self.compute.token_env
                else "attach it again with --token-env NAME (the variable holding its token)"
            )
            return f"{where} refused the token: {fix}."
        if "failed to connect" in lowered or "connection" in lowered or "timed out" in lowered:
            return (
                f"{where} does not answer ({what}): check the address and that the cluster "
                f"is up (%computes), then try again. Ray said: {text[:300]}"
            )
        return f"{where} refused to {what}: {text[:400]}"

    # -- jobs -------------------------------------------------------------------------

    def submit(self, submission_id: str, entrypoint: str, **options: Any) -> None:
        """Submit a job as ``submission_id`` (options as Ray's ``submit_job`` takes)."""
        self._call(
            "take the job",
            lambda: self.client.submit_job(
                entrypoint=entrypoint, submission_id=submission_id, **options
            ),
        )

    def info(self, submission_id: str) -> JobInfo | None:
        """The job's status, or ``None`` when the cluster has no such job."""
        try:
            details = self.client.get_job_info(submission_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc) or "404" in str(exc):
                return None
            raise MlmagicError(self._explain("say how the job is", exc)) from exc
        except Exception as exc:
            raise MlmagicError(self._explain("say how the job is", exc)) from exc
        status = getattr(details.status, "value", str(details.status))
        return JobInfo(
            status=str(status),
            message=details.message or "",
            exit_code=getattr(details, "driver_exit_code", None),
        )

    def logs(self, submission_id: str) -> str:
        """Everything the job printed so far."""
        return str(
            self._call("give the job's logs", lambda: self.client.get_job_logs(submission_id))
        )

    def tail(self, submission_id: str) -> Iterator[str]:
        """The job's output in chunks as it comes, from its beginning, until it ends (a
        blocking iterator over Ray's websocket tail; raises on a broken connection)."""
        loop = asyncio.new_event_loop()
        stream = self.client.tail_job_logs(submission_id)
        try:
            while True:
                try:
                    chunk = loop.run_until_complete(stream.__anext__())
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise MlmagicError(self._explain("stream the job's logs", exc)) from exc
                yield chunk
        finally:
            closing = getattr(stream, "aclose", None)
            if closing is not None:
                loop.run_until_complete(closing())
            loop.close()

    def stop(self, submission_id: str) -> None:
        """Ask Ray to stop the job (SIGTERM, then SIGKILL after Ray's grace period)."""
        self._call("stop the job", lambda: self.client.stop_job(submission_id))

    # -- the cluster ------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes as its state API lists them (``state``,
        ``resources_total``, ``labels`` ...).

        Raises
        ------
        MlmagicError
            The cluster does not answer or refuses the token.
        """
        request = urllib.request.Request(
            f"{self.compute.address}/api/v0/nodes?limit=1000", headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            said = RuntimeError(f"HTTP {exc.code} {exc.reason}")
            raise MlmagicError(self._explain("list its nodes", said)) from exc
        except (OSError, ValueError) as exc:
            raise MlmagicError(self._explain("list its nodes", exc)) from exc
        data = body.get("data", {}).get("result", {})
        rows = data.get("result", data) if isinstance(data, dict) else data
        return [row for row in rows or [] if isinstance(row, dict)]
