"""The environment definition every cell format is parsed into, and the format contract.

A format is a module in :mod:`mlmagic.spec` with two pure functions:

``detect(text: str) -> bool``
    ``True`` when the text looks like this format. Called in the order of
    :data:`mlmagic.spec.DETECTION_ORDER`; the first format that claims the text wins
    (like repo2docker's build packs). Must not raise.
``parse(text: str) -> EnvironmentSpec``
    Read the text. Raises :class:`~mlmagic.exceptions.SpecError` (with the 1-based line
    when known) for anything malformed, and says how to fix it. No I/O.

Options given on the magic line (``--base``, ``--python``, ``--gpu`` ...) are applied
afterwards with :meth:`EnvironmentSpec.with_options`, so they override the text.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlmagic.exceptions import SpecError

__all__ = ["FORMATS", "SOLVERS", "EnvironmentSpec", "RegistryLogin"]

#: The cell formats, by the name ``--format`` takes.
FORMATS = ("pip", "conda", "dockerfile", "yaml")
#: How Python packages are installed: ``uv`` (pip-compatible) or ``conda`` (micromamba).
SOLVERS = ("uv", "conda")

_PYTHON_VERSION = re.compile(r"3\.\d{1,2}")
_CUDA_VERSION = re.compile(r"\d{1,2}\.\d{1,2}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters that end or split a Dockerfile line (tab is kept: it is only a space there).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class RegistryLogin:
    """A private registry the base image comes from.

    The password is never part of the definition: it is read at build time from the
    environment variable ``password_env`` or, when that is ``None``, from Docker's own
    credential store (``docker login``).
    """

    address: str
    username: str
    password_env: str | None = None


@dataclass(frozen=True)
class EnvironmentSpec:
    """A normalised environment definition (what a cell or file asks for).

    Sequences are tuples so a spec is hashable and immutable; parsers put them in a
    canonical order (pip requirements sorted by normalised name) so that reordering or
    reformatting a cell gives an equal spec.

    Attributes
    ----------
    format
        The format the definition was read from (one of :data:`FORMATS`).
    base_image
        The image to start from; ``None`` means the configured default for ``gpu``.
    python
        ``"3.X"``; ``None`` means the configured default (or the base image's own).
    apt
        Debian/Ubuntu system packages.
    pip
        Requirement strings (PEP 508), installed with uv.
    index_url, extra_index_urls
        Package indexes named in the cell (``--index-url`` lines, YAML keys).
    conda, channels
        Conda package specs and channels; only installed when ``solver == "conda"``.
    solver
        ``"uv"`` (default) or ``"conda"`` (micromamba in the image).
    env
        Environment variables set in the image, as sorted ``(name, value)`` pairs.
    gpu
        Start from a GPU base image (chosen by :mod:`mlmagic.build.cuda`) and expect
        NVIDIA GPUs at run time.
    cuda
        ``"X.Y"``: start from that CUDA's image (implies ``gpu``); ``None`` lets the
        framework pins choose.
    user_managed
        Use the base image's Python as it is and install nothing.
    dockerfile
        For the ``dockerfile`` format: the user's Dockerfile, built as written.
    dockerfile_steps
        Extra Dockerfile lines appended after the dependency layer.
    registry
        Login for a private registry holding the base image.
    """

    format: str
    base_image: str | None = None
    python: str | None = None
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    solver: str = "uv"
    env: tuple[tuple[str, str], ...] = ()
    gpu: bool = False
    cuda: str | None = None
    user_managed: bool = False
    dockerfile: str | None = None
    dockerfile_steps: tuple[str, ...] = field(default=())
    registry: RegistryLogin | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SpecError(f"Unknown format {self.format!r}; use one of {', '.join(FORMATS)}.")
        if self.solver not in SOLVERS:
            raise SpecError(f"Unknown solver {self.solver!r}; use 'uv' or 'conda'.")
        if self.python is not None and not _PYTHON_VERSION.fullmatch(self.python):
            raise SpecError(
                f"Python version {self.python!r} is not of the form 3.X (for example 3.11)."
            )
        if self.cuda is not None and not _CUDA_VERSION.fullmatch(self.cuda):
            raise SpecError(
                f"CUDA version {self.cuda!r} is not of the form X.Y (for example 12.1)."
            )
        _check_one_line(self)

    def with_options(
        self,
        *,
        base_image: str | None = None,
        python: str | None = None,
        gpu: bool | None = None,
        user_managed: bool | None = None,
        solver: str | None = None,
        cuda: str | None = None,
    ) -> EnvironmentSpec:
        """Return a copy with the options given on the magic line (``None``: keep)."""
        changes: dict[str, Any] = {}
        if base_image is not None:
            changes["base_image"] = base_image
        if python is not None:
            changes["python"] = python
        if gpu is not None:
            changes["gpu"] = gpu
        if user_managed is not None:
            changes["user_managed"] = user_managed
        if solver is not None:
            changes["solver"] = solver
        if cuda is not None:
            changes["cuda"] = cuda
        if not changes:
            return self
        if self.format == "dockerfile" and set(changes) - {"gpu"}:
            raise SpecError(
                "A Dockerfile is built as written: --base, --python, --cuda, --solver and "
                "--user-managed do not apply. Edit the FROM line instead."
            )
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, stored with each environment version."""
        data = asdict(self)
        data["env"] = [list(pair) for pair in self.env]
        if self.cuda is None:
            # Added after specs were stored and images named: absent, it leaves both as
            # they were.
            del data["cuda"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvironmentSpec:
        """Rebuild a spec from :meth:`to_dict`'s output."""
        data = dict(data)
        registry = data.pop("registry", None)
        tuples = ("apt", "pip", "extra_index_urls", "conda", "channels", "dockerfile_steps")
        for key in tuples:
            data[key] = tuple(data.get(key) or ())
        data["env"] = tuple(tuple(pair) for pair in data.get("env") or ())
        return cls(**data, registry=RegistryLogin(**registry) if registry else None)

    def normalised(self) -> dict[str, Any]:
        """The content that decides the image: what the cache key is made from.

        The format is left out (a requirements cell and the same list in mlmagic YAML
        make the same image), and a Dockerfile is reduced to its instructions so that
        comments and blank lines do not rebuild.
        """
        data = self.to_dict()
        data.pop("format")
        if self.dockerfile is not None:
            data["dockerfile"] = _dockerfile_instructions(self.dockerfile)
        if self.registry is not None:
            # The login names who pulls, not what is built.
            data["registry"] = {"address": self.registry.address}
        return data


def _check_one_line(spec: EnvironmentSpec) -> None:
    """Refuse values that would change the Dockerfile's instructions when rendered.

    Every field but ``dockerfile`` and ``dockerfile_steps`` (which are instructions by
    design) is written into a line of the rendered Dockerfile or of the requirements
    file beside it (the registry login goes to the engine, and is held to the same
    rule). A line break in one would end that line and start an instruction of the
    value's choosing, so each must be a single line, and an ``env`` name a
    variable name. A rendered base image is written last on its line: a trailing
    backslash would join the next instruction to it, so it must be one word without one.
    """
    values: list[tuple[str, str | None]] = [
        ("base_image", spec.base_image),
        ("index_url", spec.index_url),
        *(("extra_index_urls", url) for url in spec.extra_index_urls),
        *(("apt", name) for name in spec.apt),
        *(("pip", requirement) for requirement in spec.pip),
        *(("conda", package) for package in spec.conda),
        *(("channels", channel) for channel in spec.channels),
        *((f"env value of {name}", value) for name, value in spec.env),
    ]
    if spec.registry is not None:
        values += [
            ("registry address", spec.registry.address),
            ("registry username", spec.registry.username),
            ("registry password_env", spec.registry.password_env),
        ]
    for name, _ in spec.env:
        if not _VARIABLE_NAME.fullmatch(name):
            raise SpecError(
                f"env name {name!r} is not an environment variable name: use letters, "
                "digits and underscores, not starting with a digit (for example OMP_NUM_THREADS)."
            )
    for field_name, value in values:
        if value is not None and _CONTROL.search(value):
            raise SpecError(
                f"{field_name} {value!r} holds a line break or another control character, "
                "which would end its line in the Dockerfile and start another instruction: "
                "write it on one line."
            )
    image = spec.base_image
    if spec.dockerfile is not None or image is None:
        return  # a Dockerfile is built as written; its FROM is not rendered again
    if not image or len(image.split()) != 1 or "\\" in image:
        raise SpecError(
            f"base_image {image!r} is not an image reference: write one word such as "
            "python:3.11-slim, with no spaces or backslashes."
        )


def _dockerfile_instructions(text: str) -> list[str]:
    """A Dockerfile's lines without blank lines, comment lines or trailing spaces.

    Whitespace inside a line is kept: it can matter (a heredoc's indented script).
    """
    lines = []
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or (
            stripped.startswith("#") and not stripped.lower().startswith("# syntax=")
        ):
            continue
        lines.append(line)
    return lines
