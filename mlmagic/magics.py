"""The IPython magics: thin front ends over the public API.

Each magic parses its arguments with ``magic_arguments``, turns a user's mistake into a
``UsageError`` (one red line, no traceback), calls the API, shows a widget fed by the
API's events, and returns the object (Environment, Run, Service) so ``_`` works.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from mlmagic.distributed.config import distribution_options
from mlmagic.environment import Environment, environment_options
from mlmagic.events import Status, drain
from mlmagic.exceptions import BuildError, MlmagicError
from mlmagic.spec import FORMATS, SOLVERS
from mlmagic.workspace import TARGETS, Workspace

if TYPE_CHECKING:
    from mlmagic.deploy.service import Service
    from mlmagic.run.run import Run

__all__ = ["MLMagics"]

F = TypeVar("F", bound=Callable[..., Any])


def _usage_errors(method: F) -> F:
    """Show mlmagic's errors as one red line instead of a traceback."""

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MlmagicError as exc:
            raise UsageError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


@magics_class
class MLMagics(Magics):
    """``%%environment``, ``%envs`` and friends."""

    @property
    def workspace(self) -> Workspace:
        return Workspace.current()

    @magic_arguments()
    @argument("name", help="The environment's name (versions are kept per name).")
    @argument(
        "--format",
        choices=FORMATS,
        help="The cell's format; detected when omitted (Dockerfile, conda, mlmagic YAML, pip).",
    )
    @argument("--base", metavar="IMAGE", help="Base image to build on.")
    @argument("--python", metavar="3.X", help="Python version of the environment.")
    @argument("--gpu", action="store_const", const=True, help="Build on the GPU base image.")
    @argument(
        "--user-managed",
        action="store_const",
        const=True,
        help="Use the base image's Python as it is; install nothing.",
    )
    @argument("--solver", choices=SOLVERS, help="uv (default) or conda (micromamba in the image).")
    @argument("--no-build", action="store_true", help="Register the definition only.")
    @argument("--rebuild", action="store_true", help="Ignore the cache and build again.")
    @argument("--quiet", action="store_true", help="Show only the final line, not the log.")
    @argument("--target", choices=TARGETS, help="docker, local (a uv venv) or auto.")
    @cell_magic
    @_usage_errors
    def environment(self, line: str, cell: str) -> Environment:
        """Turn the cell into a versioned container image environment.

        The cell holds pip requirements, a conda environment.yml, a Dockerfile or mlmagic
        YAML (base_image, python, apt, pip, conda, env, gpu, user_managed,
        dockerfile_steps, registry). Running an unchanged cell again is a cache hit; a
        changed cell makes a new version. Returns the Environment (``env = _``).

        Example::

            %%environment digits-env
            scikit-learn==1.5.2
            pandas>=2
        """
        args = parse_argstring(self.environment, line)
        env = Environment.from_text(args.name, cell, **environment_options(args))
        ws = self.workspace
        if args.no_build:
            return ws.environments.register(env)
        from mlmagic.widgets import BuildView

        view = BuildView(args.name, tail_lines=ws.config.log_tail_lines, quiet=args.quiet)
        display(view)
        try:
            events = ws.environments.build(env, rebuild=args.rebuild, target=args.target)
            built: Environment = drain(events, view.handle)
        except BuildError as exc:
            view.finish(ok=False, summary=str(exc).split("\n")[0])
            log = f" Full log: {exc.log_path}" if exc.log_path else ""
            raise UsageError(f"{str(exc).splitlines()[0]}{log}") from exc
        except BaseException:
            view.finish(ok=False, summary="build interrupted")
            raise
        view.finish(ok=True, summary=_summary(built))
        return built

    @magic_arguments()
    @argument("name", nargs="?", help="Show this environment (its Dockerfile and packages).")
    @argument("--version", type=int, help="A given version instead of the latest.")
    @line_magic
    @_usage_errors
    def envs(self, line: str) -> Any:
        """List environments, or show one with its Dockerfile and resolved packages."""
        args = parse_argstring(self.envs, line)
        if args.name is None:
            return self.workspace.environments.list()
        env = self.workspace.environments.get(args.name, args.version)
        print(describe(env))
        return env

    @magic_arguments()
    @argument("script", nargs="?", help="The script, relative to --source-dir (not with a cell).")
    @argument("--env", required=True, help="Environment NAME or NAME:VERSION (or $env).")
    @argument("--experiment", default="default", help="Experiment the run is filed under.")
    @argument("--source-dir", help="Folder snapshotted as the working directory (default: .).")
    @argument("--gpus", default="none", help="none (default), all, auto, a count or ids (0,1).")
    @argument("--data", action="append", default=[], metavar="NAME=PATH", help="Read-only data.")
    @argument("--shm-size", help="Shared memory, e.g. 2g.")
    @argument("--memory", help="Memory limit, e.g. 4g.")
    @argument("--cpus", type=float, help="CPU limit, e.g. 1.5.")
    @argument("--timeout", type=float, help="Seconds before the run is stopped and failed.")
    @argument("--wait", action="store_true", help="Block until the run ends.")
    @argument("--name", help="A display name for the run.")
    @argument("--tag", action="append", default=[], metavar="K=V", help="A tag (repeatable).")
    @argument("--target", choices=TARGETS, help="docker, local (a process in a venv) or auto.")
    # -- distributed runs (issue 11): to be folded into the option table ----------------
    @argument("--distributed", metavar="FRAMEWORK", help="pytorch, tensorflow or mpi.")
    @argument("--nodes", type=int, help="Nodes (containers) of a distributed run.")
    @argument("--procs-per-node", type=int, help="Processes on each node.")
    @argument("--workers", type=int, help="TensorFlow workers.")
    @argument("--parameter-servers", type=int, help="TensorFlow parameter servers.")
    @argument("--launcher", metavar="torchrun", help="Start PyTorch nodes with torchrun.")
    # -- end of distributed runs ----------------------------------------------------------
    @line_cell_magic
    @_usage_errors
    def submit(self, line: str, cell: str | None = None) -> Run:
        """Run a training script in a container of an environment, with a live widget.

        ``%submit train.py --env digits-env -- --C 0.5`` runs a script of the source
        folder; ``%%submit --env digits-env`` runs the cell itself. Everything after ``--``
        goes to the script. Returns the Run at once (``--wait`` blocks until it ends).
        """
        words = shlex.split(line)
        script_args: list[str] = []
        if "--" in words:
            at = words.index("--")
            words, script_args = words[:at], words[at + 1 :]
        args = parse_argstring(self.submit, shlex.join(words))
        if cell is None and args.script is None:
            raise UsageError(
                "Name the script to run (%submit train.py --env NAME), or use %%submit."
            )
        if cell is not None and args.script is not None:
            raise UsageError(
                f"With %%submit the cell is the script: drop {args.script!r}, or put script "
                "arguments after --."
            )
        run = self.workspace.submit(
            args.script if cell is None else None,
            args.env,
            args=script_args,
            source_dir=args.source_dir,
            experiment=args.experiment,
            name=args.name,
            tags=args.tag,
            gpus=args.gpus,
            data=args.data,
            shm_size=args.shm_size,
            memory=args.memory,
            cpus=args.cpus,
            timeout=args.timeout,
            script_text=cell,
            target=args.target,
            distributed=distribution_options(args),
        )
        show_run(run, wait=args.wait, tail_lines=self.workspace.config.log_tail_lines)
        if args.wait and run.status is not Status.COMPLETED:
            raise UsageError(f"Run {run.id} {run.status.value.lower()}: {run.error}")
        return run

    @magic_arguments()
    @argument("run_id", nargs="?", help="Show this run (live runs are followed).")
    @argument("--experiment", help="Only the runs of this experiment.")
    @line_magic
    @_usage_errors
    def runs(self, line: str) -> Any:
        """List runs (one row each, with params and last metrics), or show one run."""
        args = parse_argstring(self.runs, line)
        if args.run_id is None:
            return self.workspace.runs.list(args.experiment)
        run = self.workspace.runs.get(args.run_id)
        show_run(run, wait=False, tail_lines=self.workspace.config.log_tail_lines)
        return run

    @magic_arguments()
    @argument("name", help="The service's name (lowercase letters, digits, '-').")
    @argument(
        "--model",
        action="append",
        default=[],
        required=True,
        metavar="NAME[:VERSION]",
        help="A registered model (repeatable).",
    )
    @argument("--entry", required=True, help="The scoring script (init() and run(raw_data)).")
    @argument("--env", required=True, help="Environment NAME or NAME:VERSION (or $env).")
    @argument("--source-dir", help="Folder holding the entry script (default: .).")
    @argument("--port", type=int, help="Port on 127.0.0.1 (default: a free one).")
    @argument("--host", help="Address to publish on (default 127.0.0.1).")
    @argument("--workers", type=int, default=1, help="Server worker processes.")
    @argument("--auth", action="store_true", help="Require a key (svc.get_keys()).")
    @argument("--gpus", help="none, all, a count or ids.")
    @argument("--memory", help="Memory limit, e.g. 2g.")
    @argument("--cpus", type=float, help="CPU limit.")
    @argument("--quiet", action="store_true", help="Show only the outcome.")
    @argument("--target", choices=TARGETS, help="docker, local (a process) or auto.")
    @line_magic
    @_usage_errors
    def deploy(self, line: str) -> Service:
        """Serve registered model(s) from a container over HTTP; return the Service.

        Example: ``%deploy digits-svc --model digits:1 --entry score.py --env digits-env``
        then ``svc = _`` and ``svc.run([[0.0] * 64])``.
        """
        args = parse_argstring(self.deploy, line)
        from mlmagic.widgets import BuildView

        ws = self.workspace
        events = ws.services.deploy(
            args.name,
            models=args.model,
            entry_script=args.entry,
            environment=args.env,
            source_dir=args.source_dir,
            port=args.port,
            host=args.host,
            workers=args.workers,
            auth=args.auth,
            gpus=args.gpus,
            memory=args.memory,
            cpus=args.cpus,
            target=args.target,
        )
        view = BuildView(
            f"service {args.name}", tail_lines=ws.config.log_tail_lines, quiet=args.quiet
        )
        display(view)
        try:
            service: Service = drain(events, view.handle)
        except MlmagicError as exc:
            view.finish(ok=False, summary=str(exc).splitlines()[0])
            raise
        view.finish(ok=True, summary=f"{service.name} Healthy · {service.scoring_uri}")
        return service

    @line_magic
    @_usage_errors
    def models(self, line: str) -> Any:
        """List registered models, or show one: ``%models NAME[:VERSION]``."""
        if line.strip():
            return self.workspace.models.resolve(line.strip())
        return self.workspace.models.list()

    @line_magic
    @_usage_errors
    def services(self, line: str) -> Any:
        """List services with their state, or get one: ``%services NAME``."""
        if line.strip():
            return self.workspace.services.get(line.strip())
        return self.workspace.services.list()


