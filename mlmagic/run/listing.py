"""The table of runs (``ws.runs.list()``, ``%runs``, ``mlmagic run list``), at any scale.

A listing is one indexed query (the store filters, orders and limits) and, per run, what
the run logged: its params and the last value of each metric. Those come from the run's
own files, which stay the truth; once a run has ended its files no longer change, so the
first listing that reads them keeps the result in the store (the run's ``summary``) and
later listings read only the store. A live run is always read from its files.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError
from mlmagic.run import untrusted
from mlmagic.run.paths import RunPaths

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["epoch_seconds", "read_params", "run_frame", "status_name", "summarize"]

#: The columns every listing has, before the params and metrics of the runs.
_FIXED = ("id", "experiment", "name", "status", "environment", "created", "duration", "exit_code")
_TERMINAL = frozenset(s.value for s in Status if s.is_terminal)


def read_params(paths: RunPaths) -> dict[str, Any]:
    """The params the run logged with ``mlmagic_run.log_params`` (``{}`` when none, or
    when the file is not a JSON object or not a regular file: the run's log says so)."""
    return untrusted.read_json_object(paths, paths.params)


def summarize(paths: RunPaths, name: str | None) -> dict[str, Any]:
    """What a listing shows of a run besides its record: ``{"name", "columns"}``, where
    ``columns`` maps ``param.<name>`` to each param and each metric to its last value.

    ``name`` is the run's own (from its config; kept here so a listing of ended runs reads
    no config). The last value of a metric is the last one in the file, as
    :attr:`Run.metrics` orders them (rank 0's, in a distributed run); floats (NaN and
    infinities included) survive the store's JSON exactly. The columns are flat, so a
    listing of thousands of runs builds no dictionary per run.
    """
    records, _ = untrusted.read_metrics(paths)
    columns = {f"param.{k}": v for k, v in read_params(paths).items()}
    # A distributed run's ranks each log their metrics: the listing shows rank 0's.
    columns.update({r["name"]: r["value"] for r in records if r.get("rank", 0) == 0})
    return {"name": name, "columns": columns}


def status_name(status: str | Status | None) -> str | None:
    """A status as stored (``"Failed"``), from a :class:`Status` or its name in any case."""
    if status is None or isinstance(status, Status):
        return None if status is None else status.value
    for known in Status:
        if known.value.lower() == str(status).strip().lower():
            return known.value
    raise MlmagicError(
        f"status={status!r} is not a run status: use one of {', '.join(s.value for s in Status)}."
    )


def epoch_seconds(since: float | str | datetime | None) -> float | None:
    """``since`` as epoch seconds: a number, a :class:`~datetime.datetime` (naive means
    local time) or ISO 8601 text such as ``2026-12-01`` or ``2026-12-01T09:30``."""
    if since is None:
        return None
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        if not math.isfinite(since):
            raise MlmagicError(f"since={since}: give a time, like 2026-12-01 or 2026-12-01T09:30.")
        return float(since)
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since.strip())
        except ValueError:
            raise MlmagicError(
                f"since={since!r} is not a time: give a date like 2026-12-01, or a date and "
                "time like 2026-12-01T09:30."
            ) from None
    if isinstance(since, datetime):
        return since.timestamp()
    raise MlmagicError(
        f"since={since!r} is not a time: give a date like 2026-12-01, a datetime or epoch seconds."
    )


def run_frame(
    ws: Workspace,
    experiment: str | None = None,
    *,
    limit: int | None = None,
    since: float | str | datetime | None = None,
    status: str | Status | None = None,
) -> pd.DataFrame:
    """One row per run, newest first: the fixed columns, then ``param.<name>`` for each
    param and one column per metric (its last value); see :meth:`Runs.list`."""
    import numpy as np
    import pandas as pd

    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise MlmagicError(f"limit={limit}: give a number of runs, 0 or more (None for all).")
    rows = ws.store.run_table(
        experiment, limit, since=epoch_seconds(since), status=status_name(status)
    )
    columns = list(zip(*rows, strict=True)) or [()] * (len(_FIXED) + 1)
    fixed: dict[str, Any] = dict(zip(_FIXED, columns, strict=False))
    ids, names, statuses = fixed["id"], fixed["name"], fixed["status"]
    # One parse for all the cached summaries: thousands of json.loads cost more.
    summaries = json.loads(f"[{','.join(text or 'null' for text in columns[-1])}]")
    fresh: dict[str, dict[str, Any]] = {}
    if None in summaries:  # live runs, and ended ones not listed before
        for index, summary in enumerate(summaries):
            if summary is None:
                summary = summarize(RunPaths(ws.path("runs", ids[index])), names[index])
                if statuses[index] in _TERMINAL:
                    fresh[ids[index]] = summary
                summaries[index] = summary
    if fresh:
        ws.store.cache_summaries(fresh)
    fixed["name"] = [summary["name"] for summary in summaries]
    # From an array, not a list: pandas converts a list of floats one by one.
    fixed["created"] = pd.to_datetime(np.asarray(fixed["created"], dtype=float), unit="s")
    frame = pd.DataFrame(fixed, columns=_FIXED)
    if frame.empty:
        # pandas 2 (the last for Python 3.10) takes an empty index as no index fields.
        return frame
    values = pd.DataFrame.from_records(
        [summary["columns"] for summary in summaries], index=frame.index
    )
    # The fixed columns win over a param or metric of the same name.
    return pd.concat([frame, values.drop(columns=[c for c in _FIXED if c in values])], axis=1)
