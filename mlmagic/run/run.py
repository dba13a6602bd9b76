"""The :class:`Run` object, the runs of a workspace, and submitting one.

A run's record is in the store and its files in the workspace; a :class:`Run` is a view
of both, so ``ws.runs.get(id)`` in any process sees the same run, live or finished.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic.copying import copy_out
from mlmagic.distributed.config import Distribution
from mlmagic.events import RunEvent, RunEventKind, Stage, Status
from mlmagic.exceptions import MlmagicError, NotFoundError, RunError
from mlmagic.models import Model
from mlmagic.records import RunRecord
from mlmagic.run import lifecycle, untrusted
from mlmagic.run.config import RunConfig, parse_data, parse_tags
from mlmagic.run.listing import Listings, epoch_seconds, read_params, status_name
from mlmagic.run.notebook import check_notebook, is_notebook, parse_parameters
from mlmagic.run.paths import RunPaths
from mlmagic.run.snapshot import snapshot
from mlmagic.run.stream import follow
from mlmagic.summary import html_table

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

__all__ = ["CELL_SCRIPT", "Run", "Runs", "submit"]

#: The file a ``%%submit`` cell is saved as, in the run's snapshot.
CELL_SCRIPT = "submitted_cell.py"


class Run:
    """One training run: its status, logs, metrics, files and lineage.

    Parameters
    ----------
    workspace
        The workspace holding the run.
    run_id
        The run's id.
    """

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self._ws = workspace
        self.id = run_id
        self.paths = RunPaths(workspace.path("runs", run_id))
        self._record()

    def _record(self) -> RunRecord:
        record = self._ws.store.run(self.id)
        if record is None:
            raise NotFoundError(f"No run {self.id} in {self._ws.root}.", hint=hints.LIST_RUNS)
        return record

    # -- state -------------------------------------------------------------------------

    @property
    def record(self) -> RunRecord:
        """The run's stored record, read now."""
        return self._record()

    @property
    def status(self) -> Status:
        """Queued, Preparing, Starting, Running, Finalizing, Completed, Failed or Canceled."""
        return self._record().status

    @property
    def experiment(self) -> str:
        return self._record().experiment

    @property
    def name(self) -> str | None:
        return self._record().config.name

    @property
    def exit_code(self) -> int | None:
        return self._record().exit_code

    @property
    def error(self) -> str | None:
        """Why the run failed or was canceled, with the stage it failed in."""
        record = self._record()
        if not record.error:
            return None
        stage = f" (in {record.failed_stage})" if record.failed_stage else ""
        return f"{record.error}{stage}"

    @property
    def environment(self) -> Environment:
        """The exact environment version the run used."""
        record = self._record()
        return self._ws.environments.get(record.env_name or "", record.env_version)

    @property
    def details(self) -> dict[str, Any]:
        """Script, arguments, image, snapshot size, exit code and stage times."""
        record = self._record()
        config = record.config
        return {
            "id": self.id,
            "experiment": record.experiment,
            "name": config.name,
            "status": record.status.value,
            "script": config.script,
            "args": list(config.args),
            "environment": record.environment,
            "image": record.image,
            "target": record.target,
            "snapshot_files": record.snapshot_files,
            "snapshot_bytes": record.snapshot_bytes,
            "exit_code": record.exit_code,
            "error": self.error,
            "created": record.created,
            "started": record.started,
            "ended": record.ended,
            "duration": record.duration,
            "tags": dict(config.tags),
            "distributed": config.distributed.describe() if config.distributed else None,
            "config": config.to_dict(),
            "stages": {
                s["stage"]: (s["started"], s["ended"]) for s in self._ws.store.stages(self.id)
            },
        }

    @property
    def nodes(self) -> list[dict[str, Any]]:
        """The nodes of a distributed run, one dict each: ``node``, ``host``,
        ``processes`` and ``state``, read now (empty for a run of one process)."""
        record = self._record()
        if record.config.distributed is None or not record.handle:
            return []
        return self._ws.target(record.target).nodes(record.handle)

    @property
    def stages(self) -> pd.DataFrame:
        """The stages with their start and end times and durations (seconds)."""
        import pandas as pd

        rows = self._ws.store.stages(self.id)
        frame = pd.DataFrame(rows, columns=["stage", "started", "ended"])
        frame["duration"] = frame["ended"] - frame["started"]
        for column in ("started", "ended"):
            frame[column] = pd.to_datetime(frame[column], unit="s")
        return frame

    @property
    def metrics(self) -> pd.DataFrame:
        """Every logged metric value: name, step, value, time (of rank 0 in a
        distributed run; :meth:`metrics_of` gives another rank's)."""
        return self.metrics_of(0)

    def metrics_of(self, rank: int) -> pd.DataFrame:
        """The metric values rank ``rank`` of a distributed run logged (a run of one
        process is rank 0)."""
        import pandas as pd

        records, _ = untrusted.read_metrics(self.paths)
        mine = [r for r in records if r.get("rank", 0) == rank]
        frame = pd.DataFrame(mine, columns=["name", "step", "value", "time"])
        frame["time"] = pd.to_datetime(frame["time"], unit="s")
        return frame

    @property
    def params(self) -> dict[str, Any]:
        """Parameters the script logged with ``mlmagic_run.log_params`` (``{}`` if unreadable)."""
        return read_params(self.paths)

    # -- files ---------------------------------------------------------------------------

    def logs(self) -> str:
        """Everything the script printed so far (stdout and stderr, in order).

        Raises :class:`~mlmagic.run.untrusted.RefusedFile` (a :class:`RunError`) when the
        log is not a regular file of the run (a script replaced it with a link).
        """
        log = untrusted.read_run_file(self.paths, self.paths.output_log)
        return log.decode("utf-8", errors="replace")

    def files(self) -> list[str]:
        """The run's outputs and logs, as ``outputs/...`` and ``logs/...`` paths."""
        found = []
        for folder in (self.paths.outputs, self.paths.logs):
            if folder.is_dir():
                found += [
                    str(p.relative_to(self.paths.root))
                    for p in sorted(folder.rglob("*"))
                    if p.is_file()
                ]
        return found

    def download(self, name: str, dest: str | Path = ".") -> Path:
        """Copy ``outputs/...`` or ``logs/...`` (a file or folder) to ``dest``; return it.

        The script wrote these folders, so nothing in them is followed: a link, named
        pipe, socket or device file met while copying is refused, naming it, and
        ``dest`` is left as it was.
        """
        relative = self._inside(name, ("outputs", "logs"), "the run's outputs or logs")
        if not os.path.lexists(self.paths.root / relative):
            raise MlmagicError(f"The run has no {name}: see run.files() for what it has.")
        target = Path(dest)
        if target.is_dir():
            target = target / relative.name
        return copy_out(self.paths.root, relative, target, shown=PurePath(""))

    def _inside(
        self, name: str, folders: tuple[str, ...], what: str, hint: hints.Hint | None = None
    ) -> PurePath:
        """``name`` as a plain path under one of ``folders`` of the run, else refused.

        Only the words are checked here; :func:`copy_out` then opens each part without
        following links, so no link can lead the copy out of the run.
        """
        path = PurePath(name)
        if path.is_absolute() or ".." in path.parts:
            raise MlmagicError(
                f"{name!r} is not in {what}: give a path inside the run, like outputs/model.pkl.",
                hint=hint or hints.RUN_FILES.format(run=self.id),
            )
        parts = [part for part in path.parts if part != "."]
        if not parts or parts[0] not in folders:
            raise MlmagicError(
                f"{name!r} is not in {what}.", hint=hints.RUN_FILES.format(run=self.id)
            )
        return PurePath(*parts)

    # -- control -------------------------------------------------------------------------

    def events(self, *, live: bool = True, batch: bool = False) -> Iterator[RunEvent]:
        """The run's events from its beginning; with ``live``, following it to its end;
        with ``batch``, the log as ``LINES`` events of many lines (see :func:`follow`)."""
        return follow(self._ws, self.id, live=live, batch=batch)

    def wait(self, show_output: bool = False, timeout: float | None = None) -> Run:
        """Block until the run ends; with ``show_output`` print its log as it streams.

        Interrupting the wait (Ctrl-C, the notebook's stop button) stops waiting, not the
        run. With ``timeout`` (seconds; ``None`` or infinity waits for the end), the wait
        gives up at that deadline whether or not the script writes anything, and raises
        :class:`RunError` saying the status the run had then; the run goes on.
        """
        if timeout is not None and (math.isnan(timeout) or timeout < 0):
            raise RunError(f"wait(timeout={timeout}): give a number of seconds, 0 or more.")
        deadline = time.monotonic() + timeout if timeout is not None else None
        if deadline is not None and math.isinf(deadline):
            deadline = None
        try:
            # The log in blocks: a wait costs a few events, not one per line it prints.
            for event in follow(self._ws, self.id, until=deadline, batch=True):
                if show_output and event.kind is RunEventKind.LINES:
                    print(event.message, flush=True)
                if event.kind is RunEventKind.END:
                    return self
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            print(f"Stopped waiting; run {self.id} goes on (run.cancel() stops it).")
            return self
        if deadline is None or timeout is None:
            return self
        status = self.status
        if not status.is_terminal:
            raise RunError(
                f"Run {self.id} is still {status.value} after {timeout:g} s: wait again, "
                "or run.cancel() stops it."
            )
        return self

    def cancel(self) -> None:
        """Stop the run: a queued or preparing run never starts; a running one is stopped."""
        lifecycle.cancel(self._ws, self.id)

    def rerun(self, **overrides: Any) -> Run:
        """Run this run's code again (its snapshot, not the folder as it is now) with its
        options, those in ``overrides`` changed; return the new run at once.

        See :func:`mlmagic.run.rerun.rerun` for what may change.
        """
        from mlmagic.run.rerun import rerun

        return rerun(self._ws, self.id, **overrides)

    def register_model(
        self,
        name: str,
        path: str,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> Model:
        """Register a file or folder of the run's outputs as the next version of ``name``.

        ``path`` is relative to the run (``outputs/model.pkl``, or ``model.pkl`` for
        short). The run must have ended: its script could still change the files. The
        copy follows no link: a link, named pipe, socket or device file in the outputs
        is refused, naming it, and so are paths that leave the outputs (``../``,
        absolute paths). The model keeps the run, its experiment and the environment
        version as lineage.
        """
        status = self.status
        if not status.is_terminal:
            raise MlmagicError(
                f"Run {self.id} is still {status.value}, and its script could still change "
                "its outputs: wait for it to end (run.wait()) or cancel it (run.cancel()), "
                "then register the model."
            )
        relative = PurePath(path)
        if not relative.is_absolute() and relative.parts[:1] != ("outputs",):
            relative = "outputs" / relative
        relative = self._inside(
            str(relative), ("outputs",), "the run's outputs", hints.REGISTER_ANY_PATH
        )
        if not os.path.lexists(self.paths.root / relative):
            raise MlmagicError(f"The run has no {relative}: see run.files() for what it has.")
        record = self._record()
        return self._ws.models.register(
            name,
            relative,
            within=self.paths.root,
            tags=dict(tags or {}),
            description=description,
            lineage={
                "run_id": self.id,
                "experiment": record.experiment,
                "env_name": record.env_name,
                "env_version": record.env_version,
            },
        )

    # -- display -------------------------------------------------------------------------

    def __repr__(self) -> str:
        record = self._record()
        code = f" exit {record.exit_code}" if record.exit_code is not None else ""
        return f"<Run {self.id} {record.status.value}{code} · {record.environment}>"

    def _repr_html_(self) -> str:
        details = self.details
        rows = [
            ("run", self.id),
            ("status", details["status"]),
            ("experiment", details["experiment"]),
            ("script", " ".join([details["script"], *details["args"]])),
            ("environment", details["environment"]),
            ("layout", details["distributed"]),
            ("exit code", details["exit_code"]),
            ("duration", f"{details['duration']:.1f} s" if details["duration"] else None),
            ("error", details["error"]),
        ]
        metrics = self.metrics
        if not metrics.empty:
            last = metrics.groupby("name")["value"].last()
            rows += [(f"metric {k}", f"{v:.4g}") for k, v in last.items()]
        return html_table("Run", rows)


class Runs:
    """The runs of one workspace (``ws.runs``)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._listings = Listings(workspace)

    def get(self, run_id: str) -> Run:
        """Any run, live or finished; a live run nobody drives is re-attached."""
        run = Run(self._ws, run_id)
        lifecycle.watch(self._ws, run_id)
        return run

    def rerun(self, run_id: str, **overrides: Any) -> Run:
        """A new run of ``run_id``'s snapshot with its options; see :meth:`Run.rerun`."""
        from mlmagic.run.rerun import rerun

        return rerun(self._ws, run_id, **overrides)

    def records(
        self,
        experiment: str | None = None,
        *,
        limit: int | None = None,
        since: float | str | datetime | None = None,
        status: str | Status | None = None,
    ) -> list[RunRecord]:
        """The records of the runs (of one experiment, in one status, created at or after
        ``since``), newest first, at most ``limit``."""
        return self._ws.store.runs(
            experiment, limit=limit, since=epoch_seconds(since), status=status_name(status)
        )

    def list(
        self,
        experiment: str | None = None,
        *,
        limit: int | None = None,
        since: float | str | datetime | None = None,
        status: str | Status | None = None,
    ) -> pd.DataFrame:
        """One row per run, newest first: status, duration, params and the last value of
        each metric.

        Parameters
        ----------
        experiment
            Only the runs of this experiment.
        limit
            At most this many runs (the newest); ``None`` lists them all.
        since
            Only runs created at or after this time: epoch seconds, a ``datetime``, or
            ISO 8601 text (``"2026-12-01"``, ``"2026-12-01T09:30"``).
        status
            Only runs with this status (a :class:`Status` or its name, e.g. ``"failed"``).

        Notes
        -----
        One query and one frame, at any size. The same listing again reads only the runs
        that changed since (in any process) and the live runs' files, and patches the last
        one (see :class:`~mlmagic.run.listing.Listings`); unchanged, it is a copy of it.
        """
        return self._listings.frame(experiment, limit=limit, since=since, status=status)


def submit(
    ws: Workspace,
    script: str | None,
    environment: str | Environment,
    *,
    args: Sequence[str] = (),
    source_dir: str | Path | None = None,
    experiment: str = "default",
    name: str | None = None,
    tags: Mapping[str, str] | Sequence[str] = (),
    gpus: str | int = "none",
    data: Mapping[str, str] | Sequence[str] = (),
    shm_size: str | None = None,
    memory: str | None = None,
    cpus: float | None = None,
    timeout: float | None = None,
    script_text: str | None = None,
    target: str | None = None,
    distributed: Distribution | None = None,
    compute: str | None = None,
    parameters: Mapping[str, Any] | Sequence[str] = (),
) -> Run:
    """Snapshot the source folder, record the run and start it; return at once.

    Everything about the user's input is checked before anything is recorded: the
    environment exists, the script exists in the source folder (or ``script_text`` is
    given: a ``%%submit`` cell), the data folders exist, and the snapshot is within its
    limits. ``distributed`` (a :class:`~mlmagic.distributed.config.Distribution`, as
    ``PyTorchConfiguration(...)`` and its siblings make) runs it as a gang of nodes.
    ``compute`` names a compute (``ws.computes``): a Ray cluster the run goes to as a Ray
    job, or a Docker engine elsewhere.

    A ``.ipynb`` script is a notebook, executed cell by cell with a kernel of the
    environment's Python; ``parameters`` (a dict, or ``["name=literal", ...]``) are
    injected after its cell tagged ``parameters``, and the executed copy is written to
    ``outputs/<name>.ipynb`` as it runs (:mod:`mlmagic.run.notebook`). The notebook must
    be valid JSON of nbformat 4 and of Python.
    """
    if distributed is not None and not isinstance(distributed, Distribution):
        raise RunError(
            "distributed= takes PyTorchConfiguration(...), MpiConfiguration(...) or "
            f"TensorflowConfiguration(...), not {type(distributed).__name__}."
        )
    if (script is None) == (script_text is None):
        raise RunError("Give either a script path or the script's text.")
    source = Path(source_dir or Path.cwd()).expanduser().resolve()
    if not source.is_dir():
        raise RunError(f"--source-dir {source} is not a folder.")
    if script is not None:
        script = _script_in(source, script)
        if is_notebook(script):
            check_notebook(source / script, script)
    env = ws.environments.resolve(environment)
    if compute is not None:
        target = ws.resolve_target(target, compute)  # an unknown compute is refused here
    config = RunConfig(
        script=script or CELL_SCRIPT,
        environment=env.ref,
        source_dir=str(source),
        args=tuple(str(a) for a in args),
        experiment=experiment,
        name=name,
        tags=parse_tags(tags),
        gpus=str(gpus),
        data=parse_data(data),
        shm_size=shm_size,
        memory=memory,
        cpus=cpus,
        timeout=timeout,
        target=ws.resolve_target(target),
        distributed=distributed,
        compute=compute,
        parameters=parse_parameters(parameters),
    )
    run_id = f"{experiment}_{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}"
    paths = RunPaths(ws.path("runs", run_id))
    info = snapshot(
        source,
        paths.snapshot,
        exclude=[ws.root],
        max_bytes=ws.config.snapshot_max_bytes,
        max_files=ws.config.snapshot_max_files,
    )
    if script_text is not None:
        (paths.snapshot / CELL_SCRIPT).write_text(script_text)
    elif not (paths.snapshot / config.script).is_file():
        shutil.rmtree(paths.root, ignore_errors=True)
        rules = info.ignore_file.name if info.ignore_file else "the ignore rules"
        raise RunError(
            f"{config.script} is left out of the run's copy of {source} by {rules}: change "
            "that file, or add a .mlignore (used instead of .amlignore and .gitignore)."
        )
    paths.create()
    ws.store.insert_run(
        RunRecord(
            id=run_id,
            experiment=experiment,
            status=Status.QUEUED,
            config=config,
            env_name=env.name,
            env_version=env.version,
            image=env.image,
            owner=lifecycle.owner_id(),
            snapshot_files=info.files,
            snapshot_bytes=info.bytes,
        )
    )
    lifecycle.enter_stage(ws, run_id, Stage.QUEUED)
    thread = threading.Thread(
        target=lifecycle.drive, args=(ws, run_id), name=f"mlmagic-run-{run_id}", daemon=True
    )
    thread.start()
    return Run(ws, run_id)


def _script_in(source: Path, script: str) -> str:
    """The script's path relative to the source folder, which must hold it."""
    path = Path(script)
    full = (path if path.is_absolute() else source / path).resolve()
    if not full.is_file():
        what = "notebook" if is_notebook(script) else "script"
        raise RunError(f"No {what} {script} in {source}: check the path or pass --source-dir.")
    if source not in full.parents:
        raise RunError(
            f"The script {full} is outside the source folder {source}: pass --source-dir "
            "with a folder that holds it."
        )
    return full.relative_to(source).as_posix()
