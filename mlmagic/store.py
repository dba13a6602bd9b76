"""The workspace's SQLite database: schema, migrations and queries.

One file, WAL mode, a busy timeout, and every write in a short ``BEGIN IMMEDIATE``
transaction, so several kernels, the CLI and the Jupyter server can use one workspace at
once. A connection is opened per thread (sqlite3 connections are not shared across
threads). Runs and services come back as typed records (:mod:`mlmagic.records`);
environments and models as plain dicts with their JSON columns decoded.

The schema's version is SQLite's ``user_version``. Opening an older database migrates it
in place, in one transaction; a newer one (written by a newer mlmagic) is refused with one
line that says to upgrade, and is never changed.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlmagic.deploy.config import ServiceConfig
from mlmagic.events import Status
from mlmagic.exceptions import MlmagicError
from mlmagic.records import KEY_NAMES, RunRecord, ServiceRecord
from mlmagic.run.config import RunConfig

__all__ = ["SCHEMA_VERSION", "Store", "summary_columns"]

#: The version of the schema this code reads and writes.
SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE environments (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    image TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    size INTEGER,
    packages TEXT,
    dockerfile TEXT NOT NULL,
    error TEXT,
    log_path TEXT,
    venv TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    env_name TEXT,
    env_version INTEGER,
    image TEXT,
    config TEXT NOT NULL,
    handle TEXT,
    owner TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    error TEXT,
    failed_stage TEXT,
    snapshot_files INTEGER,
    snapshot_bytes INTEGER,
    changed INTEGER NOT NULL DEFAULT 0,
    summary_keys TEXT,
    summary_values TEXT
);
CREATE INDEX runs_by_experiment ON runs (experiment, created);
CREATE TABLE stages (
    run_id TEXT NOT NULL REFERENCES runs (id),
    stage TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    PRIMARY KEY (run_id, stage)
);
CREATE TABLE models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    run_id TEXT,
    experiment TEXT,
    env_name TEXT,
    env_version INTEGER,
    tags TEXT NOT NULL,
    description TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE services (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    config TEXT NOT NULL,
    image TEXT,
    handle TEXT,
    url TEXT NOT NULL,
    key_hashes TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    error TEXT
);
"""

_JSON_COLUMNS = frozenset({"spec", "packages", "config", "tags", "key_hashes", "options"})

#: The columns of a :class:`RunRecord`; ``name`` (also in the config), ``changed`` and the
#: ``summary_*`` columns serve listings only.
_RUN_COLUMNS = ", ".join(f.name for f in dataclasses.fields(RunRecord))
_TERMINAL = "('Completed', 'Failed', 'Canceled')"

#: Every change to a run's row that a listing shows takes the next number of the
#: ``changes`` counter into ``runs.changed``, so a poller asks only for rows past the
#: number it last saw. Triggers do it, so no writer (in any process, of any version that
#: knows schema 3) can forget. Caching a summary is no change: it lists the same values.
_CHANGE_TRACKING = (
    "CREATE TABLE IF NOT EXISTS changes (what TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO changes (what, seq) VALUES ('runs', 0)",
    "CREATE INDEX IF NOT EXISTS runs_by_change ON runs (changed)",
    # Live runs are few: the panel's poll finds them without reading the others.
    f"CREATE INDEX IF NOT EXISTS runs_live ON runs (created) WHERE status NOT IN {_TERMINAL}",
    """CREATE TRIGGER IF NOT EXISTS runs_inserted AFTER INSERT ON runs BEGIN
        UPDATE changes SET seq = seq + 1 WHERE what = 'runs';
        UPDATE runs SET changed = (SELECT seq FROM changes WHERE what = 'runs')
            WHERE id = NEW.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS runs_updated AFTER UPDATE OF id, experiment, name, status,
        env_name, env_version, image, config, handle, owner, cancel_requested, created,
        started, ended, exit_code, error, failed_stage, snapshot_files, snapshot_bytes
        ON runs BEGIN
        UPDATE changes SET seq = seq + 1 WHERE what = 'runs';
        UPDATE runs SET changed = (SELECT seq FROM changes WHERE what = 'runs')
            WHERE id = NEW.id;
    END""",
)

