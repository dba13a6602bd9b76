"""Display only: the views of a build and of a run, fed by events.

Each view keeps bounded state in plain models (:mod:`mlmagic.widgets.model`), renders it
to ipywidgets at most ~10 times a second, and offers :meth:`text_summary` for terminals.
"""

from __future__ import annotations

from mlmagic.widgets.build import BuildView
from mlmagic.widgets.run import RunView

__all__ = ["BuildView", "RunView"]