# Options must be written out: `--gpu auto` must not quietly mean `--gpus auto`.
for _magic in (
    MLMagics.environment,
    MLMagics.envs,
    MLMagics.submit,
    MLMagics.runs,
    MLMagics.deploy,
):
    _magic.parser.allow_abbrev = False  # type: ignore[attr-defined]


def show_run(run: Run, *, wait: bool, tail_lines: int = 200) -> None:
    """Display a run's widget fed by its event stream (in a thread unless ``wait``)."""
    from mlmagic.widgets import RunView

    view = RunView(run.id, on_cancel=run.cancel, tail_lines=tail_lines, run_id=run.id)
    display(view)

    def feed() -> None:
        last = 0.0
        try:
            for event in run.events():
                view.handle(event)
                if distributed and time.monotonic() - last > 1:
                    view.set_nodes(run.nodes)  # each node's state, at most once a second
                    last = time.monotonic()
        finally:
            if distributed:
                view.set_nodes(run.nodes)
            view.finish()

    distributed = run.record.config.distributed is not None

    if not wait:
        threading.Thread(target=feed, name=f"mlmagic-view-{run.id}", daemon=True).start()
        return
    try:
        feed()
    except KeyboardInterrupt:
        print(f"Stopped waiting; run {run.id} goes on (run.cancel() stops it).")


def describe(env: Environment) -> str:
    """A readable description of one environment version (``%envs NAME``, the CLI)."""
    lines = [
        f"{env.ref}  {env.status}  {env.image}",
        f"format: {env.spec.format}",
    ]
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


def _summary(env: Environment) -> str:
    hit = "cache hit" if env.cache_hit else "built"
    return f"{env.ref} {env.status} · {env.image} · {hit}"