#: A listing of every run reads this index alone, newest first, never the runs' wide rows
#: (their configs): it holds every column a listing shows. It also serves ``since``.
_LISTING_INDEX = (
    "CREATE INDEX IF NOT EXISTS runs_listing ON runs (created, id, experiment, name, status, "
    "env_name, env_version, started, ended, exit_code, summary_keys, summary_values)"
)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _rebuild(db: sqlite3.Connection, table: str, create: str, columns: str) -> None:
    """Give ``table`` the definition ``create`` (of ``<table>_new``), keeping ``columns``."""
    db.execute(create)
    db.execute(f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}")
    db.execute(f"DROP TABLE {table}")
    db.execute(f"ALTER TABLE {table}_new RENAME TO {table}")


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Schema 1 → 2: script, args, name, tags and target of a run live only in its config
    (where schema 1 also kept them); the never-read ``environments.built`` and
    ``services.updated`` go; key digests are stored by key name, not by position."""
    new = {
        stmt.split()[2]: stmt for stmt in _statements(_SCHEMA) if stmt.startswith("CREATE TABLE")
    }
    for table, dropped in (
        ("environments", {"built"}),
        ("runs", {"script", "args", "name", "tags", "target"}),
        ("services", {"updated"}),
    ):
        old = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        kept = ", ".join(c for c in old if c not in dropped)
        create = new[table].replace(f"CREATE TABLE {table} ", f"CREATE TABLE {table}_new ", 1)
        _rebuild(db, table, create, kept)
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, created)")
    for name, hashes in db.execute("SELECT name, key_hashes FROM services").fetchall():
        listed = json.loads(hashes or "[]")
        if isinstance(listed, list):
            named = dict(zip(KEY_NAMES, listed, strict=False))
            db.execute(
                "UPDATE services SET key_hashes = ? WHERE name = ?", (json.dumps(named), name)
            )


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Schema 2 → 3: runs get a cached ``summary`` (last metrics, params) for listings and
    a ``changed`` number kept by triggers, with the indexes listings and polls need.

    Existing rows are numbered in the order they were made; their summaries are filled
    the first time they are listed (from the run's own files, which stay the truth).
    """
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "summary" not in have:
        db.execute("ALTER TABLE runs ADD COLUMN summary TEXT")
    if "changed" not in have:
        db.execute("ALTER TABLE runs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE runs SET changed = rowid")
    for statement in _CHANGE_TRACKING:
        db.execute(statement)
    db.execute(
        "UPDATE changes SET seq = (SELECT IFNULL(MAX(changed), 0) FROM runs) WHERE what = 'runs'"
    )


def _migrate_3_to_4(db: sqlite3.Connection) -> None:
    """Schema 3 → 4: what a listing shows of a run lives in columns a listing reads without
    parsing a document per run: the run's ``name`` (from its config), and the cached
    summary as ``summary_keys`` and ``summary_values`` (two JSON arrays: runs with the same
    params and metrics have the same keys, so a listing turns them into columns at once);
    one covering index serves a listing of every run.

    Existing rows are filled from their config and their schema 3 ``summary``, which goes.
    """
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for column in ("name", "summary_keys", "summary_values"):
        if column not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
    # Filling columns changes nothing a listing shows: no change number (the rebuild
    # below makes the trigger again).
    db.execute("DROP TRIGGER IF EXISTS runs_updated")
    db.execute("UPDATE runs SET name = json_extract(config, '$.name')")
    if "summary" in have:
        rows = db.execute("SELECT id, summary FROM runs WHERE summary IS NOT NULL").fetchall()
        # json, not SQLite's JSON functions: summaries keep NaN and infinities, which
        # Python writes and reads but strict JSON does not allow.
        db.executemany(
            "UPDATE runs SET summary_keys = ?, summary_values = ? WHERE id = ?",
            [(*summary_columns(json.loads(text)["columns"]), run_id) for run_id, text in rows],
        )
    # Rebuilt (not ALTER TABLE DROP COLUMN, which SQLite before 3.35 lacks) without
    # ``summary``; the rebuild drops the table's indexes and triggers, made again below.
    new = next(s for s in _statements(_SCHEMA) if s.startswith("CREATE TABLE runs "))
    create = new.replace("CREATE TABLE runs ", "CREATE TABLE runs_new ", 1)
    kept = [row[1] for row in db.execute("PRAGMA table_info(runs)") if row[1] != "summary"]
    _rebuild(db, "runs", create, ", ".join(kept))
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, created)")
    for statement in (*_CHANGE_TRACKING, _LISTING_INDEX):
        db.execute(statement)


