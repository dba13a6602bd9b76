"""How the public objects read outside a widget: HTML summaries and text descriptions.

``_repr_html_`` of Environment, Run, Model and Service is a small two-column table, so
nbconvert, GitHub's preview and a plain notebook viewer show something readable;
:func:`describe` is the text of one environment version that ``%envs NAME`` and
``mlmagic env show`` print.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlmagic.environment import Environment

__all__ = ["describe", "html_table"]


def html_table(caption: str, rows: Iterable[tuple[str, object]]) -> str:
    """A captioned table of ``(label, value)`` rows; rows without a value are left out."""
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
        f"<td>{html.escape(str(value))}</td></tr>"
        for label, value in rows
        if value is not None and value != ""
    )
    return f"<table><caption>{html.escape(caption)}</caption>{cells}</table>"


def describe(env: Environment) -> str:
    """A readable description of one environment version (``%envs NAME``, the CLI)."""
    lines = [
        f"{env.ref}  {env.status}  {env.image}",
        f"format: {env.spec.format}",
    ]
    if env.base_reason:
        lines.append(f"base: {env.base_reason}")
    if env.error:
        lines.append(f"error: {env.error.splitlines()[0]}")
    if env.venv:
        lines.append(f"virtual environment (local target): {env.venv}")
    if env.log_path:
        lines.append(f"build log: {env.log_path}")
    lines += ["", "Dockerfile (docker target):", env.dockerfile.rstrip()]
    if env.packages is not None:
        lines += ["", f"Resolved packages ({len(env.packages)}):", *env.packages]
    else:
        lines += ["", "Resolved packages: not built yet"]
    return "\n".join(lines)
