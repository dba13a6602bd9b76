"""The table of runs (``ws.runs.list()``, ``%runs``, ``mlmagic run list``), at any scale.

A listing is one indexed query (the store filters, orders and limits) and, per run, what
the run logged: its params and the last value of each metric. Those come from the run's
own files, which stay the truth; once a run has ended its files no longer change, so the
first listing that reads them keeps the result in the store (the run's ``summary``) and
later listings read only the store. A live run is always read from its files. A workspace
keeps its last listings and patches them with the runs that changed since
(:class:`Listings`).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError
from mlmagic.run import untrusted
from mlmagic.run.columns import FIXED, RunColumns, summarize
from mlmagic.run.paths import RunPaths

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = [
    "Listings",
    "epoch_seconds",
    "read_params",
    "run_frame",
    "run_records",
    "status_name",
    "summarize",
]

#: A kept listing is patched unless more than this many rows, and more than this share of
#: its rows, changed; then making it again costs about the same.
_PATCH_ROWS, _PATCH_SHARE = 64, 0.25
#: How many listings (each its own arguments) a workspace keeps: ``%runs`` and an
#: experiment's listing side by side each stay cheap.
_KEPT = 4


def read_params(paths: RunPaths) -> dict[str, Any]:
    """The params the run logged with ``mlmagic_run.log_params`` (``{}`` when none, or
    when the file is not a JSON object or not a regular file: the run's log says so)."""
    return untrusted.read_json_object(paths, paths.params)


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
    """The listings of one workspace's runs, each kept and brought up to date.

    The store numbers every change to a run (:meth:`Store.run_changes`, kept by triggers
    in every process). A listing of every run keeps its columns (:class:`RunColumns`) with
    the number it was made at; asked again, it reads only the rows that changed since and
    the live runs' (:meth:`Store.run_table_changes`), patches its columns and makes the
    frame from them: one small query and one frame, not 10,000 rows read and parsed. When
    nothing changed and no run is live, the last frame is returned as a copy. A limited
    listing is made again after any change. The last few listings (each its own
    arguments) are kept.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._kept: dict[tuple[Any, ...], _Kept] = {}

    def frame(
        self,
        experiment: str | None = None,
        *,
        limit: int | None = None,
        since: float | str | datetime | None = None,
        status: str | Status | None = None,
    ) -> pd.DataFrame:
        """:func:`run_frame`, made from the kept listing with what changed since."""
        _check_limit(limit)
        since_epoch, status_value = epoch_seconds(since), status_name(status)
        key = (experiment, limit, since_epoch, status_value)
        store = self._ws.store
        # Read before the listing: a change landing in between is listed again next time
        # (patching is idempotent), never missed.
        changes = store.run_changes()
        # Taken out while it is brought up to date: a patch that fails leaves nothing kept.
        kept = self._kept.pop(key, None)
        if kept is not None and kept.changes == changes and not kept.columns.live:
            # The caller owns what it gets: a copy (values such as a list-valued param
            # are shared, as in any copy of a frame).
            self._kept[key] = kept
            return kept.frame.copy()
        if kept is not None:
            # A limited listing is cheap to make, and a patch would need the rows below it.
            kept = self._patched(kept, since_epoch, status_value) if limit is None else None
        with _no_collection():
            if kept is None:
                rows = store.run_table(experiment, limit, since=since_epoch, status=status_value)
                kept = _Kept(key, changes, RunColumns(self._ws, rows))
            frame = kept.columns.frame()
        kept.changes, kept.frame = changes, frame
        self._kept[key] = kept  # the newest last: the oldest goes first
        while len(self._kept) > _KEPT:
            del self._kept[next(iter(self._kept))]
        return frame.copy()

    def _patched(self, kept: _Kept, since: float | None, status: str | None) -> _Kept | None:
        """``kept`` with the rows changed since it was made, or ``None`` when making the
        listing again is as cheap or it cannot be patched (a run was deleted)."""
        experiment = kept.key[0]
        store = self._ws.store
        changed = store.run_table_changes(kept.changes, experiment, since=since, status=status)
        if len(changed) > max(_PATCH_ROWS, _PATCH_SHARE * len(kept.columns)):
            return None
        with _no_collection():
            kept.columns.patch(changed)
        # A deleted run takes no change number: it shows as a row too many.
        count = store.count_runs(experiment, since=since, status=status)
        return kept if count == len(kept.columns) else None


class _Kept:
    """One kept listing: its arguments, the change number it is up to date with, its
    columns and the frame made from them."""

    def __init__(self, key: tuple[Any, ...], changes: int, columns: RunColumns) -> None:
        import pandas as pd

        self.key, self.changes, self.columns = key, changes, columns
        self.frame = pd.DataFrame()


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
    with _no_collection():
        return RunColumns(ws, _rows(ws, experiment, limit, since, status)).frame()


def run_records(
    ws: Workspace,
    experiment: str | None = None,
    *,
    limit: int | None = None,
    since: float | str | datetime | None = None,
    status: str | Status | None = None,
    summaries: bool = True,
) -> list[dict[str, Any]]:
    """The rows of :func:`run_frame` as ``{column: value}``, ``created`` in epoch
    seconds, without pandas (a command's start stays short); with ``summaries=False``
    only the fixed columns, and no run's files are read."""
    rows = _rows(ws, experiment, limit, since, status)
    if not summaries:
        return [dict(zip(FIXED, row, strict=False)) for row in rows]
    with _no_collection():
        return RunColumns(ws, rows).records()


def _rows(
    ws: Workspace,
    experiment: str | None,
    limit: int | None,
    since: float | str | datetime | None,
    status: str | Status | None,
) -> list[tuple[Any, ...]]:
    """The store's listing rows (:meth:`Store.run_table`) for the API's arguments."""
    _check_limit(limit)
    return ws.store.run_table(
        experiment, limit, since=epoch_seconds(since), status=status_name(status)
    )


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise MlmagicError(f"limit={limit}: give a number of runs, 0 or more (None for all).")


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
