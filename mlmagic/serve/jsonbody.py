"""Checking that a request body is JSON without building it.

``json.loads`` of a 16 MiB body builds every list, dict and string in it: a body of empty
lists (``[[],[],...]``) costs more than 20 times its size. The server needs to know only
whether the body is JSON, so :func:`check_json` parses it in slices of at most
:data:`WINDOW` characters with the standard library's C scanner, and keeps nothing that it
parses: the memory it needs is bounded by the slice, not by the body.

The dialect is that of :func:`json.loads`, which the entry script's ``run()`` almost always
uses: ``NaN``, ``Infinity`` and ``-Infinity`` are accepted, control characters inside
strings are not.
"""

from __future__ import annotations

import json
import re
from json.decoder import JSONDecodeError, scanstring  # type: ignore[attr-defined]

__all__ = ["MAX_DEPTH", "WINDOW", "check_json"]

#: Characters parsed at once; bounds the memory of a check to about 25 times this (or 100
#: times for text outside Latin-1).
WINDOW = 1 << 18
#: Deeper nesting is refused (``json.loads`` itself fails near the recursion limit, 1000).
MAX_DEPTH = 1000
#: The smallest slice tried for a run of elements after a failed one.
_MIN_RUN = 1 << 10

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# ``bool`` is a C callable that returns a shared singleton: numbers and objects parsed
# with these hooks leave nothing behind that grows with the body.
# (scanstring and scan_once are public in the json module but missing from its stubs.)
_SCANNER = json.JSONDecoder(
    parse_float=bool, parse_int=bool, parse_constant=bool, object_pairs_hook=bool
).scan_once  # type: ignore[attr-defined]
_CLOSER = {"[": "]", "{": "}"}


def _scan(text: str, index: int) -> int:
    """Parse the value at ``index`` with the C scanner; return where it ends."""
    try:
        end: int = _SCANNER(text, index)[1]
    except StopIteration as exc:
        raise JSONDecodeError("Expecting value", text, exc.value) from None
    return end


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _parses(text: str) -> bool:
    """Whether ``text`` is exactly one JSON value (it holds no whitespace at either end)."""
    try:
        return _scan(text, 0) == len(text)
    except (ValueError, RecursionError):
        return False


class _Walk:
    """The state of one check: where it is, and which containers it walks element by element.

    The walk is a loop over an explicit stack, not a recursion, so deep nesting costs no
    Python frames.
    """

    def __init__(self, text: str, window: int, max_depth: int) -> None:
        self.text = text
        self.window = window
        self.max_depth = max_depth
        self.closers: list[str] = []
        self.run = window

    def error(self, message: str, index: int) -> JSONDecodeError:
        return JSONDecodeError(message, self.text, index)

    def value(self, index: int) -> tuple[int, bool]:
        """Pass the value at ``index``, or open the container there when it is too big.

        Returns where the value ends (after whitespace), or where the opened container's
        first item starts, and whether a container was opened.
        """
        text = self.text
        opener = text[index : index + 1]
        if opener not in _CLOSER:
            return _skip(text, _scan(text, index)), False  # a string, number or constant
        piece = text[index : index + self.window]
        try:
            return _skip(text, index + _scan(piece, 0)), False
        except RecursionError:
            pass
        except ValueError as exc:
            if index + len(piece) == len(text):  # the piece held the rest: the error is real
                position = getattr(exc, "pos", 0)
                raise self.error(getattr(exc, "msg", str(exc)), index + position) from None
        # Bigger than a window, or nested too deep for the C scanner: walk it here.
        if len(self.closers) >= self.max_depth:
            raise self.error(f"Nested more than {self.max_depth} levels deep", index)
        self.closers.append(_CLOSER[opener])
        return _skip(text, index + 1), True

    def item(self, index: int) -> int:
        """Pass what comes before a value of the open container: whole runs of items when
        they parse at once, then an object's ``"key":``. Returns where the value starts."""
        text = self.text
        closer = self.closers[-1]
        index = self.runs(index, "{" if closer == "}" else "[", closer)
        if closer == "]":
            return index
        if not text.startswith('"', index):
            raise self.error("Expecting property name enclosed in double quotes", index)
        index = _skip(text, scanstring(text, index + 1)[1])
        if not text.startswith(":", index):
            raise self.error("Expecting ':' delimiter", index)
        return _skip(text, index + 1)

    def runs(self, index: int, opener: str, closer: str) -> int:
        """Pass whole items up to the last comma of a slice, for as long as that parses.

        ``opener + slice + closer`` parses only when the slice is a list of complete items
        of the open container, so its last comma is one of the container's own.
        """
        while True:
            piece = self.text[index : index + self.run]
            comma = piece.rfind(",")
            if comma <= 0 or not _parses(opener + piece[:comma] + closer):
                self.run = max(min(_MIN_RUN, self.window), self.run // 2)
                return index
            self.run = min(self.window, self.run * 2)
            index = _skip(self.text, index + comma + 1)

    def check(self) -> None:
        text = self.text
        index = _skip(text, 0)
        due = True  # a value is due at index
        while True:
            if due:
                index, opened = self.value(index)
                if not opened:
                    due = False
                elif text.startswith(self.closers[-1], index):  # an empty container
                    self.closers.pop()
                    index = _skip(text, index + 1)
                    due = False
                else:
                    index = self.item(index)
            elif not self.closers:
                if index != len(text):
                    raise self.error("Extra data", index)
                return
            elif text.startswith(self.closers[-1], index):
                self.closers.pop()
                index = _skip(text, index + 1)
            elif text.startswith(",", index):
                index = self.item(_skip(text, index + 1))
                due = True
            else:
                raise self.error("Expecting ',' delimiter", index)


def check_json(text: str, *, window: int = WINDOW, max_depth: int = MAX_DEPTH) -> None:
    """Check that ``text`` is one JSON value, as :func:`json.loads` reads it.

    Parameters
    ----------
    text
        The decoded request body.
    window
        Characters parsed at once; the memory of the check is bounded by it.
    max_depth
        Deepest nesting accepted.

    Raises
    ------
    json.JSONDecodeError
        When ``text`` is not JSON (or is nested deeper than ``max_depth``); the message
        and position are those :func:`json.loads` gives, as far as the slices allow.
    """
    _Walk(text, max(window, 2), max_depth).check()
