"""Loading YAML cell text with line numbers, shared by the conda and mlmagic YAML formats.

PyYAML's constructed data forgets where each value came from, and its errors are
exceptions of its own. :func:`load` keeps the composed node tree beside the data, so a
parser can name the line of any key or list item in its messages, and turns every YAML
error into a :class:`~mlmagic.exceptions.SpecError` carrying the 1-based line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from mlmagic.exceptions import SpecError

__all__ = ["YamlDocument", "kind", "load", "load_mapping", "string_list", "string_mapping"]

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A step into a document: a mapping key or a list index.
PathStep = str | int


@dataclass(frozen=True)
class YamlDocument:
    """Data loaded from YAML text, with the node tree it was constructed from.

    Attributes
    ----------
    data
        The constructed value (what :func:`yaml.safe_load` would return).
    root
        The composed root node; ``None`` for an empty document.
    """

    data: Any
    root: yaml.Node | None

    def node(self, *path: PathStep) -> yaml.Node | None:
        """The node at ``path`` (mapping keys and list indexes), or ``None`` if absent.

        For a mapping key the *value* node is returned; use :meth:`line` for where the
        key itself is written.
        """
        node = self.root
        for step in path:
            found = _child(node, step)
            if found is None:
                return None
            node = found[1]
        return node

    def line(self, *path: PathStep) -> int | None:
        """The 1-based line of the key or list item at ``path``; ``None`` if absent.

        For a mapping key this is the line the key is written on (where a reader looks
        for it), for a list item the line of the item.
        """
        if not path:
            return None if self.root is None else self.root.start_mark.line + 1
        parent = self.node(*path[:-1])
        found = _child(parent, path[-1])
        if found is None:
            return None
        return found[0].start_mark.line + 1

    def scalar_text(self, *path: PathStep) -> str | None:
        """The text of the scalar at ``path`` as written, before YAML reads it as a type.

        ``python: 3.10`` is the float 3.1 to YAML; its text is ``"3.10"``. Quotes are
        removed (the text of ``'3.10'`` is ``3.10`` too). ``None`` when the value is
        absent or not a scalar.
        """
        node = self.node(*path)
        if not isinstance(node, yaml.ScalarNode):
            return None
        return str(node.value)


def load(text: str) -> YamlDocument:
    """Read YAML ``text``, keeping the node tree for line numbers.

    Raises
    ------
    SpecError
        The text is not valid YAML (with the line PyYAML points at), holds more than one
        document, or repeats a key in a mapping.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _refuse_duplicate_keys(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "it is malformed"
        advice = (
            "indent with spaces: YAML does not allow tabs"
            if "'\\t'" in problem
            else "check the indentation, the ': ' after each key and the quoting of values "
            "with special characters around this line"
        )
        raise SpecError(
            f"the YAML does not parse: {problem}; {advice}.",
            line=mark.line + 1 if mark is not None else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(
            f"the YAML does not parse: {exc}. Check the indentation and quoting."
        ) from exc
    except RecursionError as exc:
        raise SpecError("the YAML is nested too deeply to read; flatten it.") from exc
    finally:
        loader.dispose()
    return YamlDocument(data=data, root=root)


def load_mapping(text: str) -> YamlDocument | None:
    """:func:`load` for ``detect``: the document if it is a mapping, else ``None``.

    Never raises: text that is not YAML, or YAML that is not a mapping (a requirements
    list reads as one long string), is simply not claimed.
    """
    try:
        document = load(text)
    except SpecError:
        return None
    return document if isinstance(document.data, dict) else None


def string_list(document: YamlDocument, key: str) -> list[tuple[int | None, str]]:
    """The strings of the list under top-level ``key``, each with its 1-based line.

    A single string counts as a list of one; an absent or empty value as no items.

    Raises
    ------
    SpecError
        The value is not a string or a list of strings.
    """
    value = document.data.get(key) if isinstance(document.data, dict) else None
    if value is None:
        return []
    if isinstance(value, str):
        return [(document.line(key), value)]
    if not isinstance(value, list):
        raise SpecError(
            f"{key} must be a list of strings, not {kind(value)}; write it as "
            f"{key}: [first, second] or one '- item' per line.",
            line=document.line(key),
        )
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise SpecError(
                f"item {index + 1} of {key} is {kind(item)}, not a string; "
                "write it as text (quote it if YAML reads it as something else).",
                line=document.line(key, index),
            )
        items.append((document.line(key, index), item))
    return items


def string_mapping(document: YamlDocument, key: str) -> tuple[tuple[str, str], ...]:
    """Environment variables under top-level ``key``: sorted ``(name, value)`` pairs.

    Values are taken as written (``0.10`` stays ``0.10``, ``yes`` stays ``yes``); an
    empty value is the empty string.

    Raises
    ------
    SpecError
        The value is not a mapping, a name is not a valid variable name, or a value is a
        list or mapping.
    """
    value = document.data.get(key) if isinstance(document.data, dict) else None
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SpecError(
            f"{key} must be a mapping of variable names to values, not {kind(value)}; "
            f"write it as {key}: {{NAME: value}} or one 'NAME: value' per line.",
            line=document.line(key),
        )
    pairs = []
    for name, item in value.items():
        line = document.line(key, str(name))
        if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
            raise SpecError(
                f"{name!r} under {key} is not an environment variable name; use letters, "
                "digits and underscores, not starting with a digit (for example OMP_NUM_THREADS).",
                line=line or document.line(key),
            )
        if isinstance(item, (list, dict)):
            raise SpecError(
                f"the value of {name} under {key} is {kind(item)}; a variable holds text, "
                "so quote it as one string.",
                line=line,
            )
        text = "" if item is None else document.scalar_text(key, name)
        pairs.append((name, text if text is not None else str(item)))
    return tuple(sorted(pairs))


def kind(value: Any) -> str:
    """How a YAML value reads to a user: 'a string', 'a list', 'the number 3.1' ..."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty"
    return f"a {type(value).__name__}"


def _child(node: yaml.Node | None, step: PathStep) -> tuple[yaml.Node, yaml.Node] | None:
    """(node that marks where ``step`` is written, the node it leads to), or ``None``."""
    if isinstance(step, int):
        if isinstance(node, yaml.SequenceNode) and 0 <= step < len(node.value):
            item: yaml.Node = node.value[step]
            return item, item
        return None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == step:
                return key, value
    return None


def _refuse_duplicate_keys(root: yaml.Node) -> None:
    """PyYAML keeps the last of two equal keys silently; say so instead."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases can share (or loop back to) a node
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in first and key.value != "<<":
                        raise SpecError(
                            f"the key {key.value!r} is given twice (first on line "
                            f"{first[key.value]}); keep one of them.",
                            line=line,
                        )
                    first[key.value] = line
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
