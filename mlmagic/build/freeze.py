"""The exact package list of an environment: a freeze taken inside it, read strictly.

``uv pip freeze`` says "Using Python 3.11.9 environment at: /opt/mlmagic/env" on
stderr, and a container's output mixes both streams; pip may add warnings. Only lines
that are requirements are packages.
"""

from __future__ import annotations

import re

from mlmagic.build.dockerfile import ENV_PREFIX

__all__ = ["FREEZE_SCRIPT", "parse_freeze"]

#: Shell that freezes the environment mlmagic made, else whatever pip the image has.
FREEZE_SCRIPT = (
    f"if [ -x {ENV_PREFIX}/bin/python ] && command -v uv >/dev/null; then "
    f"uv pip freeze --python {ENV_PREFIX}/bin/python; "
    "elif command -v python3 >/dev/null; then python3 -m pip freeze; "
    "else python -m pip freeze; fi"
)

# name==version, name===version, name @ url, and editable installs (-e url).
_REQUIREMENT = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:===?|\s@\s)\S|-e\s+\S)")


def parse_freeze(output: str) -> list[str]:
    """The sorted requirement lines of a freeze's ``output``; anything else is dropped."""
    lines = (line.strip() for line in output.splitlines())
    return sorted(line for line in lines if _REQUIREMENT.match(line))
