"""Cell text → :class:`EnvironmentSpec`, by ordered detection of the format.

Each format module has ``detect(text)`` and ``parse(text)`` (see :mod:`.base`). They are
tried in :data:`DETECTION_ORDER`; the first that claims the text wins. An explicit format
(``--format``) skips detection.
"""

from __future__ import annotations

from types import ModuleType

from mlmagic.exceptions import SpecError
from mlmagic.spec import conda, dockerfile, mlmagic_yaml, requirements
from mlmagic.spec.base import FORMATS, SOLVERS, EnvironmentSpec, RegistryLogin

__all__ = [
    "DETECTION_ORDER",
    "FORMATS",
    "SOLVERS",
    "EnvironmentSpec",
    "RegistryLogin",
    "detect_format",
    "parse",
]

_MODULES: dict[str, ModuleType] = {
    "dockerfile": dockerfile,
    "conda": conda,
    "yaml": mlmagic_yaml,
    "pip": requirements,
}
#: Formats in the order they are asked whether a text is theirs; ``pip`` takes the rest.
DETECTION_ORDER = ("dockerfile", "conda", "yaml", "pip")


def detect_format(text: str) -> str:
    """Name the format of ``text`` (one of :data:`FORMATS`)."""
    for name in DETECTION_ORDER:
        if _MODULES[name].detect(text):
            return name
    return "pip"


def parse(text: str, format: str | None = None) -> EnvironmentSpec:
    """Parse cell or file text into an :class:`EnvironmentSpec`.

    Parameters
    ----------
    text
        The definition.
    format
        One of :data:`FORMATS`; ``None`` detects it.

    Raises
    ------
    SpecError
        The text is empty, the format unknown, or the text malformed for its format.
    """
    if not text.strip():
        raise SpecError(
            "The environment definition is empty: put requirements, a conda "
            "environment.yml, a Dockerfile or mlmagic YAML in the cell."
        )
    if format is None:
        format = detect_format(text)
    if format not in _MODULES:
        raise SpecError(f"Unknown format {format!r}; use one of {', '.join(FORMATS)}.")
    spec: EnvironmentSpec = _MODULES[format].parse(text)
    return spec
