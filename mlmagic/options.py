"""Every option of the front ends, declared once and applied to each parser.

The magics (``%%environment``, ``%submit``, ``%deploy``, ``%runs``) and the ``mlmagic``
command take the same options with the same help. Each :class:`Option` is written here
once; :func:`magic_options` applies a table to a magic (IPython's ``magic_arguments``, as
IPython's ``magics/script.py`` builds ``script_args`` once and applies it to each magic)
and :func:`add_options` to an :mod:`argparse` parser of the command line. The keywords of
the API call an option feeds are declared with it, so :func:`api_keywords` turns parsed
options into the call's keywords for either front end.

This module does not import IPython: the command line must start without it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mlmagic.distributed.config import FRAMEWORKS, distribution
from mlmagic.events import Status
from mlmagic.run.notebook import parse_parameters
from mlmagic.spec import FORMATS, SOLVERS
from mlmagic.workspace import TARGETS

if TYPE_CHECKING:
    pass

__all__ = [
    "COMPOSITES",
    "COMPUTE_ATTACH",
    "COMPUTE_UP",
    "DEPLOY",
    "ENVIRONMENT",
    "ENVIRONMENT_BUILD",
    "RUN_FILTERS",
    "SUBMIT",
    "Option",
    "add_options",
    "api_keywords",
    "magic_options",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Option:
    """One ``--option``: its flags, its help, how argparse reads it, what API keyword it is.

    Attributes
    ----------
    flags
        The option strings, e.g. ``("--source-dir",)``.
    help
        One line for ``--help`` and ``%magic?``.
    keyword
        The keyword of the API call the value goes to, or ``None`` for an option the front
        end handles itself (``--wait``, ``--quiet``).
    parse
        Further :meth:`argparse.ArgumentParser.add_argument` keywords (``choices``,
        ``type``, ``action``, ``default``, ``metavar``, ``required``).
    """

    flags: tuple[str, ...]
    help: str
    keyword: str | None = None
    parse: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        """The attribute of the parsed namespace that holds the value."""
        return self.flags[0].lstrip("-").replace("-", "_")


def _option(*flags: str, help: str, keyword: str | None = None, **parse: Any) -> Option:
    return Option(flags, help, keyword, parse)


_TARGET = _option(
    "--target",
    choices=TARGETS,
    keyword="target",
    help="Where it runs: docker (containers), local (uv venvs and processes) or auto.",
)
_QUIET = _option("--quiet", action="store_true", help="Show only the outcome, not the log.")

#: What ``Environment.from_text`` takes: the definition's own options.
ENVIRONMENT = (
    _option(
        "--format",
        choices=FORMATS,
        keyword="format",
        help="The definition's format; detected when omitted (Dockerfile, conda, YAML, pip).",
    ),
    _option("--base", metavar="IMAGE", keyword="base_image", help="Base image to build on."),
    _option("--python", metavar="3.X", keyword="python", help="Python version to install."),
    _option(
        "--gpu",
        action="store_const",
        const=True,
        keyword="gpu",
        help="Build for NVIDIA GPUs.",
    ),
    _option(
        "--cuda", metavar="X.Y", keyword="cuda", help="Build on this CUDA's image (implies --gpu)."
    ),
    _option(
        "--user-managed",
        action="store_const",
        const=True,
        keyword="user_managed",
        help="Use the base image's Python as it is; install nothing.",
    ),
    _option(
        "--solver",
        choices=SOLVERS,
        keyword="solver",
        help="uv (default) or conda (micromamba in the image).",
    ),
)

#: How an environment is built (``Environments.build``) and shown.
ENVIRONMENT_BUILD = (
    _option("--no-build", action="store_true", help="Register the definition only."),
    _option("--rebuild", action="store_true", keyword="rebuild", help="Ignore the cache."),
    _QUIET,
    _TARGET,
    _option("--compute", metavar="NAME", keyword="compute", help="Build on this compute's engine."),
)

#: What ``Workspace.submit`` takes (the script and its arguments are positional).
SUBMIT = (
    _option(
        "--env",
        required=True,
        metavar="NAME[:VERSION]",
        keyword="environment",
        help="The environment to run in (the latest version unless given).",
    ),
    _option(
        "--experiment",
        default="default",
        keyword="experiment",
        help="Experiment the run is filed under (default: default).",
    ),
    _option(
        "--source-dir",
        metavar="DIR",
        keyword="source_dir",
        help="Folder snapshotted as the working directory (default: the current one).",
    ),
    _option(
        "--gpus",
        default="none",
        keyword="gpus",
        help="none (default), all, auto, a count (2) or device ids (0,1).",
    ),
    _option(
        "--data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        keyword="data",
        help="A folder mounted read-only at /mlmagic/data/NAME (repeatable).",
    ),
    _option("--shm-size", metavar="SIZE", keyword="shm_size", help="Shared memory, e.g. 2g."),
    _option("--memory", metavar="SIZE", keyword="memory", help="Memory limit, e.g. 4g."),
    _option("--cpus", type=float, keyword="cpus", help="CPU limit, e.g. 1.5."),
    _option(
        "--timeout",
        type=float,
        metavar="SECONDS",
        keyword="timeout",
        help="Seconds before the run is stopped and failed.",
    ),
    _option("--name", keyword="name", help="A display name for the run."),
    _option(
        "--tag",
        action="append",
        default=[],
        metavar="K=V",
        keyword="tags",
        help="A tag (repeatable).",
    ),
    _option("--wait", action="store_true", help="Follow the run until it ends."),
    _TARGET,
    _option(
        "--compute",
        metavar="NAME",
        keyword="compute",
        help="Run on this compute: a Ray cluster or a Docker engine (see: mlmagic compute list).",
    ),
    # A notebook's parameters: -p (literals) and -r (text) make one ``parameters=``.
    _option(
        "--parameter",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        keyword="parameters",
        help="A notebook parameter, a Python literal: -p lr=0.01 -p \"opt='adam'\" (repeatable).",
    ),
    _option(
        "--parameter-raw",
        "-r",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        keyword="parameters",
        help="A notebook parameter taken as text, unparsed: -r opt=adam (repeatable).",
    ),
    # A distributed run's layout: the seven options make one ``distributed=`` (COMPOSITES).
    _option(
        "--distributed",
        metavar="FRAMEWORK",
        keyword="distributed",
        help=f"Run as a distributed job of this framework: {', '.join(FRAMEWORKS)}.",
    ),
    _option(
        "--nodes",
        type=int,
        metavar="N",
        keyword="distributed",
        help="Nodes of a distributed run (containers; processes on the local target).",
    ),
    _option(
        "--procs-per-node",
        type=int,
        metavar="P",
        keyword="distributed",
        help="Processes on each node (PyTorch, MPI; default 1).",
    ),
    _option(
        "--workers",
        type=int,
        metavar="W",
        keyword="distributed",
        help="TensorFlow workers (default 1).",
    ),
    _option(
        "--parameter-servers",
        type=int,
        metavar="S",
        keyword="distributed",
        help="TensorFlow parameter servers (default 0).",
    ),
    _option(
        "--chief",
        action="store_const",
        const=True,
        keyword="distributed",
        help="TensorFlow: task 0 is the chief (one of the --workers).",
    ),
    _option(
        "--launcher",
        metavar="LAUNCHER",
        keyword="distributed",
        help="Who starts a PyTorch node's processes: mlmagic (default) or torchrun.",
    ),
)

#: What ``Services.deploy`` takes (the service's name is positional).
DEPLOY = (
    _option(
        "--model",
        action="append",
        default=[],
        required=True,
        metavar="NAME[:VERSION]",
        keyword="models",
        help="A registered model to serve (repeatable).",
    ),
    _option(
        "--entry",
        required=True,
        metavar="FILE",
        keyword="entry_script",
        help="The scoring script (init() and run(raw_data)).",
    ),
    _option(
        "--env",
        required=True,
        metavar="NAME[:VERSION]",
        keyword="environment",
        help="The environment the server runs in.",
    ),
    _option(
        "--source-dir",
        metavar="DIR",
        keyword="source_dir",
        help="Folder holding the entry script (default: the current one).",
    ),
    _option("--port", type=int, keyword="port", help="Port to publish (default: a free one)."),
    _option("--host", keyword="host", help="Address to publish on (default 127.0.0.1)."),
    _option(
        "--publish-host",
        metavar="ADDRESS",
        keyword="publish_host",
        help="Remote engine: publish on this address of its host (0.0.0.0: all), not SSH.",
    ),
    _option("--workers", type=int, default=1, keyword="workers", help="Server processes."),
    _option("--auth", action="store_true", keyword="auth", help="Require a key to score."),
    _option("--gpus", keyword="gpus", help="none, all, a count or device ids."),
    _option("--memory", metavar="SIZE", keyword="memory", help="Memory limit, e.g. 2g."),
    _option("--cpus", type=float, keyword="cpus", help="CPU limit."),
    _QUIET,
    _TARGET,
    _option(
        "--compute", metavar="NAME", keyword="compute", help="Deploy on this compute's engine."
    ),
)

#: What ``Computes.attach`` takes (the compute's name is positional).
COMPUTE_ATTACH = (
    _option(
        "--ray",
        metavar="URL",
        keyword="ray_address",
        help="The cluster's Jobs API (dashboard) address, e.g. http://ray-head:8265.",
    ),
    _option(
        "--docker",
        metavar="URL",
        keyword="docker",
        help="A Docker engine instead: ssh://user@host, tcp://host:2376 or unix:///path.",
    ),
    _option("--tls-ca", metavar="PEM", keyword="tls_ca", help="tcp:// engine: its CA file."),
    _option("--tls-cert", metavar="PEM", keyword="tls_cert", help="tcp:// engine: client cert."),
    _option("--tls-key", metavar="PEM", keyword="tls_key", help="tcp:// engine: client key."),
    _option(
        "--tls-verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        keyword="tls_verify",
        help="tcp:// engine: check its certificate against --tls-ca (default: yes).",
    ),
    _option(
        "--shared-path",
        action=argparse.BooleanOptionalAction,
        default=None,
        keyword="shared_path",
        help="The Docker engine sees this machine's workspace at the same path (default: "
        "only for unix://); otherwise files are copied in and out.",
    ),
    _option(
        "--token-env",
        metavar="VAR",
        keyword="token_env",
        help="The NAME of the environment variable holding its token (never the token).",
    ),
    _option(
        "--storage",
        metavar="DIR",
        keyword="storage",
        help="A folder this machine and the nodes share: outputs come back through it.",
    ),
    _option(
        "--cluster-storage",
        metavar="PATH",
        keyword="cluster_storage",
        help="That folder's path on the nodes, when it differs.",
    ),
    _option(
        "--python",
        default="python",
        metavar="PATH",
        keyword="python",
        help="The interpreter on the nodes (an absolute path is safest).",
    ),
    _option(
        "--env",
        metavar="NAME[:VERSION]",
        keyword="environment",
        help="The environment the nodes already run (nothing is installed per job).",
    ),
)

#: What ``Computes.up`` takes (the compute's name is positional).
COMPUTE_UP = (
    _option(
        "--env",
        required=True,
        metavar="NAME[:VERSION]",
        keyword="environment",
        help="The environment whose image the head and workers run (Ray is added).",
    ),
    _option(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        keyword="workers",
        help="Worker containers (default 1); jobs run on the workers.",
    ),
)

#: Filters of a listing of runs (``Runs.list`` takes the experiment; the rest narrow it).
RUN_FILTERS = (
    _option("--experiment", keyword="experiment", help="Only the runs of this experiment."),
    _option(
        "--status",
        keyword="status",
        choices=[s.value for s in Status],
        type=lambda text: text.capitalize(),
        help="Only the runs with this status.",
    ),
    _option("--limit", keyword="limit", type=int, metavar="N", help="Only the N newest."),
    _option(
        "--since",
        keyword="since",
        metavar="TIME",
        help="Only the runs created since TIME, e.g. 2026-12-01 or 2026-12-01T09:30.",
    ),
)


def add_options(
    parser: argparse.ArgumentParser,
    options: Iterable[Option],
    *,
    optional: Iterable[str] = (),
) -> None:
    """Add ``options`` to a command-line ``parser``.

    ``optional`` names (by ``dest``) options that are required elsewhere but not here,
    e.g. ``entry`` when an inference configuration can name the entry script instead.
    """
    relaxed = set(optional)
    for opt in options:
        parse = dict(opt.parse)
        if opt.dest in relaxed:
            parse.pop("required", None)
        parser.add_argument(*opt.flags, help=opt.help, **parse)


def magic_options(*tables: Iterable[Option]) -> Callable[[F], F]:
    """A decorator adding every option of ``tables`` to a magic's ``magic_arguments``.

    Place it among the ``@argument`` lines, below ``@magic_arguments()``; the options come
    after the arguments written above it, in the order of the tables.
    """
    from IPython.core.magic_arguments import argument

    options = [opt for table in tables for opt in table]

    def decorate(func: F) -> F:
        # magic_arguments builds its parser from the last decorator applied to the first.
        for opt in reversed(options):
            func = argument(*opt.flags, help=opt.help, **opt.parse)(func)
        return func

    return decorate


def _distributed(values: Mapping[str, Any]) -> Any:
    return distribution(
        values["distributed"],
        nodes=values["nodes"],
        procs_per_node=values["procs_per_node"],
        workers=values["workers"],
        parameter_servers=values["parameter_servers"],
        launcher=values["launcher"],
        chief=values["chief"],
    )


#: Keywords that several options feed together: the converter receives every such
#: option's parsed value by ``dest`` and returns the one value of the keyword (it may
#: raise :class:`~mlmagic.exceptions.MlmagicError` for values that do not fit together).
COMPOSITES: Mapping[str, Callable[[Mapping[str, Any]], Any]] = {
    # --distributed/--nodes/... -> a Distribution, or None for a single-node run.
    "distributed": _distributed,
    # -p/-r -> {name: value} of a notebook's parameters.
    "parameters": lambda values: parse_parameters(values["parameter"], values["parameter_raw"]),
}


def api_keywords(options: Iterable[Option], namespace: argparse.Namespace) -> dict[str, Any]:
    """The API call's keywords from the parsed values of ``options`` that name one; the
    options of a keyword in :data:`COMPOSITES` become one value through its converter.
    """
    keywords: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for opt in options:
        if opt.keyword is not None and opt.keyword in COMPOSITES:
            parts.setdefault(opt.keyword, {})[opt.dest] = getattr(namespace, opt.dest)
        elif opt.keyword:
            keywords[opt.keyword] = getattr(namespace, opt.dest)
    for keyword, values in parts.items():
        keywords[keyword] = COMPOSITES[keyword](values)
    return keywords
