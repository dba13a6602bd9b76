"""The :class:`Run` object, the runs of a workspace, and submitting one.

A run's record is in the store and its files in the workspace; a :class:`Run` is a view
of both, so ``ws.runs.get(id)`` in any process sees the same run, live or finished.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic.events import RunEvent, RunEventKind, Stage, Status
from mlmagic.exceptions import MlmagicError, RunError
from mlmagic.models import Model, check_inside
from mlmagic.run import lifecycle
from mlmagic.run.config import RunConfig, parse_data, parse_tags
from mlmagic.run.paths import RunPaths
from mlmagic.run.snapshot import snapshot
from mlmagic.run.stream import follow
from mlmagic.summary import html_table
from mlmagic_run import read_metrics

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
        if self._record() is None:
            raise MlmagicError(f"No run {run_id} in {workspace.root}.", hint=hints.LIST_RUNS)

    def _record(self) -> dict[str, Any]:
        record = self._ws.store.run(self.id)
        return record  # type: ignore[return-value]

    # -- state -------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        """Queued, Preparing, Starting, Running, Finalizing, Completed, Failed or Canceled."""
        return Status(self._record()["status"])

    @property
    def experiment(self) -> str:
        return str(self._record()["experiment"])

    @property
    def name(self) -> str | None:
        return self._record()["name"]

    @property
    def exit_code(self) -> int | None:
        return self._record()["exit_code"]

    @property
    def error(self) -> str | None:
        """Why the run failed or was canceled, with the stage it failed in."""
        record = self._record()
        if not record["error"]:
            return None
        stage = f" (in {record['failed_stage']})" if record["failed_stage"] else ""
        return f"{record['error']}{stage}"

    @property
    def environment(self) -> Environment:
        """The exact environment version the run used."""
        record = self._record()
        return self._ws.environments.get(record["env_name"], record["env_version"])

    @property
    def details(self) -> dict[str, Any]:
        """Script, arguments, image, snapshot size, exit code and stage times."""
        record = self._record()
        started, ended = record["started"], record["ended"]
        return {
            "id": self.id,
            "experiment": record["experiment"],
            "name": record["name"],
            "status": record["status"],
            "script": record["script"],
            "args": record["args"],
            "environment": f"{record['env_name']}:{record['env_version']}",
            "image": record["image"],
            "target": record["target"],
            "snapshot_files": record["snapshot_files"],
            "snapshot_bytes": record["snapshot_bytes"],
            "exit_code": record["exit_code"],
            "error": self.error,
            "created": record["created"],
            "started": started,
            "ended": ended,
            "duration": (ended - started) if started and ended else None,
            "tags": record["tags"],
            "config": record["config"],
            "stages": {
                s["stage"]: (s["started"], s["ended"]) for s in self._ws.store.stages(self.id)
            },
        }

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
        """Every logged metric value: name, step, value, time."""
        import pandas as pd

        records, _ = read_metrics(self.paths.metrics)
        frame = pd.DataFrame(records, columns=["name", "step", "value", "time"])
        frame["time"] = pd.to_datetime(frame["time"], unit="s")
        return frame

    @property
    def params(self) -> dict[str, Any]:
        """Parameters the script logged with ``mlmagic_run.log_params``."""
        import json

        try:
            return dict(json.loads(self.paths.params.read_text()))
        except (OSError, ValueError):
            return {}

    # -- files ---------------------------------------------------------------------------

    def logs(self) -> str:
        """Everything the script printed so far (stdout and stderr, in order)."""
        try:
            return self.paths.output_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

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
        """Copy ``outputs/...`` or ``logs/...`` (a file or folder) to ``dest``; return it."""
        source = self._inside_outputs(name)
        target = Path(dest)
        if target.is_dir():
            target = target / source.name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return target

    def _inside_outputs(self, name: str) -> Path:
        """The path ``name`` names inside outputs/ or logs/, refusing anything outside."""
        if Path(name).is_absolute():
            raise MlmagicError(f"{name!r}: give a path inside the run, like outputs/model.pkl.")
        source = (self.paths.root / name).resolve()
        allowed = (self.paths.outputs.resolve(), self.paths.logs.resolve())
        if not any(source == a or a in source.parents for a in allowed):
            raise MlmagicError(
                f"{name!r} is not in the run's outputs or logs.",
                hint=hints.RUN_FILES.format(run=self.id),
            )
        if not source.exists():
            raise MlmagicError(f"The run has no {name}.", hint=hints.RUN_FILES.format(run=self.id))
        return source

    # -- control -------------------------------------------------------------------------

    def events(self, *, live: bool = True) -> Iterator[RunEvent]:
        """The run's events from its beginning; with ``live``, following it to its end."""
        return follow(self._ws, self.id, live=live)

    def wait(self, show_output: bool = False, timeout: float | None = None) -> Run:
        """Block until the run ends; with ``show_output`` print its log as it streams.

        Interrupting the wait (Ctrl-C, the notebook's stop button) stops waiting, not the
        run. Raises :class:`RunError` when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for event in self.events():
                if show_output and event.kind is RunEventKind.LOG:
                    print(event.message, flush=True)
                if deadline is not None and time.monotonic() > deadline:
                    raise RunError(f"Run {self.id} is still {self.status.value} after {timeout} s.")
        except KeyboardInterrupt:
            print(f"Stopped waiting; run {self.id} goes on (run.cancel() stops it).")
        return self

    def cancel(self) -> None:
        """Stop the run: a queued or preparing run never starts; a running one is stopped."""
        lifecycle.cancel(self._ws, self.id)

    def register_model(
        self,
        name: str,
        path: str,
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> Model:
        """Register a file or folder of the run's outputs as the next version of ``name``.

        ``path`` is relative to the run (``outputs/model.pkl``); paths that escape the
        outputs (``../``, absolute paths, links out) are refused. The model keeps the
        run, its experiment and the environment version as lineage.
        """
        if Path(path).is_absolute():
            raise MlmagicError(
                f"{path!r}: give a path inside the run's outputs, like outputs/model.pkl."
            )
        relative = Path(path)
        if relative.parts and relative.parts[0] != "outputs":
            relative = Path("outputs") / relative
        source = check_inside(self.paths.root / relative, self.paths.outputs)
        record = self._record()
        return self._ws.models.register(
            name,
            source,
            tags=dict(tags or {}),
            description=description,
            lineage={
                "run_id": self.id,
                "experiment": record["experiment"],
                "env_name": record["env_name"],
                "env_version": record["env_version"],
            },
        )

    # -- display -------------------------------------------------------------------------

    def __repr__(self) -> str:
        record = self._record()
        code = f" exit {record['exit_code']}" if record["exit_code"] is not None else ""
        env = f"{record['env_name']}:{record['env_version']}"
        return f"<Run {self.id} {record['status']}{code} · {env}>"

    def _repr_html_(self) -> str:
        details = self.details
        rows = [
            ("run", self.id),
            ("status", details["status"]),
            ("experiment", details["experiment"]),
            ("script", " ".join([details["script"], *details["args"]])),
            ("environment", details["environment"]),
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

    def get(self, run_id: str) -> Run:
        """Any run, live or finished; a live run nobody drives is re-attached."""
        run = Run(self._ws, run_id)
        lifecycle.watch(self._ws, run_id)
        return run

    def list(self, experiment: str | None = None) -> pd.DataFrame:
        """One row per run: status, duration, params and the last value of each metric."""
        import pandas as pd

        rows = []
        for record in self._ws.store.runs(experiment):
            run = Run(self._ws, record["id"])
            row = {
                "id": record["id"],
                "experiment": record["experiment"],
                "name": record["name"],
                "status": record["status"],
                "environment": f"{record['env_name']}:{record['env_version']}",
                "created": pd.to_datetime(record["created"], unit="s"),
                "duration": (record["ended"] - record["started"])
                if record["ended"] and record["started"]
                else None,
                "exit_code": record["exit_code"],
            }
            row.update({f"param.{k}": v for k, v in run.params.items()})
            records, _ = read_metrics(run.paths.metrics)
            row.update({r["name"]: r["value"] for r in records})
            rows.append(row)
        return pd.DataFrame(rows)


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
) -> Run:
    """Snapshot the source folder, record the run and start it; return at once.

    Everything about the user's input is checked before anything is recorded: the
    environment exists, the script exists in the source folder (or ``script_text`` is
    given: a ``%%submit`` cell), the data folders exist, and the snapshot is within its
    limits.
    """
    if (script is None) == (script_text is None):
        raise RunError("Give either a script path or the script's text.")
    source = Path(source_dir or Path.cwd()).expanduser().resolve()
    if not source.is_dir():
        raise RunError(f"--source-dir {source} is not a folder.")
    if script is not None:
        script = _script_in(source, script)
    env = ws.environments.resolve(environment)
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
        {
            "id": run_id,
            "experiment": experiment,
            "name": name,
            "status": Status.QUEUED.value,
            "target": config.target,
            "env_name": env.name,
            "env_version": env.version,
            "image": env.image,
            "script": config.script,
            "args": list(config.args),
            "config": config.to_dict(),
            "tags": dict(config.tags),
            "owner": lifecycle.owner_id(),
            "snapshot_files": info.files,
            "snapshot_bytes": info.bytes,
        }
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
        raise RunError(f"No script {script} in {source}: check the path or pass --source-dir.")
    if source not in full.parents:
        raise RunError(
            f"The script {full} is outside the source folder {source}: pass --source-dir "
            "with a folder that holds it."
        )
    return full.relative_to(source).as_posix()
