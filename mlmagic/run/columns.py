"""The columns of one listing of runs, kept between listings and patched with what changed.

A listing of every run of a large workspace reads 10,000 rows, parses their params and
metrics and makes a frame of them. Between two listings only a few runs change (a new
run, a status, a live run's metrics), so a listing keeps its columns as plain lists and,
when the store's change number moves, patches only the rows that changed since
(:meth:`Store.run_table_changes`). The frame is always made the same way, by
:meth:`RunColumns.frame` from these lists, so a patched listing has exactly the values,
dtypes, row order and column order of one made from scratch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlmagic.events import Status
from mlmagic.run import untrusted
from mlmagic.run.paths import RunPaths

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["FIXED", "TERMINAL", "RunColumns", "summarize"]

#: The columns every listing has, before the params and metrics of the runs, in the order
#: of the store's listing rows (:meth:`Store.run_table`).
FIXED = ("id", "experiment", "name", "status", "environment", "created", "duration", "exit_code")
#: The statuses of runs that have ended: their files no longer change.
TERMINAL = frozenset(s.value for s in Status if s.is_terminal)


def summarize(paths: RunPaths) -> dict[str, Any]:
    """What a listing shows of a run besides its record, as ``{column: value}``:
    ``param.<name>`` for each param, then each metric's last value.

    The last value of a metric is the last one in the file, as :attr:`Run.metrics` orders
    them (rank 0's, in a distributed run); floats (NaN and infinities included) survive
    the store's JSON exactly.
    """
    records, _ = untrusted.read_metrics(paths)
    params = untrusted.read_json_object(paths, paths.params)
    columns = {f"param.{k}": v for k, v in params.items()}
    # A distributed run's ranks each log their metrics: the listing shows rank 0's.
    columns.update({r["name"]: r["value"] for r in records if r.get("rank", 0) == 0})
    return columns


class RunColumns:
    """The rows of one listing as columns: :data:`FIXED`, then each param and metric.

    Parameters
    ----------
    ws
        The workspace whose runs these are (their files hold a live run's values).
    rows
        The store's listing rows (:meth:`Store.run_table`), newest first.

    Notes
    -----
    Rows are ordered as the store orders them: ``created`` then ``id``, both descending.
    A param or metric column lists NaN for a run without it; columns come in the order in
    which they first appear, newest run first; a param or metric named like a fixed column
    is left out (the fixed column wins).
    """

    def __init__(self, ws: Workspace, rows: Sequence[tuple[Any, ...]]) -> None:
        self._ws = ws
        columns = list(zip(*rows, strict=True)) or [()] * (len(FIXED) + 2)
        self.fixed: dict[str, list[Any]] = {
            n: list(c) for n, c in zip(FIXED, columns, strict=False)
        }
        #: Each row's param and metric names: the stored JSON text, or a tuple when read
        #: from the run's files. Runs with the same names share one group.
        self.names: list[Any] = list(columns[-2])
        self.values: dict[str, list[Any]] = self._transpose(self._parse(columns[-1]))
        #: The columns of the last frame made, and the names of those changed since
        #: (``None``: all of them): a frame converts only what changed.
        self._made: dict[str, pd.Series] = {}
        self._changed: set[str] | None = None

    def __len__(self) -> int:
        return len(self.fixed["id"])

    @property
    def live(self) -> bool:
        """Whether a run in the listing has not ended (its values come from its files)."""
        return not TERMINAL.issuperset(self.fixed["status"])

    def frame(self) -> pd.DataFrame:
        """The listing as a new frame (see :meth:`Runs.list`).

        Each column is converted from its list as pandas converts it, or, when it did not
        change since the last frame, taken from that frame (converting 10,000 values is
        most of a listing's cost; a status change touches one column)."""
        import numpy as np
        import pandas as pd

        lists: dict[str, list[Any]] = {**self.fixed, **self.values}
        changed = set(lists) if self._changed is None else self._changed
        changed |= lists.keys() - self._made.keys()
        data: dict[str, Any] = {name: lists[name] for name in lists if name in changed}
        if "created" in data:
            # From an array, not a list: pandas converts a list of floats one by one.
            data["created"] = pd.to_datetime(np.asarray(data["created"], dtype=float), unit="s")
        frame = pd.DataFrame(data)
        if len(data) < len(lists):
            made = {name: frame[name] if name in data else self._made[name] for name in lists}
            frame = pd.DataFrame(made)
        self._made = {name: frame[name] for name in lists}
        self._changed = set()
        return frame

    def records(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}``, as :meth:`frame` lists them (a run without a
        param or metric has NaN there) but ``created`` in epoch seconds: no frame made."""
        names = [*self.fixed, *self.values]
        columns = [*self.fixed.values(), *self.values.values()]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def patch(self, changed: Sequence[tuple[Any, ...]]) -> None:
        """Bring the columns up to date with ``changed``: rows of the store's listing that
        changed, and the rows of live runs, each followed by whether it belongs in this
        listing (:meth:`Store.run_table_changes`). A row in the listing is replaced, moved
        or dropped; a new one is placed where the store orders it."""
        ids, created = self.fixed["id"], self.fixed["created"]
        for *row, belongs in changed:
            at = _index(ids, row[0])
            if at is not None and (not belongs or created[at] != row[5]):
                self._drop(at)
                at = None
            if not belongs:
                continue
            names, values = self._parse([row[-1]], [row[-2]], [row])[0]
            if at is None:
                at = self._place(row[5], row[0])
                for index, column in enumerate(self.fixed.values()):
                    column.insert(at, row[index])
                self.names.insert(at, names)
                for column in self.values.values():
                    column.insert(at, math.nan)
                self._changed = None  # every column moved
            else:
                for index, (name, column) in enumerate(self.fixed.items()):
                    self._set(name, column, at, row[index])
                self.names[at] = names
            listed = dict(zip(_names(names), values, strict=True))
            for name, column in self.values.items():
                self._set(name, column, at, listed.pop(name, math.nan))
            for name, value in listed.items():
                if name not in self.fixed:
                    self.values[name] = [math.nan] * len(ids)
                    self._set(name, self.values[name], at, value)
        self._reorder()

    # -- inside ---------------------------------------------------------------------------

    def _parse(
        self,
        values: Sequence[str | None],
        names: Sequence[Any] | None = None,
        rows: Sequence[Sequence[Any]] | None = None,
    ) -> list[tuple[Any, list[Any]]]:
        """Each row's ``(names, values)``: from the store's JSON text, or from the run's
        files for a run with none stored yet (those that have ended get theirs stored)."""
        names = self.names if names is None else names
        # One parse for all the rows: thousands of json.loads cost more.
        parsed: list[list[Any] | None] = json.loads(f"[{','.join(v or 'null' for v in values)}]")
        if None not in parsed:  # every row stored: the common case, at any size
            return list(zip(names, parsed, strict=True))  # type: ignore[arg-type]
        out: list[tuple[Any, list[Any]]] = []
        fresh: dict[str, dict[str, Any]] = {}
        for index, (found, found_names) in enumerate(zip(parsed, names, strict=True)):
            if found is not None:
                out.append((found_names, found))
                continue
            # A live run, or an ended one not listed before: its files.
            row = rows[index] if rows is not None else None
            run_id = row[0] if row is not None else self.fixed["id"][index]
            status = row[3] if row is not None else self.fixed["status"][index]
            summary = summarize(RunPaths(self._ws.path("runs", run_id)))
            if status in TERMINAL:
                fresh[run_id] = summary
            out.append((tuple(summary), list(summary.values())))
        if fresh:
            self._ws.store.cache_summaries(fresh)
        return out

    def _transpose(self, rows: list[tuple[Any, list[Any]]]) -> dict[str, list[Any]]:
        """The rows' params and metrics as columns, NaN where a run has none."""
        self.names = [names for names, _ in rows]
        # Runs that logged the same names make one group: its columns come out of one
        # transposition. Groups keep the order of their newest run, so the columns keep
        # the order in which they first appear.
        groups: dict[Any, list[int]] = {}
        for index, names in enumerate(self.names):
            groups.setdefault(names, []).append(index)
        out: dict[str, list[Any]] = {}
        whole = len(groups) == 1
        for names, positions in groups.items():
            block = zip(*(rows[i][1] for i in positions), strict=True)
            for name, column in zip(_names(names), block, strict=True):
                if name in self.fixed:
                    continue
                if whole:
                    out[name] = list(column)
                    continue
                target = out.setdefault(name, [math.nan] * len(rows))
                for position, value in zip(positions, column, strict=True):
                    target[position] = value
        return out

    def _drop(self, at: int) -> None:
        for column in (*self.fixed.values(), self.names, *self.values.values()):
            del column[at]
        self._changed = None

    def _set(self, name: str, column: list[Any], at: int, value: Any) -> None:
        """``column[at] = value``, noting the column as changed unless it holds that
        value already (the same type too: ``True`` and ``1`` make different columns)."""
        old = column[at]
        if old is value or (type(old) is type(value) and old == value):
            return
        column[at] = value
        if self._changed is not None:
            self._changed.add(name)

    def _place(self, created: float, run_id: str) -> int:
        """Where a run goes: the store's order, ``created`` then ``id``, both descending."""
        times, ids = self.fixed["created"], self.fixed["id"]
        low, high = 0, len(ids)
        while low < high:
            middle = (low + high) // 2
            if (times[middle], ids[middle]) > (created, run_id):
                low = middle + 1
            else:
                high = middle
        return low

    def _reorder(self) -> None:
        """Columns in the order of their first appearance; none that no run has."""
        order: dict[str, None] = {}
        for names in dict.fromkeys(self.names):  # each group once, newest first
            order.update(dict.fromkeys(n for n in _names(names) if n not in self.fixed))
        if list(order) != list(self.values):
            self.values = {name: self.values[name] for name in order}


def _names(names: Any) -> Sequence[str]:
    """A row's param and metric names, from the stored JSON text or a tuple."""
    return json.loads(names) if isinstance(names, str) else names


def _index(items: list[Any], item: Any) -> int | None:
    try:
        return items.index(item)
    except ValueError:
        return None
