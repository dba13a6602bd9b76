"""The table of runs (``ws.runs.list()``, ``%runs``, ``mlmagic run list``), at any scale.

A listing is one indexed query (the store filters, orders and limits) and, per run, what
the run logged: its params and the last value of each metric. Those come from the run's
own files, which stay the truth; once a run has ended its files no longer change, so the
first listing that reads them keeps the result in the store (the run's ``summary``) and
later listings read only the store. A live run is always read from its files.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError
from mlmagic.run import untrusted
from mlmagic.run.paths import RunPaths

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["Listings", "epoch_seconds", "read_params", "run_frame", "status_name", "summarize"]

#: The columns every listing has, before the params and metrics of the runs.
_FIXED = ("id", "experiment", "name", "status", "environment", "created", "duration", "exit_code")
_TERMINAL = frozenset(s.value for s in Status if s.is_terminal)


def read_params(paths: RunPaths) -> dict[str, Any]:
    """The params the run logged with ``mlmagic_run.log_params`` (``{}`` when none, or
    when the file is not a JSON object or not a regular file: the run's log says so)."""
    return untrusted.read_json_object(paths, paths.params)


def summarize(paths: RunPaths) -> dict[str, Any]:
    """What a listing shows of a run besides its record, as ``{column: value}``:
    ``param.<name>`` for each param, then each metric's last value.

    The last value of a metric is the last one in the file, as :attr:`Run.metrics` orders
    them (rank 0's, in a distributed run); floats (NaN and infinities included) survive
    the store's JSON exactly.
    """
    records, _ = untrusted.read_metrics(paths)
    columns = {f"param.{k}": v for k, v in read_params(paths).items()}
    # A distributed run's ranks each log their metrics: the listing shows rank 0's.
    columns.update({r["name"]: r["value"] for r in records if r.get("rank", 0) == 0})
    return columns


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


class Listings:
    """The listings of one workspace's runs, each frame kept until any run changes.

    A frame lists only what the store holds and, for a live run, what its files hold. The
    store numbers every change to a run (:meth:`Store.run_changes`, kept by triggers in
    every process), so the last frame with no live run in it stays right until that
    number moves: asking again costs one lookup and a copy, whatever the workspace's size.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._kept: tuple[tuple[Any, ...], int, pd.DataFrame] | None = None

    def frame(
        self,
        experiment: str | None = None,
        *,
        limit: int | None = None,
        since: float | str | datetime | None = None,
        status: str | Status | None = None,
    ) -> pd.DataFrame:
        """:func:`run_frame`, or a copy of the same frame when no run has changed since."""
        key = (experiment, limit, epoch_seconds(since), status_name(status))
        # Read before the listing: a change landing in between makes the next call list
        # again, never keeps a frame that misses it.
        changes = self._ws.store.run_changes()
        kept = self._kept
        if kept is not None and kept[0] == key and kept[1] == changes:
            # The caller owns what it gets: a copy (values such as a list-valued param
            # are shared, as in any copy of a frame).
            return kept[2].copy()
        frame = run_frame(self._ws, experiment, limit=limit, since=since, status=status)
        live = not frame["status"].isin(list(_TERMINAL)).all()
        self._kept = None if live else (key, changes, frame.copy())
        return frame


def run_frame(
    ws: Workspace,
    experiment: str | None = None,
    *,
    limit: int | None = None,
    since: float | str | datetime | None = None,
    status: str | Status | None = None,
) -> pd.DataFrame:
    """One row per run, newest first: the fixed columns, then ``param.<name>`` for each
    param and one column per metric (its last value); see :meth:`Runs.list`.

    The frame is the one pandas makes from one record per run (columns in the order they
    first appear, newest run first; a run without a column has NaN there), built column
    by column: a listing of every run of a large workspace is one query, one JSON parse
    and one frame, with no Python work per value but a copy.
    """
    import numpy as np
    import pandas as pd

    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise MlmagicError(f"limit={limit}: give a number of runs, 0 or more (None for all).")
    since_epoch, status_value = epoch_seconds(since), status_name(status)
    with _no_collection():
        rows = ws.store.run_table(experiment, limit, since=since_epoch, status=status_value)
        columns = list(zip(*rows, strict=True)) or [()] * (len(_FIXED) + 2)
        data: dict[str, Any] = dict(zip(_FIXED, columns, strict=False))
        # From an array, not a list: pandas converts a list of floats one by one.
        data["created"] = pd.to_datetime(np.asarray(data["created"], dtype=float), unit="s")
        for name, values in _value_columns(ws, data, columns[-2], columns[-1]).items():
            if name not in data:  # the fixed columns win over a param or metric of that name
                data[name] = values
        return pd.DataFrame(data)


@contextmanager
def _no_collection() -> Iterator[None]:
    """No cyclic garbage collection inside: a listing makes a hundred thousand objects
    that all live on, and each few hundred of them would start a collection that walks
    them (and the rest of the process) to free nothing; at 10,000 runs that was a third of
    the listing's time. Reference counting still frees everything at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _value_columns(
    ws: Workspace, fixed: dict[str, Any], keys: tuple[Any, ...], values: tuple[Any, ...]
) -> dict[str, list[Any]]:
    """The params and metrics of the rows as columns (NaN where a run has none), from the
    stored summaries (``keys``, ``values``: JSON text per row), or from the run's files
    for a run that has none yet (those that have ended get theirs stored)."""
    # One parse for all the rows: thousands of json.loads cost more.
    rows: list[list[Any] | None] = json.loads(f"[{','.join(v or 'null' for v in values)}]")
    row_keys: list[Any] = list(keys)
    fresh: dict[str, dict[str, Any]] = {}
    if None in rows:  # live runs, and ended ones not listed before
        for index, found in enumerate(rows):
            if found is None:
                run_id = fixed["id"][index]
                summary = summarize(RunPaths(ws.path("runs", run_id)))
                if fixed["status"][index] in _TERMINAL:
                    fresh[run_id] = summary
                row_keys[index], rows[index] = tuple(summary), list(summary.values())
    if fresh:
        ws.store.cache_summaries(fresh)
    # Runs that logged the same names make one group: its columns come out of one
    # transposition. Groups keep the order of their newest run, so the columns keep
    # the order in which they first appear.
    groups: dict[Any, list[int]] = {}
    for index, names in enumerate(row_keys):
        groups.setdefault(names, []).append(index)
    out: dict[str, list[Any]] = {}
    whole = len(groups) == 1
    for names, positions in groups.items():
        names = json.loads(names) if isinstance(names, str) else names
        block = zip(*(rows[i] for i in positions), strict=True)
        for name, column in zip(names, block, strict=True):
            if whole:
                out[name] = list(column)
                continue
            target = out.setdefault(name, [math.nan] * len(rows))
            for position, value in zip(positions, column, strict=True):
                target[position] = value
    return out