#: Computes (Ray clusters attached or started, see :mod:`mlmagic.computes`): a name, a
#: kind, the address its jobs go to, and the rest as JSON (``options``). A token is never
#: here, only the name of the variable (or the file) that holds it.
_COMPUTES = """CREATE TABLE IF NOT EXISTS computes (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
)"""


def _migrate_4_to_5(db: sqlite3.Connection) -> None:
    """Schema 4 → 5: the ``computes`` table (new; nothing else changes)."""
    db.execute(_COMPUTES)


#: ``_MIGRATIONS[n]`` takes a database from schema ``n`` to ``n + 1``.
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
}


def summary_columns(columns: Mapping[str, Any]) -> tuple[str, str]:
    """A run's listed params and metrics (``{column: value}``) as stored: the JSON arrays
    of their names and of their values, in the same order."""
    return json.dumps(list(columns)), json.dumps(list(columns.values()))


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for key in _JSON_COLUMNS & data.keys():
        if data[key] is not None:
            data[key] = json.loads(data[key])
    return data


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    encoded = {}
    for key, value in values.items():
        if isinstance(value, (RunConfig, ServiceConfig)):
            value = value.to_dict()
        elif isinstance(value, Status):
            value = value.value
        if key in _JSON_COLUMNS and value is not None:
            value = json.dumps(value)
        encoded[key] = value
    return encoded


