"""``azureml.core`` inside a run: ``Run.get_context()`` over ``mlmagic_run``.

Only :class:`Run` exists here: a training script needs nothing else of the SDK, and
every other name says so in one line.
"""

from typing import Any

from .run import Run

__all__ = ["Run"]


def __getattr__(name: str) -> Any:
    raise ImportError(
        f"azureml.core.{name} is not available inside an mlmagic run (only Run is): "
        "use it in the notebook that submits the run."
    )
