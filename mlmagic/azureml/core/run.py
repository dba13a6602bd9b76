"""``Run``: a submitted run as Azure ML's SDK shows it, over :class:`mlmagic.run.run.Run`.

``Run.get_context()`` is the script's side (:mod:`mlmagic.azureml.shim`), the same class
the run containers import; everything else reads the run's record and files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic.azureml.shim.azureml.core.run import TAG_PREFIX
from mlmagic.azureml.shim.azureml.core.run import Run as ContextRun
from mlmagic.exceptions import RunError

if TYPE_CHECKING:
    from mlmagic.azureml.core.environment import Environment
    from mlmagic.azureml.core.experiment import Experiment
    from mlmagic.run.run import Run as MlmagicRun

__all__ = ["ContextRun", "Run"]


class Run:
    """A run of an experiment (``Run(experiment, run_id)``, or what ``submit`` returns).

    Attributes
    ----------
    mlmagic : mlmagic.run.run.Run
        The run every call goes to.
    """

    def __init__(self, experiment: Experiment, run_id: str, **_: Any) -> None:
        self.experiment = experiment
        self.mlmagic: MlmagicRun = experiment.workspace.mlmagic.runs.get(run_id)
        self.id = run_id

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> ContextRun:
        """The run of this process (inside a submitted script), else an offline run
        that prints what it is given."""
        return ContextRun.get_context(allow_offline, **kwargs)

    @property
    def number(self) -> int:
        """The run's position in its experiment (1 for the first)."""
        runs = self.experiment.workspace.mlmagic.runs
        ids = [r.id for r in runs.records(self.experiment.name)]
        return len(ids) - ids.index(self.id) if self.id in ids else 0

    @property
    def display_name(self) -> str:
        return self.mlmagic.name or self.id

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def properties(self) -> dict[str, str]:
        """What the run was made with: environment, target, script, snapshot size."""
        details = self.mlmagic.details
        return {
            "azureml.runsource": "experiment",
            "environment": str(details["environment"]),
            "target": str(details["target"]),
            "script": str(details["script"]),
            "image": str(details["image"]),
            "snapshot_files": str(details["snapshot_files"]),
        }

    @property
    def tags(self) -> dict[str, str]:
        return self.get_tags()

    # -- state ---------------------------------------------------------------------------

    def get_status(self) -> str:
        """``Queued``, ``Preparing``, ``Starting``, ``Running``, ``Finalizing``,
        ``Completed``, ``Failed`` or ``Canceled``."""
        return self.mlmagic.status.value

    def get_details(self) -> dict[str, Any]:
        """Azure's details dict: ``runId``, ``status``, ``target``, times, the
        ``runDefinition`` (script, arguments, environment), ``error`` and ``logFiles``."""
        details = self.mlmagic.details
        out: dict[str, Any] = {
            "runId": self.id,
            "target": details["target"],
            "status": details["status"],
            "startTimeUtc": _iso(details["started"]),
            "endTimeUtc": _iso(details["ended"]),
            "properties": self.properties,
            "tags": self.get_tags(),
            "inputDatasets": [],
            "runDefinition": {
                "script": details["script"],
                "arguments": details["args"],
                "environment": {"name": details["environment"]},
                "nodeCount": 1,
                "distributed": details["distributed"],
            },
            "logFiles": {"user_logs/std_log.txt": str(self.mlmagic.paths.output_log)},
        }
        if details["error"]:
            out["error"] = {"error": {"message": details["error"]}}
        return out

    def get_tags(self) -> dict[str, str]:
        """The tags given at submission, and those the script set with ``run.tag``."""
        tags = dict(self.mlmagic.record.config.tags)
        params = self.mlmagic.params
        tags.update(
            {k[len(TAG_PREFIX) :]: str(v) for k, v in params.items() if k.startswith(TAG_PREFIX)}
        )
        return tags

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, **_: Any
    ) -> dict[str, Any]:
        """Each metric's value (a list when it was logged more than once), and the
        non-numeric values logged (as Azure returns them); only ``name`` when given."""
        frame = self.mlmagic.metrics
        metrics: dict[str, Any] = {}
        for metric, values in frame.groupby("name", sort=False)["value"]:
            listed = [float(v) for v in values]
            metrics[str(metric)] = listed[0] if len(listed) == 1 else listed
        for key, value in self.mlmagic.params.items():
            if not key.startswith(TAG_PREFIX):
                metrics.setdefault(key, value)
        if name is not None:
            return {name: metrics[name]} if name in metrics else {}
        return metrics

    def get_environment(self) -> Environment:
        """The exact environment version the run used."""
        from mlmagic.azureml.core.environment import Environment

        return Environment._from_mlmagic(self.mlmagic.environment)

    def get_children(self, **_: Any) -> list[Run]:
        """None: a distributed run is one run here (see ``run.mlmagic.nodes``)."""
        return []

    # -- waiting and stopping ------------------------------------------------------------

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
        **_: Any,
    ) -> dict[str, Any]:
        """Block until the run ends (printing its log with ``show_output``); return
        :meth:`get_details`.

        Raises
        ------
        RunError
            The run failed or was canceled, and ``raise_on_error`` is true.
        """
        self.mlmagic.wait(show_output=show_output)
        details = self.get_details()
        if raise_on_error and details["status"] in ("Failed", "Canceled"):
            raise RunError(
                f"Run {self.id} {details['status'].lower()}: {self.mlmagic.error or 'see its log'}"
            )
        return details

    def cancel(self) -> None:
        """Stop the run."""
        self.mlmagic.cancel()

    # -- files ---------------------------------------------------------------------------

    def get_file_names(self) -> list[str]:
        """The run's files: ``outputs/...`` and ``logs/...``."""
        return self.mlmagic.files()

    def download_file(
        self, name: str, output_file_path: str | None = None, _validate_checksum: bool = False
    ) -> None:
        """Copy one file of the run to ``output_file_path`` (a file or a folder; the
        current folder by default)."""
        self.mlmagic.download(name, output_file_path or ".")

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | None = None,
        output_paths: Any = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        **_: Any,
    ) -> None:
        """Copy the run's files under ``prefix`` (all of them by default) into
        ``output_directory``, keeping their paths (without ``prefix`` unless
        ``append_prefix``)."""
        root = Path(output_directory or ".")
        for name in self.get_file_names():
            if prefix and not name.startswith(prefix):
                continue
            relative = name if append_prefix or not prefix else name[len(prefix) :].lstrip("/")
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.mlmagic.download(name, target)

    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        **_: Any,
    ) -> Any:
        """Register a file or folder of the run's outputs as the next version of
        ``model_name``; return Azure's ``Model`` of it."""
        if model_path is None:
            raise RunError("register_model needs model_path=, e.g. 'outputs/model.pkl'.")
        model = self.mlmagic.register_model(
            model_name,
            model_path,
            tags={str(k): str(v) for k, v in {**(properties or {}), **(tags or {})}.items()},
            description=description,
        )
        return _azure_model(self.experiment.workspace, model)

    # -- display -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Status: {self.get_status()})"
        )

    def _repr_html_(self) -> str:
        return self.mlmagic._repr_html_()


def _azure_model(workspace: Any, model: Any) -> Any:
    """Azure's ``Model`` for a version registered by mlmagic."""
    from mlmagic.azureml.core.model import Model

    return Model(workspace, name=model.name, version=model.version)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
