"""The contract of a view: fed by events from any thread, flushed at most ~10 times a second.

A view keeps its state in the plain models of :mod:`mlmagic.widgets.model` and renders
them to its widgets in :meth:`View._flush`. :meth:`View._updated` decides, after each event,
whether enough time has passed to flush; no timer or thread is involved, so nothing is
left running once the caller stops feeding events. The caller ends with a forced flush
(``finish()``), so the last state is always shown.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets

__all__ = ["FLUSH_INTERVAL", "View"]

#: Least seconds between two flushes that an event (rather than the end) triggers.
FLUSH_INTERVAL = 0.1


class View:
    """Base of :class:`BuildView` and :class:`RunView`.

    Subclasses set :attr:`widget`, update their models under :attr:`_lock`, call
    :meth:`_updated` after each event and implement :meth:`_flush` and
    :meth:`text_summary`.
    """

    widget: ipywidgets.Box

    def __init__(self, title: str) -> None:
        self.title = title
        self._lock = threading.Lock()
        self._last_flush = float("-inf")

    def _updated(self, *, force: bool = False) -> None:
        """Flush if ``force`` or if the last flush is old enough; call with the lock held."""
        now = time.monotonic()
        if force or now - self._last_flush >= FLUSH_INTERVAL:
            self._last_flush = now
            self._flush()

    def _flush(self) -> None:
        """Render the models into the widgets; called with the lock held."""
        raise NotImplementedError

    def text_summary(self) -> str:
        """What the view shows, as plain text for a terminal."""
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget's bundle, with the text summary as its plain-text fallback."""
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.text_summary()
        return bundle

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}>"
