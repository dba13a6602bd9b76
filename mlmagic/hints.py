"""What to do next, said in the words of the front end the user is in.

An error of the API names its cause; what the user can do about it depends on where
they are: in Python (``ws.runs.list()``), in a notebook with the magics (``%runs``) or in a
terminal (``mlmagic run list``). A raise site attaches a :class:`Hint` holding all three
(``MlmagicError(message, hint=LIST_RUNS)``); ``str(error)`` ends with the Python one, and
each front end renders the error with its own through :func:`render`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "BUILD_ENVIRONMENT",
    "LIST_MODELS",
    "LIST_RUNS",
    "LIST_SERVICES",
    "NEW_KEYS",
    "REGISTER_ANY_PATH",
    "RELOAD_SERVICE",
    "RUN_FILES",
    "SERVICE_EXISTS",
    "SERVICE_LOGS",
    "Frontend",
    "Hint",
    "render",
]

#: Where an error is shown: the Python API, the IPython magics, the ``mlmagic`` command.
Frontend = Literal["python", "magic", "cli"]


@dataclass(frozen=True)
class Hint:
    """The same advice for each front end; ``{name}`` fields are filled by :meth:`format`."""

    python: str
    magic: str
    cli: str

    def format(self, **values: str) -> Hint:
        """This hint with its ``{fields}`` filled in."""
        return replace(
            self,
            python=self.python.format(**values),
            magic=self.magic.format(**values),
            cli=self.cli.format(**values),
        )

    def for_frontend(self, frontend: Frontend) -> str:
        """The advice in the words of ``frontend``."""
        return str(getattr(self, frontend))


def render(error: BaseException, frontend: Frontend) -> str:
    """The error's message with its hint for ``frontend`` (if it carries one).

    The hint ends the first line, so a one-line error says the cause and what to do, and
    the details that follow (a log's last lines) stay below.
    """
    hint: Hint | None = getattr(error, "hint", None)
    if hint is None:
        return str(error)
    first, newline, rest = Exception.__str__(error).partition("\n")
    return f"{first} {hint.for_frontend(frontend)}{newline}{rest}"


LIST_RUNS = Hint(
    python="ws.runs.list() lists the runs.",
    magic="%runs lists the runs.",
    cli="`mlmagic run list` lists the runs.",
)
RUN_FILES = Hint(
    python="run.files() lists what it has.",
    magic="run.files() lists what it has.",
    cli="`mlmagic run show {run}` lists what it has.",
)
LIST_MODELS = Hint(
    python="Register one with run.register_model(...) or ws.models.register(...); "
    "ws.models.list() lists them.",
    magic="Register one with run.register_model(...); %models lists them.",
    cli="Register one with `mlmagic model register NAME PATH`; `mlmagic model list` lists them.",
)
REGISTER_ANY_PATH = Hint(
    python="Register a file or folder of the run's outputs (like outputs/model.pkl), or use "
    "ws.models.register for any other path.",
    magic="Register a file or folder of the run's outputs (like outputs/model.pkl), or use "
    "ws.models.register for any other path.",
    cli="Register a file or folder of the run's outputs (like outputs/model.pkl), or leave "
    "out --run to register any other path.",
)
SERVICE_EXISTS = Hint(
    python="delete it (ws.services.get({name!r}).delete()) or update it (svc.update(...)).",
    magic="delete it (ws.services.get({name!r}).delete()) or update it (svc.update(...)).",
    cli="delete it (`mlmagic service delete {name}`), or rebuild it from its files "
    "(`mlmagic service reload {name}`).",
)
LIST_SERVICES = Hint(
    python="ws.services.list() lists them.",
    magic="%services lists them.",
    cli="`mlmagic service list` lists them.",
)
BUILD_ENVIRONMENT = Hint(
    python="Define it with Environment.from_text(NAME, ...).register().",
    magic="Define it with %%environment NAME.",
    cli="Define it with `mlmagic env build FILE --name NAME`.",
)
SERVICE_LOGS = Hint(
    python="See ws.services.get({name!r}).get_logs().",
    magic="See ws.services.get({name!r}).get_logs().",
    cli="See `mlmagic service logs {name}`.",
)
RELOAD_SERVICE = Hint(
    python="Fix it, then ws.services.get({name!r}).reload() (or .delete()).",
    magic="Fix it, then ws.services.get({name!r}).reload() (or .delete()).",
    cli="Fix it, then `mlmagic service reload {name}` (or `mlmagic service delete {name}`).",
)
NEW_KEYS = Hint(
    python="svc.regen_key() makes new ones.",
    magic="svc.regen_key() makes new ones.",
    cli="`mlmagic service keys {name} --regenerate primary` makes new ones.",
)
