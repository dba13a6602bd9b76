"""``azureml.widgets``: ``RunDetails(run).show()`` is mlmagic's run widget."""

from __future__ import annotations

from typing import Any

__all__ = ["RunDetails"]


class RunDetails:
    """The live view of a run (its stages, log and metrics) in the notebook."""

    def __init__(self, run_instance: Any) -> None:
        self.run_instance = run_instance

    def show(self, render_lib: Any = None, widget_settings: Any = None) -> None:
        """Display the widget; it follows the run without blocking the notebook."""
        from mlmagic.magics import show_run

        show_run(self.run_instance.mlmagic, wait=False)
