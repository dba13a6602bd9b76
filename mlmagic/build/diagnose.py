"""Why a build step failed, in one phrase, from the last lines of its output. Pure: no I/O.

The installers say the cause in their own words, deep in their output: uv and pip for
Python packages, apt for system packages, micromamba for conda packages, BuildKit for a
command's exit code. :func:`explain` finds the first cause it recognises and says it the
way a user would (``"scikit-lern==1.5 was not found in the package index"``); else it
falls back to the last line that looks like an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["explain", "shorten"]

# Decoration uv, pip and BuildKit put before a line: colours, tree art, "cause:".
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DECORATION = re.compile(
    "^[\\s\u00d7\u2502\u2570\u2500\u25b6|]*(?:(?:caused by|cause|error|E):\\s*)?", re.IGNORECASE
)
# BuildKit's last word on a failed RUN.
_EXIT = re.compile(
    r'(?:process "(?:/bin/sh -c )?(.*)" did not complete successfully'
    r"|executor failed running \[(?:/bin/sh -c )?(.*)\]): exit code: (\d+)"
)
# Lines that are advice or noise, never the cause.
_NOISE = re.compile(
    r"^(?:hint|note|help|warning|to fix this|see above|\[notice\]|using python|\d+\.\s)",
    re.IGNORECASE,
)
_ERRORISH = re.compile(r"error|fail|not found|unable|cannot|can't|denied", re.IGNORECASE)


def explain(lines: Sequence[str]) -> str:
    """The cause of a failed step, as a phrase that starts lower case and has no final stop.

    Parameters
    ----------
    lines
        The last lines of the step's output (BuildKit's ``ERROR`` line may be the last).

    Returns
    -------
    str
        ``"<requirement> was not found in the package index"``, ``"the apt package X was
        not found"``, ``"the command `...` failed with exit code N"`` and so on; the last
        meaningful line when no known cause is there; ``"the step failed"`` for no output.
    """
    clean = [_ANSI.sub("", line).rstrip() for line in lines]
    exit_match = next((m for m in map(_EXIT.search, reversed(clean)) if m), None)
    output = [line for line in clean if not _EXIT.search(line)]
    # Wrapped sentences (uv breaks its explanations across lines) read as one text.
    text = " ".join(_DECORATION.sub("", line).strip() for line in output)
    for rule in _RULES:
        cause = rule(text)
        if cause:
            return cause
    last = _last_meaningful(output)
    if exit_match:
        new_style, old_style, code = exit_match.groups()
        command = new_style if new_style is not None else old_style
        said = f": {last}" if last else ""
        return f"the command `{shorten(command)}` failed with exit code {code}{said}"
    return last or "the step failed"


def _uv_not_found(text: str) -> str | None:
    match = re.search(r"Because (\S+) was not found in the package (?:registry|index)", text)
    if not match:
        return None
    wanted = re.search(rf"you require ({re.escape(match.group(1))}[^\s,]*)", text)
    name = wanted.group(1).rstrip(".") if wanted else match.group(1)
    return f"{name} was not found in the package index"


def _uv_no_version(text: str) -> str | None:
    match = re.search(r"Because there (?:is|are) no versions? of ([^\s,]+?)(?: and|,)", text)
    if match:
        return f"{match.group(1)} matches no version in the package index"
    match = re.search(r"Because only (.+?) (?:is|are) available and you require ([^\s,]+)", text)
    if match:
        wanted = match.group(2).rstrip(".")
        return f"{wanted} matches no version in the package index (only {match.group(1)})"
    return None


def _pip_not_found(text: str) -> str | None:
    match = re.search(
        r"Could not find a version that satisfies the requirement (\S+) \(from versions: (.*?)\)",
        text,
    )
    if not match:
        return None
    requirement, versions = match.groups()
    if versions.strip() == "none":
        return f"{requirement} was not found in the package index"
    return f"no version matching {requirement} is in the package index"


def _conflict(text: str) -> str | None:
    uv = re.search(
        r"No solution found when resolving dependencies:?\s*(Because .+?)(?:, we can|$)", text
    )
    if uv:
        return f"the requirements cannot all be met: {uv.group(1)[0].lower()}{uv.group(1)[1:]}"
    pip = re.search(r"(Cannot install .+? because these package versions have conflicting)", text)
    if pip or "ResolutionImpossible" in text:
        detail = f": {pip.group(1)} dependencies" if pip else ""
        return f"the requirements cannot all be met{detail}"
    return None


def _apt_missing(text: str) -> str | None:
    match = re.search(r"Unable to locate package (\S+)", text)
    if match:
        return f"the apt package {match.group(1)} was not found: check its name"
    match = re.search(r"Package '?(\S+?)'? has no installation candidate", text)
    if match:
        return f"the apt package {match.group(1)} has no installation candidate"
    return None


def _conda_missing(text: str) -> str | None:
    match = re.search(r"nothing provides requested (\S+)", text) or re.search(
        r"(\S+) does not exist \(perhaps a typo or a missing channel\)", text
    )
    if match:
        return f"the conda package {match.group(1)} was not found in the channels"
    return None


def _tls(text: str) -> str | None:
    if not re.search(
        r"invalid peer certificate|CERTIFICATE_VERIFY_FAILED|certificate verify failed|"
        r"UnknownIssuer|self[- ]signed certificate",
        text,
    ):
        return None
    return (
        "the package index's TLS certificate is not trusted: if a proxy intercepts HTTPS, "
        "set SSL_CERT_FILE to its CA bundle"
    )


def _network(text: str) -> str | None:
    # The innermost cause comes last ("tcp connect error", then "Connection refused").
    found = _last(
        r"dns error|Temporary failure (?:in name resolution|resolving '[^']+')|"
        r"Name or service not known|Connection refused|Failed to establish a new connection|"
        r"Network is unreachable|tcp connect error|Could not resolve '[^']+'|"
        r"operation timed out|Read timed out",
        text,
    )
    if found is None:
        return None
    where = re.search(r"Failed to fetch:? `?(\S+?)`?(?: |$)", text) or re.search(
        r"resolving '([^']+)'", text
    )
    place = where.group(1) if where else "the package index"
    return f"the network could not reach {place} ({found.group(0)})"


def _base_image(text: str) -> str | None:
    unreachable = re.search(
        r'failed to do request: \w+ "https?://([^/]+)/v2/(\S+?)/manifests/([^"]+)"', text
    )
    if unreachable:
        host, repository, tag = unreachable.groups()
        image = f"{repository.removeprefix('library/')}:{tag}"
        return (
            f"the base image {image} is not in the engine and {host} cannot be reached: "
            "pull or build it first, or choose another base"
        )
    missing = re.search(
        r"(?:failed to resolve source metadata for|pull access denied for) (\S+?)[:,]? .*?"
        r"(?:not found|denied|does not exist)",
        text,
    )
    if missing:
        image = missing.group(1).removeprefix("docker.io/").removeprefix("library/")
        return f"the base image {image} was not found: check its name, or choose another base"
    return None


def _our_check(text: str) -> str | None:
    # The renderer's own checks explain themselves, prefixed "mlmagic: ".
    match = re.search(r"mlmagic: (.+?)(?= mlmagic: |$)", text)
    return match.group(1).strip() if match else None


_RULES: tuple[Callable[[str], str | None], ...] = (
    _our_check,
    _base_image,
    _uv_not_found,
    _uv_no_version,
    _pip_not_found,
    _conflict,
    _apt_missing,
    _conda_missing,
    _tls,
    _network,
)


def _last(pattern: str, text: str) -> re.Match[str] | None:
    matches = list(re.finditer(pattern, text))
    return matches[-1] if matches else None


def _last_meaningful(lines: Sequence[str]) -> str | None:
    """The last line that says something: an error-looking one if any, else the last."""
    said = [_DECORATION.sub("", line).strip() for line in lines]
    said = [line for line in said if line and not _NOISE.match(line)]
    errors = [line for line in said if _ERRORISH.search(line)]
    chosen = errors or said
    return shorten(chosen[-1], 200) if chosen else None


def shorten(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
