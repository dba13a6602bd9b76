"""Environments: named, versioned, content-hashed definitions and the images built from them.

An :class:`Environment` is a name plus an :class:`~mlmagic.spec.EnvironmentSpec`. Made from
text or a file it is unregistered; :meth:`Environments.register` gives it a version (a new
one only when the definition differs from the latest), and :meth:`Environments.build`
materialises its image, a cache hit when the engine already holds the image of that
content.
"""

from __future__ import annotations

import difflib
import re
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic import spec as specs
from mlmagic.build.context import cache_key, image_tag, resolve_base
from mlmagic.build.dockerfile import BASE_COMMENT, render
from mlmagic.config import get_config
from mlmagic.events import BuildEvent, BuildEventKind, drain
from mlmagic.exceptions import (
    BuildError,
    ConflictError,
    EngineError,
    MlmagicError,
    NotFoundError,
    SpecError,
)
from mlmagic.spec.conda import require_mappable
from mlmagic.spec.curated import CURATED, RESERVED_PREFIX
from mlmagic.summary import html_table
from mlmagic.targets import names as target_names

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["Environment", "Environments", "check_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Kernel packages that are the notebook itself, not the code a script needs.
_KERNEL_ONLY = frozenset({"mlmagic", "pip", "setuptools", "wheel", "uv"})


def check_name(name: str, *, allow_reserved: bool = False) -> None:
    """Raise :class:`SpecError` for a name that cannot be an environment's."""
    if not _NAME.fullmatch(name or ""):
        raise SpecError(
            f"{name!r} is not a valid environment name: use letters, digits, '-', '_' and "
            "'.', starting with a letter or digit (at most 64 characters)."
        )
    if name.startswith(RESERVED_PREFIX) and not allow_reserved:
        raise SpecError(
            f"Names starting {RESERVED_PREFIX!r} are reserved for the curated environments "
            f"({', '.join(CURATED)}); choose another name."
        )


@dataclass
class Environment:
    """A named environment definition, and once registered, one version of it.

    Attributes
    ----------
    name
        The environment's name.
    spec
        What it is made of.
    version
        The registered version, or ``None`` before registration.
    image
        The image tag (derived from the content, not the name).
    status
        ``registered``, ``building``, ``ready`` or ``failed`` (``None`` before registration).
    cache_hit
        After a build: ``True`` when no build was needed.
    """

    name: str
    spec: specs.EnvironmentSpec
    version: int | None = None
    image: str | None = None
    status: str | None = None
    created: float | None = None
    size: int | None = None
    packages: list[str] | None = None
    error: str | None = None
    log_path: str | None = None
    venv: str | None = None
    cache_hit: bool | None = None
    #: The Dockerfile stored at registration (what was built), for a registered version.
    registered_dockerfile: str | None = field(default=None, repr=False)

    # -- making one ---------------------------------------------------------------------

    @classmethod
    def from_text(
        cls,
        name: str,
        text: str,
        *,
        format: str | None = None,
        base_image: str | None = None,
        python: str | None = None,
        gpu: bool | None = None,
        user_managed: bool | None = None,
        solver: str | None = None,
        cuda: str | None = None,
    ) -> Environment:
        """An environment from cell text of any format (detected unless ``format`` is given).

        The keyword options override what the text says, like the magic's options.
        """
        check_name(name)
        spec = specs.parse(text, format).with_options(
            base_image=base_image,
            python=python,
            gpu=gpu,
            user_managed=user_managed,
            solver=solver,
            cuda=cuda,
        )
        return cls(name, spec)

    @classmethod
    def from_requirements(cls, name: str, path: str | Path, **options: Any) -> Environment:
        """An environment from a requirements.txt file; ``-r other.txt`` lines are followed
        relative to the file (``-e`` and ``-c`` are refused, as in a cell)."""
        return cls.from_text(name, _read_requirements(Path(path)), format="pip", **options)

    @classmethod
    def from_conda_yaml(cls, name: str, path: str | Path, **options: Any) -> Environment:
        """An environment from a conda environment.yml file."""
        return cls.from_text(name, _read(path), format="conda", **options)

    @classmethod
    def from_dockerfile(cls, name: str, path: str | Path) -> Environment:
        """An environment built from a Dockerfile as written (its context is empty)."""
        return cls.from_text(name, _read(path), format="dockerfile")

    @classmethod
    def from_current_kernel(cls, name: str, **options: Any) -> Environment:
        """The packages of the running Python, pinned, on its Python version.

        Packages installed from local folders (editable installs) cannot be installed in an
        image from an index and are left out; so are pip, setuptools, wheel, uv and mlmagic.
        """
        pins = sorted(
            {
                f"{dist.metadata['Name']}=={dist.version}"
                for dist in metadata.distributions()
                if dist.metadata["Name"]
                and dist.metadata["Name"].lower() not in _KERNEL_ONLY
                and not _installed_from_local(dist)
            },
            key=str.lower,
        )
        python = "{}.{}".format(*sys.version_info[:2])
        options.setdefault("python", python)
        return cls.from_text(name, "\n".join(pins) + "\n", format="pip", **options)

    @classmethod
    def curated(cls, name: str) -> Environment:
        """One of the curated environments (``mlmagic-minimal``, ``-sklearn``, ``-pytorch``)."""
        if name not in CURATED:
            raise SpecError(
                f"There is no curated environment {name!r}; the curated ones are "
                f"{', '.join(CURATED)}."
            )
        return cls(name, specs.parse(CURATED[name], "yaml"))

    # -- what it is -----------------------------------------------------------------------

    @property
    def dockerfile(self) -> str:
        """The Dockerfile of this environment: for a registered version the one stored with
        it (what was built, whatever the settings are now); else rendered under the
        current settings, without building anything."""
        if self.registered_dockerfile is not None:
            return self.registered_dockerfile
        return render(self.spec, resolve_base(self.spec, get_config()))

    @property
    def base_reason(self) -> str | None:
        """For a GPU environment, its base image and why the rules chose it (the
        Dockerfile's first line: for a registered version, as it was built)."""
        first = self.dockerfile.partition("\n")[0]
        return first.removeprefix(BASE_COMMENT) if first.startswith(BASE_COMMENT) else None

    @property
    def ref(self) -> str:
        """``name:version`` (or the name alone before registration)."""
        return self.name if self.version is None else f"{self.name}:{self.version}"

    def register(self, workspace: Workspace | None = None) -> Environment:
        """Register in ``workspace`` (default: the current one); return the version."""
        return _workspace(workspace).environments.register(self)

    def build(
        self,
        workspace: Workspace | None = None,
        *,
        rebuild: bool = False,
        show_output: bool = True,
        target: str | None = None,
        compute: str | None = None,
    ) -> Environment:
        """Register and build (an image, or a venv on the local target), blocking; return
        the ready version. With ``show_output`` the build log is printed as it goes;
        ``compute`` builds on that compute's Docker engine.
        """

        def show(event: BuildEvent) -> None:
            if show_output and event.kind in (BuildEventKind.STEP, BuildEventKind.LOG):
                print(event.step if event.kind is BuildEventKind.STEP else event.message)

        events = _workspace(workspace).environments.build(
            self, rebuild=rebuild, target=target, compute=compute
        )
        return drain(events, show)

    def __str__(self) -> str:
        # So `%submit --env $env` expands to the exact version.
        return self.ref

    def __repr__(self) -> str:
        parts = [self.ref]
        if self.status:
            parts.append(self.status)
        if self.venv:
            parts.append(self.venv)
        elif self.image:
            parts.append(self.image)
        return f"<Environment {' · '.join(parts)}>"

    def _repr_html_(self) -> str:
        rows = [
            ("name", self.name),
            ("version", self.version),
            ("status", self.status),
            ("image", self.image),
            ("venv", self.venv),
            ("format", self.spec.format),
            ("size", _size(self.size)),
            ("packages", len(self.packages) if self.packages is not None else None),
        ]
        return html_table("Environment", rows)


class Environments:
    """The environments of one workspace (``ws.environments``)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def register(self, env: Environment) -> Environment:
        """Record ``env``: the latest version when unchanged, else a new version."""
        check_name(env.name, allow_reserved=env.name in CURATED)
        base = resolve_base(env.spec, self._ws.config)
        key = cache_key(env.spec, base)
        row = self._ws.store.register_environment(
            env.name,
            {
                "spec": env.spec.to_dict(),
                "cache_key": key,
                "image": image_tag(key),
                "status": "registered",
                "dockerfile": render(env.spec, base),
            },
        )
        return _from_row(row)

    def get(self, name: str, version: int | None = None) -> Environment:
        """The latest (or a given) version of ``name``.

        A curated environment is registered on first use.

        Raises
        ------
        NotFoundError
            No such environment or version.
        """
        row = self._ws.store.environment(name, version)
        if row is None and name in CURATED and version is None:
            return self.register(Environment.curated(name))
        if row is None:
            known = sorted({r["name"] for r in self._ws.store.environments()})
            which = f"{name}:{version}" if version is not None else name
            hint = f" Known: {', '.join(known)}." if known else ""
            raise NotFoundError(
                f"No environment {which} in {self._ws.root}.{hint}", hint=hints.BUILD_ENVIRONMENT
            )
        return _from_row(row)

    def resolve(self, ref: str | Environment) -> Environment:
        """An environment from ``name``, ``name:version`` or an Environment object."""
        if isinstance(ref, Environment):
            return ref if ref.version is not None else self.register(ref)
        name, _, version = ref.partition(":")
        if version and not version.isdigit():
            raise MlmagicError(f"{ref!r}: the version after ':' must be a number, e.g. {name}:2.")
        return self.get(name, int(version) if version else None)

    def rows(self) -> list[dict[str, Any]]:
        """Every version of every environment as a plain row: name, version, image,
        status, created (epoch seconds), size, venv; by name, newest version first."""
        return self._ws.store.environment_table()

    def list(self) -> pd.DataFrame:
        """Every version of every environment: name, version, image, status, created, size."""
        import pandas as pd

        columns = ["name", "version", "image", "status", "created", "size", "venv"]
        frame = pd.DataFrame(self.rows(), columns=columns)
        frame["created"] = pd.to_datetime(frame["created"], unit="s")
        return frame

    def diff(self, name: str, old: int, new: int | None = None) -> str:
        """A unified diff of the resolved packages of two versions."""
        a, b = self.get(name, old), self.get(name, new)
        return "\n".join(
            difflib.unified_diff(a.packages or [], b.packages or [], a.ref, b.ref, lineterm="", n=0)
        )

    def delete(self, name: str, version: int | None = None) -> tuple[str, ...]:
        """Delete ``name:version`` (every version of ``name`` when ``version`` is ``None``).

        The image (or venv) goes with the last version made of its content. Runs keep
        their records and files.

        Returns
        -------
        tuple of str
            The ``name:version`` of each deleted version, sorted.

        Raises
        ------
        NotFoundError
            No such environment or version.
        ConflictError
            A service or a live run uses it.
        """
        doomed = (
            [self.get(name, version)]
            if version is not None
            else [_from_row(row) for row in self._ws.store.environments(name)]
        )
        if not doomed:
            self.get(name)  # raises: no such environment
        refs = {env.ref for env in doomed}
        store = self._ws.store
        users = [s.name for s in store.services() if s.config.environment in refs]
        users += [r.id for r in store.runs() if r.environment in refs and not r.status.is_terminal]
        if users:
            raise ConflictError(
                f"{', '.join(sorted(refs))} is in use by {', '.join(users)}: delete the "
                "service or wait for the run to end first."
            )
        kept = [env for env in map(_from_row, store.environments()) if env.ref not in refs]
        # Each target removes what it made of a content that no kept version shares; one
        # whose engine does not answer has nothing of it to remove now.
        for name in target_names():
            try:
                where = self._ws.target(name)
                kept_here = {where.location(env) for env in kept}
                for env in doomed:
                    location = where.location(env)
                    if location and location not in kept_here:
                        where.discard_environment(location)
            except EngineError:
                continue
        for env in doomed:
            assert env.version is not None
            store.delete_environment(env.name, env.version)
        return tuple(sorted(refs))

    def build(
        self,
        env: Environment,
        *,
        rebuild: bool = False,
        target: str | None = None,
        compute: str | None = None,
    ) -> Generator[BuildEvent, None, Environment]:
        """Register and materialise ``env`` on a target, yielding events; the generator
        returns the ready version.

        On the ``docker`` target the environment becomes an image; on ``local`` a
        virtual environment (see :mod:`mlmagic.targets`). One of the same content that
        already exists is a cache hit: one lookup, no build. A failed build marks the
        version failed (never ready), yields an ``ERROR`` event and raises
        :class:`BuildError`; the whole log stays in the workspace.
        """
        if env.spec.solver == "uv":
            require_mappable(env.spec)
        where = self._ws.target(self._ws.resolve_target(target, compute))
        registered = self.register(env)
        assert registered.version is not None
        name, version = registered.name, registered.version
        store = self._ws.store
        started = time.monotonic()
        found = None if rebuild else where.find_environment(registered)
        if found is not None:
            yield BuildEvent(BuildEventKind.START, image=registered.image, message="cache hit")
            made = found
            yield BuildEvent(
                BuildEventKind.DONE,
                image=registered.image,
                cached=True,
                duration=time.monotonic() - started,
            )
        else:
            log_path = self._ws.path("environments", name, where.log_name(version))
            # A target that finds its artefact only under the build's lock (the local
            # target's venvs) comes here for every run of a ready version: it stays ready
            # (a cache hit, or its venv made again), never shown as building meanwhile.
            ready = registered.status == "ready" and not rebuild
            store.update_environment(
                name,
                version,
                **({} if ready else {"status": "building", "error": None}),
                log_path=str(log_path),
            )
            try:
                made = yield from where.build_environment(
                    registered, log_path=log_path, rebuild=rebuild
                )
            except MlmagicError as exc:
                # Failed, refused, or the engine went away: one ERROR event, whatever the
                # target, and never a version left looking ready or building.
                store.update_environment(name, version, status="failed", error=str(exc))
                step = exc.step if isinstance(exc, BuildError) else None
                yield BuildEvent(BuildEventKind.ERROR, message=str(exc).splitlines()[0], step=step)
                raise
            except BaseException as exc:
                store.update_environment(
                    name, version, status="failed", error=f"interrupted: {exc!r}"
                )
                raise
        values: dict[str, Any] = {"status": "ready", "error": None}
        values.update(
            {
                key: value
                for key, value in (
                    ("venv", made.venv),
                    ("size", made.size),
                    ("packages", made.packages),
                )
                if value is not None
            }
        )
        store.update_environment(name, version, **values)
        done = self.get(name, version)
        done.cache_hit = made.cached
        return done


def _from_row(row: dict[str, Any]) -> Environment:
    return Environment(
        name=row["name"],
        spec=specs.EnvironmentSpec.from_dict(row["spec"]),
        version=row["version"],
        image=row["image"],
        status=row["status"],
        created=row["created"],
        size=row["size"],
        packages=row["packages"],
        error=row["error"],
        log_path=row["log_path"],
        venv=row["venv"],
        registered_dockerfile=row["dockerfile"],
    )


def _workspace(workspace: Workspace | None) -> Workspace:
    from mlmagic.workspace import Workspace

    return workspace or Workspace.current()


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"Cannot read {path}: {exc.strerror}.") from exc


def _read_requirements(path: Path, seen: frozenset[Path] = frozenset()) -> str:
    """The text of a requirements file with its ``-r`` includes inlined."""
    path = path.resolve()
    if path in seen:
        raise SpecError(f"{path} includes itself through -r.")
    lines = []
    for line in _read(path).splitlines():
        words = line.split()
        if words and words[0] in ("-r", "--requirement") and len(words) == 2:
            lines.append(_read_requirements(path.parent / words[1], seen | {path}))
        elif words and words[0].startswith("--requirement="):
            included = words[0].partition("=")[2]
            lines.append(_read_requirements(path.parent / included, seen | {path}))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _installed_from_local(dist: metadata.Distribution) -> bool:
    direct = dist.read_text("direct_url.json")
    return bool(direct and '"file://' in direct)


def _size(size: int | None) -> str | None:
    if size is None:
        return None
    return f"{size / 1e6:.0f} MB"
