"""The ``dockerfile`` format: a Dockerfile, built as written.

mlmagic adds nothing to a Dockerfile: the spec keeps the text (``user_managed`` is true:
mlmagic installs nothing into it), and :func:`parse` only checks what would otherwise
fail late in a build: there is a ``FROM``, nothing but ``ARG`` comes before it, and every
line starts a known instruction (lines inside a ``\\`` continuation or a heredoc body
are not instructions). ``base_image`` names the image of the last stage, for display.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlmagic.exceptions import SpecError
from mlmagic.spec.base import EnvironmentSpec

__all__ = ["INSTRUCTIONS", "Instruction", "detect", "instructions", "parse"]

#: The Dockerfile instructions (upper case; Dockerfiles may write them in any case).
INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$")
_FIRST_INSTRUCTION = re.compile(r"^(FROM|ARG)\s+\S", re.IGNORECASE)
# `<<EOF`, `<<-EOF`, `<<"EOF"`: a heredoc whose body runs to a line holding only EOF.
_HEREDOC = re.compile(r"(?:^|\s)<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_HEREDOC_INSTRUCTIONS = frozenset({"ADD", "COPY", "RUN"})
_VARIABLE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Instruction:
    """One instruction of a Dockerfile.

    Attributes
    ----------
    line
        The 1-based line it starts on.
    keyword
        The instruction, upper case (``RUN``).
    arguments
        The rest, continuation lines joined with spaces (heredoc bodies left out).
    """

    line: int
    keyword: str
    arguments: str


def detect(text: str) -> bool:
    """A Dockerfile: a ``# syntax=`` directive first, or ``FROM``/``ARG`` as the first
    instruction after blank lines and comments."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            directive = _DIRECTIVE.match(line)
            if directive is not None and directive.group(1).lower() == "syntax":
                return True
            continue
        return _FIRST_INSTRUCTION.match(line) is not None
    return False


def parse(text: str) -> EnvironmentSpec:
    """Check a Dockerfile and keep it as written (a trailing newline ensured).

    Raises
    ------
    SpecError
        There is no ``FROM``, an instruction other than ``ARG`` comes before it, a
        ``FROM`` names no image, or a line starts with an unknown instruction.
    """
    steps = instructions(text)
    stages: dict[str, str] = {}
    global_args: dict[str, str] = {}
    base_image: str | None = None
    for step in steps:
        if step.keyword == "FROM":
            base_image, stage = _from_image(step, global_args, stages)
            if stage:
                stages[stage] = base_image
        elif base_image is None and step.keyword == "ARG":
            global_args.update(_arg_defaults(step.arguments))
        elif base_image is None:
            raise SpecError(
                f"{step.keyword} comes before the first FROM; a Dockerfile starts with "
                "FROM <image> (only ARG may come before it).",
                line=step.line,
            )
    if base_image is None:
        raise SpecError(
            "The Dockerfile has no FROM line; start it with FROM <image>, for example "
            "FROM python:3.11-slim."
        )
    return EnvironmentSpec(
        format="dockerfile",
        base_image=base_image,
        user_managed=True,
        dockerfile=text if text.endswith("\n") else text + "\n",
    )


def instructions(text: str, *, numbers: Sequence[int] | None = None) -> list[Instruction]:
    """The instructions of Dockerfile ``text``, in order.

    Parser directives, comments and blank lines are skipped; ``\\`` continuations (or
    the character an ``# escape=`` directive names) are joined; heredoc bodies are
    skipped.

    Parameters
    ----------
    text
        Dockerfile text (or a part of one, such as extra steps).
    numbers
        The line number to report for each line of ``text``, when ``text`` was taken
        from a larger document; by default the lines count from 1.

    Raises
    ------
    SpecError
        A line starts with a word that is not a Dockerfile instruction.
    """
    escape = _escape_character(text)
    found: list[Instruction] = []
    lines = _numbered(text, numbers)
    for number, line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, *rest = stripped.split(None, 1)
        arguments = rest[0] if rest else ""
        if keyword.endswith(escape) and keyword[: -len(escape)].upper() in INSTRUCTIONS:
            keyword, arguments = keyword[: -len(escape)], escape  # `RUN\` continues
        if keyword.upper() not in INSTRUCTIONS:
            raise SpecError(
                f"{keyword!r} is not a Dockerfile instruction; a line starts with one of "
                f"{', '.join(sorted(INSTRUCTIONS))}. Check the spelling, or end the line "
                f"before with {escape} to continue it.",
                line=number,
            )
        parts = [arguments.strip()]
        while parts[-1].endswith(escape):
            parts[-1] = parts[-1][: -len(escape)].rstrip()
            following = _next_content_line(lines)
            if following is None:
                break
            parts.append(following.strip())
        joined = " ".join(part for part in parts if part)
        found.append(Instruction(number, keyword.upper(), joined))
        heredocs = _HEREDOC.finditer(joined) if keyword.upper() in _HEREDOC_INSTRUCTIONS else ()
        for heredoc in heredocs:
            _skip_heredoc(lines, heredoc.group(3), strip_tabs=heredoc.group(1) == "-")
    return found


def _numbered(text: str, numbers: Sequence[int] | None) -> Iterator[tuple[int, str]]:
    lines = text.splitlines()
    return iter(zip(numbers or range(1, len(lines) + 1), lines, strict=False))


def _next_content_line(lines: Iterator[tuple[int, str]]) -> str | None:
    """The next line of a continuation: Docker drops comment and blank lines inside it."""
    for _, line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return line
    return None


def _skip_heredoc(lines: Iterator[tuple[int, str]], word: str, *, strip_tabs: bool) -> None:
    for _, line in lines:
        body = line.lstrip("\t") if strip_tabs else line
        if body.rstrip() == word:
            return


def _escape_character(text: str) -> str:
    """The continuation character: ``\\``, or what an ``# escape=`` directive says.

    Directives count only at the very top, before any comment, blank line or instruction.
    """
    for line in text.splitlines():
        directive = _DIRECTIVE.match(line.strip())
        if directive is None:
            break
        if directive.group(1).lower() == "escape" and directive.group(2) in ("\\", "`"):
            return directive.group(2)
    return "\\"


def _from_image(
    step: Instruction, args: dict[str, str], stages: dict[str, str]
) -> tuple[str, str | None]:
    """(image, stage name) of a ``FROM``; an earlier stage's name resolves to its image."""
    words = [w for w in step.arguments.split() if not w.startswith("--")]
    if not words:
        raise SpecError(
            "FROM names no image; write FROM <image>, for example FROM python:3.11-slim.",
            line=step.line,
        )
    image = _substitute(words[0], args)
    stage = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
    return stages.get(image.lower(), image), stage


def _arg_defaults(arguments: str) -> dict[str, str]:
    """``NAME=value`` pairs of an ``ARG`` line (names without a default are left out)."""
    defaults = {}
    for word in arguments.split():
        name, sep, value = word.partition("=")
        if sep:
            defaults[name] = value.strip("\"'")
    return defaults


def _substitute(word: str, args: dict[str, str]) -> str:
    """Expand ``$NAME``, ``${NAME}`` and ``${NAME:-default}``; leave unknown ones as written."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if args.get(name):
            return args[name]
        if match.group(2) is not None:
            return match.group(2)
        return match.group(0)

    return _VARIABLE.sub(value, word)
