"""Typed events yielded by every long operation.

Widgets, the CLI printer and the REST handlers consume the same iterators; no view parses
log text to find state. Two kinds of stream exist:

- **Builds and deployments** yield :class:`BuildEvent`. An environment's build:
  ``START``, then per step ``STEP``, ``LOG``... and ``STEP_DONE``, then ``DONE`` (the
  image or venv, ``cached`` on a cache hit) or ``ERROR`` just before the
  :class:`~mlmagic.exceptions.BuildError` is raised. A deployment
  (:meth:`mlmagic.deploy.service.Services.deploy`, ``reload``, ``update``) is the
  environment's build, then the build of what the service runs from (the inference
  image's steps, or the local folder's), then ``STEP`` "starting the server", ``STEP``
  "waiting for init()" with the server's lines as ``LOG``, and ``DONE`` with the
  service's URL in ``image`` and the wait in ``duration``; or ``ERROR`` (why, in one
  line) just before the :class:`~mlmagic.exceptions.DeployError` is raised.
- **Runs** yield :class:`RunEvent`: ``STAGE`` changes, the environment's build as
  ``BUILD`` events wrapping :class:`BuildEvent`, the script's ``LOG`` lines, ``METRIC``
  values and one ``END``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

__all__ = [
    "BuildEvent",
    "BuildEventKind",
    "RunEvent",
    "RunEventKind",
    "Stage",
    "Status",
    "drain",
]

E = TypeVar("E")
R = TypeVar("R")


def drain(events: Generator[E, None, R], handle: Callable[[E], object] | None = None) -> R:
    """Feed every event of a long operation to ``handle``; return what the operation returns.

    The operations (builds, deployments) are generators that yield events and return
    their result; every view consumes them through this one loop.
    """
    while True:
        try:
            event = next(events)
        except StopIteration as done:
            return done.value
        if handle is not None:
            handle(event)


class BuildEventKind(str, Enum):
    """What a :class:`BuildEvent` reports."""

    START = "start"  #: the build begins (or is looked up in the cache)
    STEP = "step"  #: a build step starts; ``step`` names it
    LOG = "log"  #: one line of output of the current step
    STEP_DONE = "step_done"  #: a step ended; ``cached`` says whether it was a cache hit
    DONE = "done"  #: the image is ready; ``image`` names it
    ERROR = "error"  #: the build failed; ``message`` says why


@dataclass(frozen=True)
class BuildEvent:
    """One thing that happened while building an environment or deploying a service.

    Attributes
    ----------
    kind
        What happened.
    message
        A log line (``LOG``), an error (``ERROR``), or a short description.
    step
        The step's label, e.g. ``"[2/5] RUN apt-get install ..."``, for step events.
    step_index, step_count
        Position of the step when the builder knows it.
    cached
        ``True`` when a step, or the whole build (``DONE``), came from the cache.
    image
        The image tag (or venv folder), on ``START`` and ``DONE``; a deployment's
        ``DONE`` carries the service's URL here.
    duration
        Seconds the step or the build took, on ``STEP_DONE`` and ``DONE``.
    time
        Wall-clock time the event was made.
    """

    kind: BuildEventKind
    message: str = ""
    step: str | None = None
    step_index: int | None = None
    step_count: int | None = None
    cached: bool = False
    image: str | None = None
    duration: float | None = None
    time: float = field(default_factory=time.time)


class Stage(str, Enum):
    """The stages a run goes through, in order."""

    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"


class Status(str, Enum):
    """The status of a run: its stage while it is live, then how it ended."""

    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        """``True`` once the run has ended."""
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELED)


class RunEventKind(str, Enum):
    """What a :class:`RunEvent` reports."""

    STAGE = "stage"  #: a stage starts; ``stage`` names it
    BUILD = "build"  #: a build event of the environment, in ``build``
    LOG = "log"  #: one line printed by the script (stdout and stderr, in order)
    METRIC = "metric"  #: a metric value: ``name``, ``step``, ``value``
    END = "end"  #: the run ended: ``status``, ``exit_code``, ``message``
    #: how far the Running stage is: ``step`` of ``total`` (a notebook's cells), ``message``
    #: says it in words (``cell 7/23``)
    PROGRESS = "progress"
    #: several consecutive lines of the log at once, in ``message`` joined by ``\n``
    #: (``total`` of them); only a consumer that asks ``follow(..., batch=True)`` gets it
    LINES = "lines"


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened during a run.

    Attributes
    ----------
    kind
        What happened.
    stage
        The stage that starts, for ``STAGE``.
    message
        A log line for ``LOG``; several for ``LINES``; why the run ended for ``END``.
    build
        The environment's build event, for ``BUILD``.
    name, step, value
        The metric, for ``METRIC``.
    status, exit_code
        How the run ended, for ``END``.
    total
        How many steps there are, for ``PROGRESS`` (``step`` is the current one); how
        many lines ``message`` holds, for ``LINES``.
    time
        Wall-clock time the event was made.
    """

    kind: RunEventKind
    stage: Stage | None = None
    message: str = ""
    build: BuildEvent | None = None
    name: str | None = None
    step: int | None = None
    value: float | None = None
    status: Status | None = None
    exit_code: int | None = None
    total: int | None = None
    time: float = field(default_factory=time.time)
