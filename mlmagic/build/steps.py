"""What each build step does, in the user's words, and a failed step said as one line.

BuildKit names a step by its instruction (``[5/5] RUN --mount=type=cache,... uv pip
install -r ...``): accurate, and meaningless to someone who wrote ``scikit-learn``. The
steps :mod:`mlmagic.build.dockerfile` renders are recognised by the commands it writes
and shown as ``[5/5] install the Python packages``; the raw instruction stays in the full
log. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlmagic.build.diagnose import explain, shorten

__all__ = ["StepName", "failure_message", "name_instruction", "split_label"]

_LABEL = re.compile(r"^\[(?:[\w.-]+ )?(\d+)/(\d+)\] (.*)$", re.DOTALL)


@dataclass(frozen=True)
class StepName:
    """A step's name for the step list (``label``) and for an error message (``doing``).

    Attributes
    ----------
    label
        Imperative: ``"install the Python packages"``.
    doing
        The same as an activity: ``"installing the Python packages"``.
    """

    label: str
    doing: str


# (what the instruction contains, its name); the first match wins, so the specific
# commands come before the general ones (installing Python uses apt-get too).
_KNOWN: tuple[tuple[re.Pattern[str], StepName], ...] = tuple(
    (re.compile(pattern), StepName(label, doing))
    for pattern, label, doing in (
        (r"^FROM ", "get the base image", "getting the base image"),
        (r"command -v python3 >/dev/null \|\|", "install Python", "installing Python"),
        (r"apt-get install", "install apt packages", "installing the apt packages"),
        (r"^COPY uv ", "add uv", "adding uv"),
        (r"mlmagic: the base image has Python", "check the Python version", "checking Python"),
        (r"\buv venv\b", "create the Python environment", "creating the Python environment"),
        (r"micromamba create", "create the conda environment", "creating the conda environment"),
        (r"^COPY requirements\.txt ", "add the requirements", "adding the requirements"),
        (r"\buv pip install\b", "install the Python packages", "installing the Python packages"),
    )
)


def name_instruction(instruction: str, *, yours: bool = True) -> StepName:
    """The name of the step that runs ``instruction``.

    Parameters
    ----------
    instruction
        The Dockerfile instruction as BuildKit shows it (``RUN ...``, ``COPY ...``).
    yours
        Whether an instruction mlmagic does not recognise is one the user wrote (an
        environment's ``dockerfile_steps`` or Dockerfile): it is then named
        ``"your Dockerfile steps: ..."``; else by the instruction itself.
    """
    for pattern, name in _KNOWN:
        if pattern.search(instruction):
            return name
    short = shorten(instruction, 60)
    if yours:
        return StepName(f"your Dockerfile steps: {short}", f"in your Dockerfile step `{short}`")
    return StepName(short, f"at `{short}`")


def split_label(label: str) -> tuple[int | None, int | None, str]:
    """``"[3/5] RUN x"`` as ``(3, 5, "RUN x")``; a label without a position as ``(None, None,
    label)``."""
    match = _LABEL.match(label)
    if not match:
        return None, None, label
    index, count, rest = match.groups()
    return int(index), int(count), rest


def failure_message(log_tail: list[str], step: StepName | None, position: str | None) -> str:
    """One sentence, cause first: ``"scikit-lern==1.5 was not found in the package index
    (installing the Python packages, step 5/5)."``

    Parameters
    ----------
    log_tail
        The last lines of the failed step's output.
    step
        What the step was doing, if a step is known to have failed.
    position
        ``"5/5"``, when known.
    """
    cause = explain(log_tail)
    if cause.split(" ", 1)[0] in ("the", "no"):
        cause = cause[0].upper() + cause[1:]
    where = []
    if step is not None:
        where.append(step.doing)
    if position:
        where.append(f"step {position}")
    context = f" ({', '.join(where)})" if where else ""
    return f"{cause.rstrip('.')}{context}."
