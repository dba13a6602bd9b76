"""The contract of a view: fed by events from any thread, flushed at most ~10 times a second.

A view keeps its state in the plain models of :mod:`mlmagic.widgets.model` and renders
them to its widgets in :meth:`View._flush`. :meth:`View._updated` decides, after each event,
whether enough time has passed to flush; no timer or thread is involved, so nothing is
left running once the caller stops feeding events. The caller ends with a forced flush
(``finish()``), so the last state is always shown.

Where widgets cannot render (nbconvert, GitHub's preview, a terminal) a view reads as its
``text/plain`` and ``text/html`` summaries. A displayed view publishes them with a display
id and publishes them again when it finishes, so a saved notebook keeps the final state,
not the state at the moment the cell ran. The summaries are bounded: no log text beyond
the last lines of a failure.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import ipywidgets

__all__ = ["FLUSH_INTERVAL", "View"]

#: Least seconds between two flushes that an event (rather than the end) triggers.
FLUSH_INTERVAL = 0.1


class View:
    """Base of :class:`BuildView` and :class:`RunView`.

    Subclasses set :attr:`widget`, update their models under :attr:`_lock`, call
    :meth:`_updated` after each event and :meth:`_update_display` when they finish, and
    implement :meth:`_flush`, :meth:`text_summary` and :meth:`html_summary`.
    """

    widget: ipywidgets.Box

    def __init__(self, title: str) -> None:
        self.title = title
        self._lock = threading.Lock()
        self._last_flush = float("-inf")
        self._display_id: str | None = None

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

    def html_summary(self) -> str:
        """What the view shows, as static HTML (no log beyond the end of a failure)."""
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
        display(self._repr_mimebundle_(), raw=True, display_id=self._display_id)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget's bundle, with the text and HTML summaries as fallbacks."""
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.text_summary()
        bundle["text/html"] = self.html_summary()
        return bundle

    def _update_display(self) -> None:
        """Publish the bundle again, so the summaries saved with the notebook are the last.

        Call without the lock held, from any thread: frontends find the output by its
        display id, whichever cell ran last.
        """
        if self._display_id is None:
            return
        from IPython.display import update_display

        update_display(self._repr_mimebundle_(), raw=True, display_id=self._display_id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}>"
