"""The ``pip`` format: a requirements.txt, one requirement per line.

Each requirement is read with :class:`packaging.requirements.Requirement` (PEP 508:
version specifiers, extras, environment markers, ``name @ URL``) and written back in one
canonical form by :func:`normalise_requirement`: the project name canonicalised
(``Scikit_Learn`` → ``scikit-learn``), extras canonicalised, the rest as ``packaging``
renders it. :func:`sort_requirements` then drops duplicates and sorts by name, so
reordering lines, spacing and comments never change the spec (nor the image).

Of pip's options a cell may use ``--index-url``/``-i`` and ``--extra-index-url``.
``-r``/``-c``/``-e`` name files or folders, and a cell has none beside it; they are
refused with a message saying what to write instead, like every other option.

Text that only YAML would write (``key: value``, ``- item``) but that no YAML format
claimed, because it does not parse or is a bare list, gets the YAML error instead of a
pip one.

The conda and mlmagic YAML formats read their ``pip`` lists with :func:`read_lines`, so
the three formats accept and normalise requirements the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlmagic.exceptions import SpecError
from mlmagic.spec import _yaml
from mlmagic.spec.base import EnvironmentSpec

__all__ = [
    "PipLines",
    "detect",
    "normalise_requirement",
    "parse",
    "read_lines",
    "sort_requirements",
]

# pip's rule: a comment starts at a `#` at the start of a line or after whitespace, so
# the `#egg=` or `#sha256=` fragment of a URL is not one.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_CANONICAL_NAME = re.compile(r"^[a-z0-9-]+")
# `key: value` or `- item`: a line that only YAML would write.
_YAML_LINE = re.compile(r"^\s*([A-Za-z_][\w.-]*:(\s|$)|-\s)")
# `pkg==1.0 --hash=sha256:...`: pip's per-requirement options.
_TRAILING_OPTION = re.compile(r"\s(--?[A-Za-z][\w-]*)")
_INDEX_OPTIONS = {"-i": "index_url", "--index-url": "index_url"}
_EXTRA_INDEX_OPTIONS = {"--extra-index-url"}
_FILE_OPTIONS = {
    "-r": "a requirements file",
    "--requirement": "a requirements file",
    "-c": "a constraints file",
    "--constraint": "a constraints file",
}
_EDITABLE_OPTIONS = {"-e", "--editable"}
_VALID_EXAMPLE = (
    "a valid requirement is a package name with optional extras, version and marker, "
    'for example: pandas>=2.2, scikit-learn==1.5.2, torch[cuda]; python_version < "3.13" '
    "or name @ https://host/name-1.0-py3-none-any.whl"
)


@dataclass(frozen=True)
class PipLines:
    """What a list of requirements lines asks for.

    Attributes
    ----------
    requirements
        Normalised requirements, deduplicated and sorted (:func:`sort_requirements`).
    index_url
        The last ``--index-url``/``-i`` given, or ``None``.
    extra_index_urls
        ``--extra-index-url`` values in the order given, without repeats.
    """

    requirements: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()


def detect(text: str) -> bool:
    """Claim any text: requirements are the fallback format, tried last."""
    return True


def parse(text: str) -> EnvironmentSpec:
    """Read requirements.txt text into a ``pip`` spec.

    Comments (whole-line and after whitespace), blank lines and ``\\`` continuations
    are handled as pip does.

    Raises
    ------
    SpecError
        A requirement does not parse, or a line uses a pip option a cell cannot use;
        ``line`` is the (first) line of the offending requirement.
    """
    try:
        lines = read_lines(_logical_lines(text))
    except SpecError:
        _refuse_as_yaml(text)
        raise
    return EnvironmentSpec(
        format="pip",
        pip=lines.requirements,
        index_url=lines.index_url,
        extra_index_urls=lines.extra_index_urls,
    )


def read_lines(lines: Iterable[tuple[int | None, str]]) -> PipLines:
    """Read requirements lines (each with its 1-based line number, or ``None``).

    A line may hold a requirement, an index option, a comment or nothing. Lines are
    already joined (no ``\\`` continuations); comments are removed here.

    Raises
    ------
    SpecError
        As :func:`parse`.
    """
    requirements: list[str] = []
    index_url: str | None = None
    extra_index_urls: list[str] = []
    for number, raw in lines:
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        if not line.startswith("-"):
            requirements.append(normalise_requirement(line, line=number))
            continue
        option, value = _split_option(line)
        if option in _INDEX_OPTIONS:
            index_url = _option_value(option, value, number)
        elif option in _EXTRA_INDEX_OPTIONS:
            url = _option_value(option, value, number)
            if url not in extra_index_urls:
                extra_index_urls.append(url)
        else:
            raise _refused_option(option, value, number)
    return PipLines(
        requirements=sort_requirements(requirements),
        index_url=index_url,
        extra_index_urls=tuple(extra_index_urls),
    )


def normalise_requirement(text: str, *, line: int | None = None) -> str:
    """One requirement in canonical form, for example ``Scikit_Learn >= 1.5`` →
    ``scikit-learn>=1.5``.

    The name and extras are canonicalised (PEP 503, PEP 685) and the extras sorted; the
    version specifiers (sorted) and the marker are written as ``packaging`` renders
    them, the URL as given.

    Parameters
    ----------
    text
        A PEP 508 requirement, without comments.
    line
        The line it came from, for the error.

    Raises
    ------
    SpecError
        ``text`` is not a valid requirement (the message quotes it and shows valid ones).
    """
    text = text.strip()
    trailing = _TRAILING_OPTION.search(text)
    if trailing is not None:
        option = trailing.group(1)
        raise SpecError(
            f"{text!r} carries the pip option {option}; options after a requirement "
            "(such as --hash) are not supported in a cell. Remove the option and keep the "
            "requirement.",
            line=line,
        )
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise SpecError(
            f"{text!r} is not a valid requirement ({reason}); {_VALID_EXAMPLE}.", line=line
        ) from exc
    # Rendered here rather than with str(requirement), whose spacing has changed between
    # packaging releases: the text is part of the image's cache key.
    rendered: str = canonicalize_name(requirement.name)
    if requirement.extras:
        rendered += f"[{','.join(sorted(canonicalize_name(e) for e in requirement.extras))}]"
    if requirement.url:
        rendered += f" @ {requirement.url}"
    else:
        rendered += str(requirement.specifier)
    if requirement.marker is not None:
        rendered += f"{' ' if requirement.url else ''}; {requirement.marker}"
    return rendered


def sort_requirements(requirements: Iterable[str]) -> tuple[str, ...]:
    """Normalised requirements without repeats, sorted by canonical name, then text.

    The input must already be normalised (:func:`normalise_requirement`).
    """

    def key(requirement: str) -> tuple[str, str]:
        match = _CANONICAL_NAME.match(requirement)
        return (match.group(0) if match else requirement, requirement)

    return tuple(sorted(set(requirements), key=key))


def _logical_lines(text: str) -> list[tuple[int | None, str]]:
    """Join ``\\``-continued lines; each logical line keeps the number of its first line."""
    logical: list[tuple[int | None, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not parts:
            start = number
        # As pip does: a comment line ends a continuation, and parts join as they are.
        if raw.endswith("\\") and not _COMMENT.match(raw):
            parts.append(raw[:-1])
            continue
        parts.append(raw)
        logical.append((start, "".join(parts)))
        parts = []
    if parts:  # a continuation on the last line continues into nothing
        logical.append((start, "".join(parts)))
    return logical


def _refuse_as_yaml(text: str) -> None:
    """Explain text that was meant as YAML but is not claimed by a YAML format.

    Requirements are the fallback, so YAML that does not parse (or a bare YAML list)
    ends up here; its pip error would only confuse. Returns when the text does not look
    like YAML at all.
    """
    if not any(_YAML_LINE.match(line) for line in text.splitlines()):
        return
    document = _yaml.load(text)  # raises the YAML error, with its line
    if isinstance(document.data, list):
        raise SpecError(
            "the cell is a YAML list, and mlmagic YAML is a mapping: put the list under a "
            "key (pip: for pip packages, apt: for system packages), or write one "
            "requirement per line without the '- '.",
            line=1,
        )


def _split_option(line: str) -> tuple[str, str]:
    """``--opt=value``, ``--opt value``, ``-i value`` or ``-ivalue`` → (option, value)."""
    if line.startswith("--"):
        option, sep, value = line.partition("=")
        if sep and " " not in option:
            return option, value.strip()
        option, _, value = line.partition(" ")
        return option, value.strip()
    option, value = line[:2], line[2:].strip()
    return option, value.removeprefix("=").strip()


def _option_value(option: str, value: str, line: int | None) -> str:
    if not value or " " in value:
        raise SpecError(
            f"{option} takes one URL, for example {option} https://download.pytorch.org/whl/cpu.",
            line=line,
        )
    return value


def _refused_option(option: str, value: str, line: int | None) -> SpecError:
    if option in _FILE_OPTIONS:
        return SpecError(
            f"{option} {value} refers to {_FILE_OPTIONS[option]}, and a cell has no files "
            "beside it: list the packages themselves in the cell (or build from a file "
            "with Environment.from_requirements).",
            line=line,
        )
    if option in _EDITABLE_OPTIONS:
        return SpecError(
            f"{option} {value} asks for an editable install from a folder, and a cell has "
            "no files beside it: list the package itself (its name, or name @ "
            "git+https://host/repo.git for a repository), or build from a file with "
            "Environment.from_requirements.",
            line=line,
        )
    return SpecError(
        f"the pip option {option} is not supported in a cell; only --index-url (-i) and "
        "--extra-index-url are. Remove the line (index settings such as PIP_INDEX_URL in "
        "the host's environment are carried into builds).",
        line=line,
    )
