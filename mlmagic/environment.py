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
import shutil
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmagic import hints
from mlmagic import spec as specs
from mlmagic.build.context import cache_key, image_tag, resolve_base
from mlmagic.build.dockerfile import render
from mlmagic.build.image import build_image, resolved_packages
from mlmagic.build.venv import build_venv, check_local, venv_packages, venv_path
from mlmagic.config import get_config
from mlmagic.events import BuildEvent, BuildEventKind, Status, drain
from mlmagic.exceptions import BuildError, MlmagicError, SpecError
from mlmagic.spec.conda import require_mappable
from mlmagic.spec.curated import CURATED, RESERVED_PREFIX
from mlmagic.summary import html_table

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.workspace import Workspace

__all__ = ["Environment", "Environments", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Kernel packages that are the notebook itself, not the code a script needs.
_KERNEL_ONLY = frozenset({"mlmagic", "pip", "setuptools", "wheel", "uv"})


def check_name(name: str, *, allow_reserved: bool = False) -> None:
    """Raise :class:`SpecError` for a name that cannot be an environment's."""
    if not _NAME.match(name or ""):
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
    ) -> Environment:
        """An environment from cell text of any format (detected unless ``format`` is given).

        The keyword options override what the text says, like the magic's options.
        """
        check_name(name)
        spec = specs.parse(text, format).with_options(
            base_image=base_image, python=python, gpu=gpu, user_managed=user_managed, solver=solver
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
        """The Dockerfile this environment builds from, rendered without building anything."""
        return render(self.spec, resolve_base(self.spec, get_config()))

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
    ) -> Environment:
        """Register and build (an image, or a venv on the local target), blocking; return
        the ready version. With ``show_output`` the build log is printed as it goes.
        """

        def show(event: BuildEvent) -> None:
            if show_output and event.kind in (BuildEventKind.STEP, BuildEventKind.LOG):
                print(event.step if event.kind is BuildEventKind.STEP else event.message)

        events = _workspace(workspace).environments.build(self, rebuild=rebuild, target=target)
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
        MlmagicError
            No such environment or version.
        """
        row = self._ws.store.environment(name, version)
        if row is None and name in CURATED and version is None:
            return self.register(Environment.curated(name))
        if row is None:
            known = sorted({r["name"] for r in self._ws.store.environments()})
            which = f"{name}:{version}" if version is not None else name
            hint = f" Known: {', '.join(known)}." if known else ""
            raise MlmagicError(
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

    def list(self) -> pd.DataFrame:
        """Every version of every environment: name, version, image, status, created, size."""
        import pandas as pd

        rows = self._ws.store.environments()
        columns = ["name", "version", "image", "status", "created", "size", "venv"]
        frame = pd.DataFrame([{c: r[c] for c in columns} for r in rows], columns=columns)
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
        MlmagicError
            No such environment or version, or a service or a live run uses it.
        """
        doomed = (
            [self.get(name, version)]
            if version is not None
            else [_from_row(row) for row in self._ws.store.environments(name)]
        )
        if not doomed:
            self.get(name)  # raises: no such environment
        refs = {env.ref for env in doomed}
        users = [s["name"] for s in self._ws.store.services() if s["config"]["environment"] in refs]
        users += [
            r["id"]
            for r in self._ws.store.runs()
            if f"{r['env_name']}:{r['env_version']}" in refs and not Status(r["status"]).is_terminal
        ]
        if users:
            raise MlmagicError(
                f"{', '.join(sorted(refs))} is in use by {', '.join(users)}: delete the "
                "service or wait for the run to end first."
            )
        kept = {
            (row["image"], row["venv"])
            for row in self._ws.store.environments()
            if f"{row['name']}:{row['version']}" not in refs
        }
        kept_images = {image for image, _ in kept}
        kept_venvs = {venv for _, venv in kept}
        for env in doomed:
            if env.venv and env.venv not in kept_venvs:
                shutil.rmtree(env.venv, ignore_errors=True)
            if env.image and env.image not in kept_images and self._ws.resolve_target() == "docker":
                self._ws.engine.remove_image(env.image)
            assert env.version is not None
            self._ws.store.delete_environment(env.name, env.version)
        return tuple(sorted(refs))

    def build(
        self, env: Environment, *, rebuild: bool = False, target: str | None = None
    ) -> Generator[BuildEvent, None, Environment]:
        """Register and build ``env``, yielding events; the generator returns the version.

        On the ``docker`` target the environment becomes an image; on ``local`` a
        virtual environment (see :mod:`mlmagic.build.venv`). An image or venv of the same
        content that already exists is a cache hit: one lookup, no build. A failed build
        marks the version failed (never ready) and raises :class:`BuildError`; the whole
        log stays in the workspace.
        """
        if env.spec.solver == "uv":
            require_mappable(env.spec)
        if self._ws.resolve_target(target) == "local":
            check_local(env.spec)
            return (yield from self._build_local(self.register(env), rebuild))
        registered = self.register(env)
        assert registered.version is not None and registered.image is not None
        name, version, tag = registered.name, registered.version, registered.image
        started = time.monotonic()
        engine = self._ws.engine
        if not rebuild and engine.image_info(tag) is not None:
            yield BuildEvent(BuildEventKind.START, image=tag, message="cache hit")
            if registered.status != "ready":
                self._mark_ready(registered)
            done = self.get(name, version)
            done.cache_hit = True
            yield BuildEvent(
                BuildEventKind.DONE, image=tag, cached=True, duration=time.monotonic() - started
            )
            return done
        log_path = self._ws.path("environments", name, f"v{version}.log")
        self._ws.store.update_environment(
            name, version, status="building", error=None, log_path=str(log_path)
        )
        base = resolve_base(env.spec, self._ws.config)
        try:
            yield from build_image(
                engine, registered.spec, base, tag, log_path=log_path, no_cache=rebuild
            )
        except BuildError as exc:
            self._ws.store.update_environment(name, version, status="failed", error=str(exc))
            raise
        except BaseException as exc:
            # Interrupted or the engine went away: never leave it looking ready or building.
            self._ws.store.update_environment(
                name, version, status="failed", error=f"build interrupted: {exc!r}"
            )
            raise
        self._mark_ready(registered)
        done = self.get(name, version)
        done.cache_hit = False
        return done

    def _build_local(
        self, registered: Environment, rebuild: bool
    ) -> Generator[BuildEvent, None, Environment]:
        assert registered.version is not None and registered.image is not None
        name, version = registered.name, registered.version
        key = registered.image.partition(":")[2]
        log_path = self._ws.path("environments", name, f"v{version}-local.log")
        cached = False
        try:
            for event in build_venv(registered.spec, key, log_path=log_path, rebuild=rebuild):
                if event.kind is BuildEventKind.START:
                    self._ws.store.update_environment(name, version, log_path=str(log_path))
                cached = cached or (event.kind is BuildEventKind.DONE and event.cached)
                yield event
        except BuildError as exc:
            self._ws.store.update_environment(name, version, status="failed", error=str(exc))
            raise
        path = venv_path(key)
        values: dict[str, Any] = {"venv": str(path), "status": "ready", "error": None}
        if registered.packages is None:
            values["packages"] = venv_packages(path)
        self._ws.store.update_environment(name, version, **values)
        done = self.get(name, version)
        done.cache_hit = cached
        return done

    def _mark_ready(self, env: Environment) -> None:
        assert env.version is not None and env.image is not None
        info = self._ws.engine.image_info(env.image)
        self._ws.store.update_environment(
            env.name,
            env.version,
            status="ready",
            built=time.time(),
            size=info.size if info else None,
            packages=resolved_packages(self._ws.engine, env.image),
            error=None,
        )


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
