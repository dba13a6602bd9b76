"""Re-running a run: the same options, the same code.

A re-run is Azure ML's "Resubmit": a new run of the code that ran, not of the source
folder as it is now. Its source folder is the earlier run's snapshot (``runs/<id>/snapshot``,
which never changes after the run starts), copied again into the new run's own snapshot, so
the new run stands alone even if the earlier one is deleted later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlmagic.exceptions import RunError
from mlmagic.records import RunRecord
from mlmagic.run.paths import RunPaths

if TYPE_CHECKING:
    from mlmagic.run.run import Run
    from mlmagic.workspace import Workspace

__all__ = ["OVERRIDABLE", "rerun", "rerun_options"]

#: The options a re-run may change; the code (script, source folder) stays the run's.
OVERRIDABLE = (
    "args",
    "compute",
    "cpus",
    "data",
    "distributed",
    "environment",
    "experiment",
    "gpus",
    "memory",
    "name",
    "parameters",
    "shm_size",
    "tags",
    "target",
    "timeout",
)


def rerun_options(record: RunRecord) -> dict[str, Any]:
    """The options ``record``'s run was submitted with, as :func:`~mlmagic.run.run.submit`
    takes them (``environment`` as ``name:version``: the version that ran)."""
    config = record.config
    return {
        "environment": record.environment,
        "args": list(config.args),
        "experiment": config.experiment,
        "name": config.name,
        "tags": dict(config.tags),
        "gpus": config.gpus,
        "data": dict(config.data),
        "shm_size": config.shm_size,
        "memory": config.memory,
        "cpus": config.cpus,
        "timeout": config.timeout,
        "target": config.target,
        "distributed": config.distributed,
        "compute": config.compute,
        "parameters": dict(config.parameters),
    }


def rerun(ws: Workspace, run_id: str, **overrides: Any) -> Run:
    """Submit a new run of ``run_id``'s snapshot with its options, some changed.

    Parameters
    ----------
    ws
        The workspace of the run.
    run_id
        The run to run again, finished or not.
    **overrides
        Options to change, by the names :func:`~mlmagic.run.run.submit` takes (those in
        :data:`OVERRIDABLE`); ``None`` keeps the run's value. A ``target`` given
        without a ``compute`` leaves the run's compute: the re-run goes to that target.

    Returns
    -------
    Run
        The new run, started.

    Raises
    ------
    mlmagic.exceptions.NotFoundError
        No run ``run_id``.
    mlmagic.exceptions.RunError
        An option that is not one a re-run changes, the run's snapshot is gone, or
        :func:`~mlmagic.run.run.submit` refused the options.
    """
    from mlmagic.run.run import Run, submit

    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise RunError(
            f"A re-run cannot change {', '.join(unknown)}: it runs the code of run {run_id} "
            f"again; change only {', '.join(OVERRIDABLE)}, or submit the folder anew."
        )
    record = Run(ws, run_id).record  # NotFoundError for an unknown id
    source = RunPaths(ws.path("runs", run_id)).snapshot
    if not source.is_dir():
        raise RunError(
            f"Run {run_id} has no snapshot left in {source}, so its code cannot run again: "
            "submit the source folder instead."
        )
    options = rerun_options(record)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "target" in changes and "compute" not in changes:
        # A compute decides the target itself, so keeping it would ignore the choice.
        options["compute"] = None
    options.update(changes)
    environment = options.pop("environment")
    return submit(ws, record.config.script, environment, source_dir=source, **options)
