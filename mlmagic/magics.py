"""The IPython magics: thin front ends over the public API.

Each magic parses its arguments with ``magic_arguments`` (the options are declared in
:mod:`mlmagic.options`, shared with the command line), turns a user's mistake into a
``UsageError`` (one red line, no traceback), calls the API, shows a widget fed by the
API's events, and returns the object (Environment, Run, Service) so ``_`` works.

The widget is the returned object's display in that cell: IPython's display hook still
sets ``_`` (and ``Out``) to it, but shows nothing more under the widget.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from mlmagic import hints, options
from mlmagic.environment import Environment
from mlmagic.events import Status, drain
from mlmagic.exceptions import BuildError, MlmagicError
from mlmagic.run.notebook import is_notebook
from mlmagic.summary import describe
from mlmagic.workspace import Workspace

if TYPE_CHECKING:
    from mlmagic.deploy.service import Service
    from mlmagic.run.run import Run

__all__ = ["MLMagics"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _usage_errors(method: F) -> F:
    """Show mlmagic's errors as one red line instead of a traceback."""

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MlmagicError as exc:
            raise UsageError(hints.render(exc, "magic")) from exc

    return wrapper  # type: ignore[return-value]


#: The objects a magic returns after showing their widget, by module and class name.
_WIDGET_SHOWN = (
    ("mlmagic.environment", "Environment"),
    ("mlmagic.run.run", "Run"),
    ("mlmagic.deploy.service", "Service"),
)


@magics_class
class MLMagics(Magics):
    """``%%environment``, ``%envs`` and friends."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        # Returned objects whose widget this cell shows; the display hook skips them once.
        self._shown: list[object] = []
        if shell is not None:
            formatter = shell.display_formatter.ipython_display_formatter
            for module, name in _WIDGET_SHOWN:
                formatter.for_type_by_name(module, name, self._display_unless_shown)
            shell.events.register("post_run_cell", self._forget_shown)

    def _shown_as_widget(self, obj: T) -> T:
        """Return ``obj`` from a magic that displayed its widget: no second display."""
        self._shown.append(obj)
        return obj

    def _display_unless_shown(self, obj: object) -> None:
        for index, shown in enumerate(self._shown):
            if shown is obj:
                del self._shown[index]
                return  # handled: the widget above is its display
        # IPython's formatters take NotImplementedError as "not handled": display as usual.
        raise NotImplementedError

    def _forget_shown(self, *_result: object) -> None:
        self._shown.clear()

    @property
    def workspace(self) -> Workspace:
        return Workspace.current()

    @magic_arguments()
    @argument("name", help="The environment's name (versions are kept per name).")
    @options.magic_options(options.ENVIRONMENT, options.ENVIRONMENT_BUILD)
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
        env = Environment.from_text(
            args.name, cell, **options.api_keywords(options.ENVIRONMENT, args)
        )
        ws = self.workspace
        if args.no_build:
            return ws.environments.register(env)
        from mlmagic.widgets import BuildView

        view = BuildView(args.name, tail_lines=ws.config.log_tail_lines, quiet=args.quiet)
        display(view)
        try:
            events = ws.environments.build(
                env, **options.api_keywords(options.ENVIRONMENT_BUILD, args)
            )
            built: Environment = drain(events, view.handle)
        except BuildError as exc:
            view.finish(ok=False, summary=str(exc).split("\n")[0])
            log = f" Full log: {exc.log_path}" if exc.log_path else ""
            raise UsageError(f"{str(exc).splitlines()[0]}{log}") from exc
        except BaseException:
            view.finish(ok=False, summary="build interrupted")
            raise
        view.finish(ok=True, summary=_summary(built))
        return self._shown_as_widget(built)

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
    @argument(
        "script",
        nargs="?",
        help="The script or notebook, relative to --source-dir (not with a cell).",
    )
    @options.magic_options(options.SUBMIT)
    @line_cell_magic
    @_usage_errors
    def submit(self, line: str, cell: str | None = None) -> Run:
        """Run a training script in a container of an environment, with a live widget.

        ``%submit train.py --env digits-env -- --C 0.5`` runs a script of the source
        folder; ``%%submit --env digits-env`` runs the cell itself. Everything after ``--``
        goes to the script. ``%submit train.ipynb --env digits-env -p lr=0.01`` runs a
        notebook cell by cell with its parameters. Returns the Run at once (``--wait``
        blocks until it ends).
        """
        words = shlex.split(line)
        script_args: list[str] = []
        if "--" in words:
            at = words.index("--")
            words, script_args = words[:at], words[at + 1 :]
        # The words as split: joined again, IPython's splitter would lose the quotes of
        # -p "opt='adam'".
        args = self.submit.parser.parse_args(words)  # type: ignore[attr-defined]
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
            args=script_args,
            script_text=cell,
            **options.api_keywords(options.SUBMIT, args),
        )
        show_run(run, wait=args.wait, tail_lines=self.workspace.config.log_tail_lines)
        if args.wait and run.status is not Status.COMPLETED:
            raise UsageError(f"Run {run.id} {run.status.value.lower()}: {run.error}")
        return self._shown_as_widget(run)

    @magic_arguments()
    @argument("run_id", nargs="?", help="Show this run (live runs are followed).")
    @options.magic_options(options.RUN_FILTERS)
    @line_magic
    @_usage_errors
    def runs(self, line: str) -> Any:
        """List runs (one row each, with params and last metrics), or show one run."""
        args = parse_argstring(self.runs, line)
        if args.run_id is None:
            return self.workspace.runs.list(**options.api_keywords(options.RUN_FILTERS, args))
        run = self.workspace.runs.get(args.run_id)
        show_run(run, wait=False, tail_lines=self.workspace.config.log_tail_lines)
        return self._shown_as_widget(run)

    @magic_arguments()
    @argument("name", help="The service's name (lowercase letters, digits, '-').")
    @options.magic_options(options.DEPLOY)
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
        events = ws.services.deploy(args.name, **options.api_keywords(options.DEPLOY, args))
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
        return self._shown_as_widget(service)

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

    script = run.record.config.script
    view = RunView(
        run.id,
        on_cancel=run.cancel,
        tail_lines=tail_lines,
        run_id=run.id,
        notebook=PurePosixPath(script).name if is_notebook(script) else None,
    )
    display(view)

    def feed() -> None:
        last = 0.0
        try:
            for event in run.events(batch=True):  # the view keeps a tail and a count
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


def _summary(env: Environment) -> str:
    hit = "cache hit" if env.cache_hit else "built"
    return f"{env.ref} {env.status} · {env.image} · {hit}"