def _run(row: sqlite3.Row) -> RunRecord:
    data = _decode(row)
    data["config"] = RunConfig.from_dict(data["config"])
    data["status"] = Status(data["status"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return RunRecord(**data)


def _service(row: sqlite3.Row) -> ServiceRecord:
    data = _decode(row)
    data["config"] = ServiceConfig.from_dict(data["config"])
    return ServiceRecord(**data)


def _run_filter(
    experiment: str | None,
    since: float | None,
    changed_after: int | None,
    limit: int | None,
    status: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The ``WHERE`` clause and parameters of a runs query (each condition has an index,
    but ``status``, which narrows what the others found)."""
    conditions, params = _run_conditions(experiment, since, status)
    if changed_after is not None:
        conditions.append("changed > :changed_after")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return where, {
        **params,
        "changed_after": changed_after,
        "limit": -1 if limit is None else limit,
    }


def _run_conditions(
    experiment: str | None, since: float | None, status: str | None
) -> tuple[list[str], dict[str, Any]]:
    """The conditions (SQL) and parameters of a listing's filter."""
    conditions = []
    if experiment is not None:
        conditions.append("experiment = :experiment")
    if status is not None:
        conditions.append("status = :status")
    if since is not None:
        conditions.append("created >= :since")
    return conditions, {"experiment": experiment, "status": status, "since": since}


#: What a listing row holds (:meth:`Store.run_table`), computed by SQLite.
_LISTING_COLUMNS = (
    "id, experiment, name, status, env_name || ':' || env_version, created, "
    "CASE WHEN started AND ended THEN ended - started END, exit_code, summary_keys, "
    "summary_values"
)


def _check_not_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise MlmagicError(
            f"This workspace was written by a newer mlmagic (schema {version}, this one reads "
            f"up to {SCHEMA_VERSION}): upgrade mlmagic with `pip install -U mlmagic`."
        )


class Store:
    """The database of one workspace.

    Parameters
    ----------
    path
        The SQLite file; created with its schema when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._open()

    def _open(self) -> None:
        """Create the schema, or migrate an older one; refuse a newer one."""
        db = self._connection()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        _check_not_newer(version)
        # Foreign keys are off while tables are rebuilt (SQLite's documented procedure);
        # the pragma has no effect inside a transaction, so it is set around it.
        db.execute("PRAGMA foreign_keys=OFF")
        try:
            with self.transaction() as tx:
                # Read again under the lock: another process may have done it meanwhile.
                version = tx.execute("PRAGMA user_version").fetchone()[0]
                _check_not_newer(version)
                if version == 0:
                    for statement in [
                        *_statements(_SCHEMA),
                        *_CHANGE_TRACKING,
                        _LISTING_INDEX,
                        _COMPUTES,
                    ]:
                        tx.execute(statement)
                for step in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                    _MIGRATIONS[step](tx)
                if tx.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise MlmagicError(
                        f"The workspace database {self.path} has stages of runs that do not "
                        "exist; it was not changed. Restore it from a backup, or move it "
                        "away to start a new workspace."
                    )
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            db.execute("PRAGMA foreign_keys=ON")

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            except sqlite3.Error as exc:
                raise MlmagicError(
                    f"Cannot open the workspace database {self.path}: {exc}. Check the "
                    "folder exists and is writable, or set MLMAGIC_WORKSPACE."
                ) from exc
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock at once (no upgrade deadlocks)."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        row = self._connection().execute(sql, params).fetchone()
        return _decode(row) if row else None

    def _all(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return [_decode(r) for r in self._connection().execute(sql, params).fetchall()]

    def _update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        if not values:
            return
        sets = ", ".join(f"{k} = :set_{k}" for k in values)
        cond = " AND ".join(f"{k} = :where_{k}" for k in where)
        params = {f"set_{k}": v for k, v in _encode(values).items()}
        params.update({f"where_{k}": v for k, v in where.items()})
        with self.transaction() as db:
            db.execute(f"UPDATE {table} SET {sets} WHERE {cond}", params)

    # -- environments -----------------------------------------------------------------

    def register_environment(self, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The latest version of ``name`` if its cache key matches, else a new version.

        ``values`` holds the columns of a new version (spec, cache_key, image, status,
        dockerfile). Checking and inserting happen in one transaction, so two kernels
        registering at once agree on the version numbers.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT * FROM environments WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row is not None and row["cache_key"] == values["cache_key"]:
                return _decode(row)
            version = row["version"] + 1 if row else 1
            columns = {**_encode(values), "name": name, "version": version, "created": time.time()}
            names = ", ".join(columns)
            marks = ", ".join(f":{k}" for k in columns)
            db.execute(f"INSERT INTO environments ({names}) VALUES ({marks})", columns)
        found = self.environment(name, version)
        assert found is not None
        return found

    def environment(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version of an environment (the latest when ``version`` is ``None``)."""
        if version is None:
            return self._one(
                "SELECT * FROM environments WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            )
        return self._one(
            "SELECT * FROM environments WHERE name = ? AND version = ?", (name, version)
        )

    def environments(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every version of every environment (or of ``name``), newest first."""
        if name is None:
            return self._all("SELECT * FROM environments ORDER BY name, version DESC")
        return self._all("SELECT * FROM environments WHERE name = ? ORDER BY version DESC", (name,))

    def delete_environment(self, name: str, version: int) -> None:
        """Forget one environment version."""
        with self.transaction() as db:
            db.execute("DELETE FROM environments WHERE name = ? AND version = ?", (name, version))

    def environment_table(self) -> list[dict[str, Any]]:
        """Every version of every environment as listed: name, version, image, status,
        created, size, venv (not the spec, packages or Dockerfile); by name, newest first."""
        rows = self._connection().execute(
            "SELECT name, version, image, status, created, size, venv FROM environments "
            "ORDER BY name, version DESC"
        )
        return [dict(r) for r in rows.fetchall()]

    def update_environment(self, name: str, version: int, **values: Any) -> None:
        """Change columns of one environment version."""
        self._update("environments", {"name": name, "version": version}, values)

    # -- runs -------------------------------------------------------------------------

    def insert_run(self, record: RunRecord) -> None:
        """Record a new run."""
        values = {
            "id": record.id,
            "experiment": record.experiment,
            "name": record.config.name,
            "status": record.status,
            "env_name": record.env_name,
            "env_version": record.env_version,
            "image": record.image,
            "config": record.config,
            "owner": record.owner,
            "created": record.created or time.time(),
            "snapshot_files": record.snapshot_files,
            "snapshot_bytes": record.snapshot_bytes,
        }
        columns = _encode(values)
        names = ", ".join(columns)
        marks = ", ".join(f":{k}" for k in columns)
        with self.transaction() as db:
            db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", columns)

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or ``None``."""
        row = (
            self._connection()
            .execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
            .fetchone()
        )
        return _run(row) if row else None

    def runs(
        self,
        experiment: str | None = None,
        limit: int | None = None,
        *,
        since: float | None = None,
        changed_after: int | None = None,
        status: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first: of one ``experiment``, in one ``status``, created at or
        after ``since`` (epoch seconds), changed after the :meth:`run_changes` number
        ``changed_after``; at most ``limit`` of them."""
        where, params = _run_filter(experiment, since, changed_after, limit, status)
        # Few rows change between two polls: find them by their change number, not by
        # walking every run in the order of the listing (SQLite's guess without
        # statistics, which reads all 10,000 rows of a large workspace).
        index = "INDEXED BY runs_by_change" if changed_after is not None else ""
        rows = self._connection().execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {index} {where} ORDER BY created DESC LIMIT :limit",
            params,
        )
        return [_run(r) for r in rows.fetchall()]

    def run_table(
        self,
        experiment: str | None = None,
        limit: int | None = None,
        *,
        since: float | None = None,
        status: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """What a listing of runs shows, newest first, filtered as :meth:`runs` does.

        Each row is ``(id, experiment, name, status, environment, created, duration,
        exit_code, summary_keys, summary_values)``, computed by SQLite: ``environment`` is
        ``name:version``, ``duration`` seconds from start to end (``None`` until both are
        known), and the ``summary_*`` the JSON text kept by :meth:`cache_summaries`, or
        ``None``. Nothing is decoded, and a listing of every run reads one index, so
        thousands of rows cost one query.
        """
        where, params = _run_filter(experiment, since, None, limit, status)
        cursor = self._connection().cursor()
        cursor.row_factory = None  # plain tuples: a listing of 10,000 rows is half the cost
        # ``id`` breaks ties, so a kept listing knows where a new run goes (the covering
        # index holds ``created, id`` in that order: no sort).
        return cursor.execute(
            f"SELECT {_LISTING_COLUMNS} FROM runs {where} ORDER BY created DESC, id DESC "
            "LIMIT :limit",
            params,
        ).fetchall()

    def run_table_changes(
        self,
        changed_after: int,
        experiment: str | None = None,
        *,
        since: float | None = None,
        status: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """The rows of :meth:`run_table` that changed after the :meth:`run_changes` number
        ``changed_after``, and the rows of every live run (its files change, its row need
        not), whatever the filter: each ends with ``1`` when the row passes the filter of
        :meth:`run_table` (``experiment``, ``since``, ``status``), else ``0``, so a kept
        listing can drop a run that left it. Found through two indexes, not by reading
        every run."""
        conditions, params = _run_conditions(experiment, since, status)
        belongs = f"({' AND '.join(conditions)})" if conditions else "1"
        cursor = self._connection().cursor()
        cursor.row_factory = None
        return cursor.execute(
            f"SELECT {_LISTING_COLUMNS}, {belongs} FROM runs INDEXED BY runs_by_change "
            f"WHERE changed > :changed_after UNION SELECT {_LISTING_COLUMNS}, {belongs} "
            f"FROM runs WHERE status NOT IN {_TERMINAL}",
            {**params, "changed_after": changed_after},
        ).fetchall()

    def count_runs(
        self,
        experiment: str | None = None,
        *,
        since: float | None = None,
        status: str | None = None,
    ) -> int:
        """How many runs :meth:`run_table` lists with these filters (and no limit)."""
        where, params = _run_filter(experiment, since, None, None, status)
        return int(
            self._connection().execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()[0]
        )

    def live_run_ids(self) -> list[str]:
        """The ids of the runs that have not ended (found through their own index)."""
        rows = self._connection().execute(
            f"SELECT id FROM runs WHERE status NOT IN {_TERMINAL} ORDER BY created DESC"
        )
        return [r[0] for r in rows.fetchall()]

    def run_changes(self) -> int:
        """The number of the latest change to any run; it only grows."""
        row = self._connection().execute("SELECT seq FROM changes WHERE what = 'runs'").fetchone()
        return int(row[0]) if row else 0

    def cache_summaries(self, summaries: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep what listings show of ended runs (``{run_id: {column: value}}``, their params
        and last metrics; see :func:`summary_columns`), in one transaction.

        Only a run that has ended and has no summary yet gets one: its files no longer
        change, and a summary once written is never replaced.
        """
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET summary_keys = ?, summary_values = ? WHERE id = ? "
                f"AND status IN {_TERMINAL} AND summary_keys IS NULL",
                [(*summary_columns(columns), run_id) for run_id, columns in summaries.items()],
            )

    def cancel_requested(self, run_id: str) -> bool:
        """Whether someone asked the run to stop (``True`` for a run that is gone)."""
        row = (
            self._connection()
            .execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,))
            .fetchone()
        )
        return row is None or bool(row[0])

    def update_run(self, run_id: str, **values: Any) -> None:
        """Change columns of a run."""
        self._update("runs", {"id": run_id}, values)

    def finish_run(self, run_id: str, **values: Any) -> bool:
        """Close a live run's record once; ``False`` if another process already did.

        The terminal status is written only while the stored status is not terminal,
        so whichever process sees the end first closes the record and the others change
        nothing.
        """
        columns = _encode(values)
        sets = ", ".join(f"{k} = :{k}" for k in columns)
        with self.transaction() as db:
            cursor = db.execute(
                f"UPDATE runs SET {sets} WHERE id = :run_id "
                "AND status NOT IN ('Completed', 'Failed', 'Canceled')",
                {**columns, "run_id": run_id},
            )
            if cursor.rowcount:
                db.execute(
                    "UPDATE stages SET ended = :ended WHERE run_id = :run_id AND ended IS NULL",
                    {"ended": values.get("ended", time.time()), "run_id": run_id},
                )
            return cursor.rowcount == 1

    def start_stage(self, run_id: str, stage: str, when: float | None = None) -> bool:
        """End the run's open stage and start ``stage``; ``False`` if the run has ended."""
        when = time.time() if when is None else when
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ? WHERE id = ? "
                "AND status NOT IN ('Completed', 'Failed', 'Canceled')",
                (stage, run_id),
            )
            if cursor.rowcount == 0:
                return False
            db.execute(
                "UPDATE stages SET ended = ? WHERE run_id = ? AND ended IS NULL", (when, run_id)
            )
            db.execute(
                "INSERT OR REPLACE INTO stages (run_id, stage, started) VALUES (?, ?, ?)",
                (run_id, stage, when),
            )
        return True

    def stages(self, run_id: str) -> list[dict[str, Any]]:
        """The stages of a run, in the order they started."""
        return self._all("SELECT * FROM stages WHERE run_id = ? ORDER BY started", (run_id,))

    # -- models -----------------------------------------------------------------------

    def add_model_version(
        self, name: str, values: Mapping[str, Any], place: Callable[[int], str]
    ) -> int:
        """Record the next version of model ``name``; return it.

        ``place(version)`` moves the files to their final folder and returns the path
        stored; it runs inside the transaction, so two processes never take one number.
        """
        with self.transaction() as db:
            row = db.execute("SELECT MAX(version) FROM models WHERE name = ?", (name,)).fetchone()
            version = (row[0] or 0) + 1
            columns = _encode(
                {
                    **values,
                    "name": name,
                    "version": version,
                    "path": place(version),
                    "created": time.time(),
                }
            )
            names = ", ".join(columns)
            marks = ", ".join(f":{k}" for k in columns)
            db.execute(f"INSERT INTO models ({names}) VALUES ({marks})", columns)
        return version

    def model(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version of a model (the latest when ``version`` is ``None``)."""
        if version is None:
            return self._one(
                "SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            )
        return self._one("SELECT * FROM models WHERE name = ? AND version = ?", (name, version))

    def models(self) -> list[dict[str, Any]]:
        """Every model version, by name, newest first."""
        return self._all("SELECT * FROM models ORDER BY name, version DESC")

    def delete_model(self, name: str, version: int) -> None:
        """Forget one model version."""
        with self.transaction() as db:
            db.execute("DELETE FROM models WHERE name = ? AND version = ?", (name, version))

    # -- services ---------------------------------------------------------------------

    def insert_service(self, record: ServiceRecord) -> None:
        """Record a new service."""
        columns = _encode(
            {
                "name": record.name,
                "state": record.state,
                "config": record.config,
                "url": record.url,
                "key_hashes": record.key_hashes,
                "created": record.created or time.time(),
            }
        )
        names = ", ".join(columns)
        marks = ", ".join(f":{k}" for k in columns)
        with self.transaction() as db:
            db.execute(f"INSERT INTO services ({names}) VALUES ({marks})", columns)

    def service(self, name: str) -> ServiceRecord | None:
        """One service, or ``None``."""
        row = (
            self._connection().execute("SELECT * FROM services WHERE name = ?", (name,)).fetchone()
        )
        return _service(row) if row else None

    def services(self) -> list[ServiceRecord]:
        """Every service, by name."""
        rows = self._connection().execute("SELECT * FROM services ORDER BY name").fetchall()
        return [_service(r) for r in rows]

    def update_service(self, name: str, **values: Any) -> None:
        """Change columns of a service."""
        self._update("services", {"name": name}, values)

    def delete_service(self, name: str) -> None:
        """Forget a service."""
        with self.transaction() as db:
            db.execute("DELETE FROM services WHERE name = ?", (name,))

    # -- computes ---------------------------------------------------------------------

    def insert_compute(
        self,
        name: str,
        kind: str,
        address: str,
        options: Mapping[str, Any],
        created: float | None = None,
    ) -> bool:
        """Record a new compute; ``False`` when one of that name exists (nothing changes)."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO computes (name, kind, address, options, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, kind, address, json.dumps(dict(options)), created or time.time()),
            )
        return cursor.rowcount == 1

    def compute(self, name: str) -> dict[str, Any] | None:
        """One compute's row (``options`` decoded), or ``None``."""
        return self._one("SELECT * FROM computes WHERE name = ?", (name,))

    def computes(self) -> list[dict[str, Any]]:
        """Every compute's row, by name."""
        return self._all("SELECT * FROM computes ORDER BY name")

    def update_compute(self, name: str, **values: Any) -> None:
        """Change columns of a compute."""
        self._update("computes", {"name": name}, values)

    def delete_compute(self, name: str) -> bool:
        """Forget a compute; ``False`` when there was none."""
        with self.transaction() as db:
            cursor = db.execute("DELETE FROM computes WHERE name = ?", (name,))
        return cursor.rowcount == 1
