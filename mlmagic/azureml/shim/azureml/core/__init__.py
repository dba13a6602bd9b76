"""``azureml.core`` inside a run or a service: ``Run.get_context()`` over ``mlmagic_run``,
and ``Model.get_model_path`` for a scoring script.

Only :class:`Run` and :class:`Model` exist here: a training or scoring script needs
nothing else of the SDK, and every other name says so in one line.
"""

from typing import Any

from .model import Model

__all__ = ["Model", "Run"]


def __getattr__(name: str) -> Any:
    if name == "Run":
        # Only where mlmagic_run is (a run); a service's lib has the shim without it.
        from .run import Run

        return Run
    raise ImportError(
        f"azureml.core.{name} is not available inside an mlmagic run or service (only Run "
        "and Model are): use it in the notebook that submits the run."
    )
