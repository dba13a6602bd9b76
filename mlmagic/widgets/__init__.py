"""Display only: the views of a build and of a run, fed by events.

Each view keeps bounded state in plain models (:mod:`mlmagic.widgets.model`), renders it
to ipywidgets at most ~10 times a second, and offers :meth:`text_summary` for terminals.
The views load on first use, so the models serve the terminal without ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlmagic.widgets.build import BuildView
    from mlmagic.widgets.run import RunView

__all__ = ["BuildView", "RunView"]


def __getattr__(name: str) -> Any:
    # ipywidgets (and IPython under it) only for those who ask for a view.
    if name == "BuildView":
        from mlmagic.widgets.build import BuildView

        return BuildView
    if name == "RunView":
        from mlmagic.widgets.run import RunView

        return RunView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
