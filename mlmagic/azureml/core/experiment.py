"""``Experiment``: a name runs are filed under, and the call that submits them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlmagic.run.config import check_experiment

if TYPE_CHECKING:
    from mlmagic.azureml.core.run import Run
    from mlmagic.azureml.core.workspace import Workspace

__all__ = ["Experiment"]


class Experiment:
    """The runs of one experiment of a workspace.

    Parameters
    ----------
    workspace
        The workspace.
    name
        Letters, digits, ``-``, ``_`` and ``.``.
    """

    def __init__(self, workspace: Workspace, name: str, **_: Any) -> None:
        check_experiment(name)
        self.workspace = workspace
        self.name = name

    def submit(self, config: Any, tags: Mapping[str, Any] | None = None, **_: Any) -> Run:
        """Start a run of ``config`` (a ``ScriptRunConfig`` or an estimator); return at once.

        Raises
        ------
        RunError
            Something in the configuration cannot run (a missing script, environment or
            compute target, too many nodes); nothing is started.
        """
        from mlmagic.azureml.core.run import Run
        from mlmagic.azureml.core.script_run_config import ScriptRunConfig, submit_config

        if not isinstance(config, ScriptRunConfig):
            as_config = getattr(config, "script_run_config", None)
            if as_config is None:
                from mlmagic.azureml.unsupported import instead_of

                raise instead_of("azureml.pipeline", f"Experiment.submit({type(config).__name__})")
            config = as_config()
        started = submit_config(self.workspace, self.name, config, tags)
        return Run(self, started.id)

    def get_runs(self, **_: Any) -> Iterator[Run]:
        """The experiment's runs, newest first."""
        from mlmagic.azureml.core.run import Run

        for record in self.workspace.mlmagic.runs.records(self.name):
            yield Run(self, record.id)

    @classmethod
    def list(cls, workspace: Workspace, **_: Any) -> list[Experiment]:
        """Every experiment that has a run."""
        names = sorted({record.experiment for record in workspace.mlmagic.runs.records()})
        return [cls(workspace, name) for name in names]

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"
