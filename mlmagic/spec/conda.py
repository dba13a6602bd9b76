"""The ``conda`` format: a conda environment.yml.

Keys: ``name`` and ``prefix`` (ignored: the image is named by its content),
``channels``, ``dependencies`` (conda package specs and one ``pip:`` list) and
``variables`` (environment variables of the image).

One definition, two solvers. :func:`parse` keeps the conda specs as written in
``spec.conda`` and the channels in ``spec.channels`` for ``--solver conda`` (micromamba
in the image), and also converts each spec to a pip requirement in ``spec.pip`` for the
default solver, ``uv``:

- the version becomes a pip specifier: ``numpy=1.26`` (conda's prefix match) →
  ``numpy==1.26.*``, ``numpy=1.26.4`` → ``numpy==1.26.4``, ``>=``/``<``/``!=`` pass
  through, build strings (``=1.26.4=py311_0``) are dropped;
- the name goes through :data:`CONDA_TO_PIP` (``pytorch`` → ``torch``, ...);
- what a pip-installed Python never needs (:data:`NOT_NEEDED`: ``libgcc``, ``pip``,
  ``openssl``...) is left out of ``spec.pip``;
- what only conda can install (:data:`CONDA_ONLY`, and any name starting with one of
  :data:`CONDA_ONLY_PREFIXES` such as ``r-`` or ``lib``) is left out of ``spec.pip`` too,
  and only recorded in ``spec.conda``.

``python=3.11`` sets ``spec.python`` instead of being a package.

Parsing never fails because of a conda-only package, since the solver may still change
(``spec.with_options(solver="conda")``). The builder checks once the solver is final:
when ``spec.solver == "uv"`` it calls :func:`require_mappable`, which raises for the specs
:func:`unmapped` names. A conda-solver build installs ``spec.conda`` with micromamba and
then only :func:`pip_beyond_conda` with uv (the ``pip:`` list, not the conversions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlmagic.exceptions import SpecError
from mlmagic.spec import _yaml
from mlmagic.spec.base import EnvironmentSpec
from mlmagic.spec.requirements import normalise_requirement, read_lines, sort_requirements

__all__ = [
    "CONDA_ONLY",
    "CONDA_ONLY_PREFIXES",
    "CONDA_TO_PIP",
    "NOT_NEEDED",
    "CondaDependencies",
    "detect",
    "parse",
    "pip_beyond_conda",
    "read_channels",
    "read_dependencies",
    "require_mappable",
    "unmapped",
]

#: Conda package names whose pip distribution has another name. Identity entries keep a
#: name that a rule below would otherwise treat as conda-only (``lib...``, ``cuda-...``).
CONDA_TO_PIP: dict[str, str] = {
    "cuda-python": "cuda-python",
    "libcst": "libcst",
    "librosa": "librosa",
    "lightgbm": "lightgbm",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "numpy-base": "numpy",
    "pillow": "pillow",
    "py-lightgbm": "lightgbm",
    "py-opencv": "opencv-python",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "opencv": "opencv-python",
    "pyqt": "PyQt5",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "python-kaleido": "kaleido",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "tensorflow-base": "tensorflow",
    "tensorflow-gpu": "tensorflow",
}

#: Conda packages a pip-installed environment does without: Python itself and the runtime
#: conda's own Python needs (the base image's Python brings its own), and the packaging
#: tools.
NOT_NEEDED = frozenset(
    {
        "_libgcc_mutex",
        "_openmp_mutex",
        "bzip2",
        "ca-certificates",
        "ld_impl_linux-64",
        "libexpat",
        "libffi",
        "libgcc",
        "libgcc-ng",
        "libgomp",
        "liblzma",
        "libmpdec",
        "libnsl",
        "libsqlite",
        "libstdcxx",
        "libstdcxx-ng",
        "libuuid",
        "libxcrypt",
        "libzlib",
        "ncurses",
        "openssl",
        "pip",
        "python",
        "python_abi",
        "readline",
        "setuptools",
        "sqlite",
        "tk",
        "tzdata",
        "wheel",
        "xz",
        "zlib",
    }
)

#: Conda packages with no pip equivalent: native libraries, toolchains, other
#: languages, and conda-only metapackages. (Several share a name with an unrelated PyPI
#: project, such as ``ffmpeg`` or ``pandoc``, which is why a name match is not enough.)
CONDA_ONLY = frozenset(
    {
        "arrow-cpp",
        "binutils",
        "blas",
        "boost",
        "boost-cpp",
        "c-compiler",
        "cairo",
        "compilers",
        "cpuonly",
        "cudatoolkit",
        "cudatoolkit-dev",
        "cudnn",
        "curl",
        "cutensor",
        "cxx-compiler",
        "eigen",
        "ffmpeg",
        "fortran-compiler",
        "gcc",
        "gcc_linux-64",
        "gdal",
        "geos",
        "gfortran",
        "gfortran_linux-64",
        "git",
        "glib",
        "graphviz",
        "gxx",
        "gxx_linux-64",
        "hdf5",
        "jpeg",
        "llvm-openmp",
        "lz4-c",
        "magma",
        "make",
        "mkl",
        "mkl-devel",
        "mkl-include",
        "mkl-service",
        "mkl_fft",
        "mkl_random",
        "mpich",
        "nccl",
        "nodejs",
        "openblas",
        "openjdk",
        "openmpi",
        "pandoc",
        "pango",
        "pkg-config",
        "proj",
        "pytorch-cuda",
        "r",
        "r-base",
        "snappy",
        "sysroot_linux-64",
        "wget",
        "zstd",
    }
)

#: Name prefixes of conda-only packages (R packages, native libraries, X11, CUDA parts),
#: unless :data:`CONDA_TO_PIP` or :data:`NOT_NEEDED` names the package.
CONDA_ONLY_PREFIXES = ("r-", "lib", "cuda-", "xorg-", "font-", "fonts-", "perl-")

_SPEC_KEYS = ("channels", "dependencies", "name", "prefix", "variables")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_BRACKET_ITEM = re.compile(r"""(\w+)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^,\]]*))""")
_OPERATOR = re.compile(r"(==|!=|>=|<=|~=|>|<|=)?(.*)")
_SPEC_FORMS = (
    "write name, name=1.2, name>=1.2,<2, name 1.2.* or channel::name=1.2 "
    "(for example numpy=1.26 or conda-forge::lightgbm)"
)


@dataclass(frozen=True)
class CondaDependencies:
    """Conda package specs read into the two solvers' terms.

    Attributes
    ----------
    python
        ``"3.X"`` when a ``python`` spec names a version, else ``None``.
    conda
        The specs as written (spacing made canonical: ``numpy >= 1.26`` →
        ``numpy>=1.26``), without repeats, sorted by package name, without the
        ``python`` spec that ``python`` stands for.
    pip
        The pip requirements they convert to (normalised and sorted), without the
        packages pip does not need or cannot install.
    """

    python: str | None = None
    conda: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()


@dataclass(frozen=True)
class _MatchSpec:
    """The parts of a conda spec that matter here."""

    name: str
    version: str
    text: str


def detect(text: str) -> bool:
    """A YAML mapping with a ``dependencies`` key is a conda environment file."""
    document = _yaml.load_mapping(text)
    return document is not None and "dependencies" in document.data


def parse(text: str) -> EnvironmentSpec:
    """Read environment.yml text into a ``conda`` spec (see the module docstring).

    Raises
    ------
    SpecError
        The YAML is malformed, a key is unknown or of the wrong type, a dependency is not
        a conda spec or a pip requirement, or ``python`` is not 3.X. Never for a
        conda-only package (see :func:`require_mappable`).
    """
    document = _yaml.load(text)
    data = document.data
    if not isinstance(data, dict):
        raise SpecError(
            "A conda environment file is a YAML mapping with a dependencies list, for "
            "example 'dependencies: [python=3.11, numpy]'.",
            line=document.line(),
        )
    for key in data:
        if key not in _SPEC_KEYS:
            raise SpecError(
                f"{key!r} is not a key of a conda environment file; use {', '.join(_SPEC_KEYS)}.",
                line=document.line(str(key)),
            )
    conda_items, pip_items = _dependency_items(document)
    dependencies = read_dependencies(conda_items)
    pip_lines = read_lines(pip_items)
    return EnvironmentSpec(
        format="conda",
        python=dependencies.python,
        pip=sort_requirements([*dependencies.pip, *pip_lines.requirements]),
        index_url=pip_lines.index_url,
        extra_index_urls=pip_lines.extra_index_urls,
        conda=dependencies.conda,
        channels=read_channels(_yaml.string_list(document, "channels")),
        env=_yaml.string_mapping(document, "variables"),
    )


def read_dependencies(items: Iterable[tuple[int | None, str]]) -> CondaDependencies:
    """Read conda package specs (each with its 1-based line, or ``None``).

    Used for a conda file's ``dependencies`` and for mlmagic YAML's ``conda`` list.

    Raises
    ------
    SpecError
        A spec cannot be read, or its ``python`` is not 3.X.
    """
    python: str | None = None
    conda: list[str] = []
    pip: list[str] = []
    for line, raw in items:
        match = _match_spec(raw)
        if match is None:
            raise SpecError(f"{raw!r} is not a conda package spec; {_SPEC_FORMS}.", line=line)
        if match.name == "python":
            version = _python_version(match.version, raw, line)
            python = version or python
            # The builder installs python (at spec.python) itself; keep only a spec that
            # says more than that, such as python>=3.10,<3.13.
            if version is None and match.version:
                conda.append(match.text)
            continue
        conda.append(match.text)
        requirement = _pip_requirement(match)
        if requirement is not None:
            pip.append(requirement)
    return CondaDependencies(
        python=python,
        conda=tuple(sorted(set(conda), key=lambda text: (_name(text), text))),
        pip=sort_requirements(pip),
    )


def read_channels(items: Iterable[tuple[int | None, str]]) -> tuple[str, ...]:
    """Conda channels in the order given, without repeats.

    ``nodefaults`` is left out: micromamba has no default channels to turn off.
    """
    names = (" ".join(name.split()) for _, name in items)
    return tuple(dict.fromkeys(n for n in names if n and n != "nodefaults"))


def unmapped(spec: EnvironmentSpec) -> list[str]:
    """The conda specs of ``spec`` that pip cannot install, in ``spec.conda`` order.

    These are the conda-only packages (and specs whose version pip cannot express, such
    as ``a=1.2|1.4``); a ``uv`` build of ``spec`` would miss them.
    """
    missing = []
    for text in spec.conda:
        match = _match_spec(text)
        if match is None or (_pip_requirement(match) is None and not _not_needed(match.name)):
            missing.append(text)
    return missing


def require_mappable(spec: EnvironmentSpec) -> None:
    """Refuse to build ``spec`` with uv when it has conda packages pip cannot install.

    The builder calls this when ``spec.solver == "uv"``.

    Raises
    ------
    SpecError
        Naming the packages :func:`unmapped` returns.
    """
    missing = unmapped(spec)
    if missing:
        raise SpecError(
            f"conda package(s) {', '.join(missing)} have no pip equivalent; remove them, "
            "or build with --solver conda to install them with micromamba."
        )


def pip_beyond_conda(spec: EnvironmentSpec) -> tuple[str, ...]:
    """The pip requirements a conda-solver build installs after micromamba.

    ``spec.pip`` less the requirements converted from ``spec.conda`` (micromamba has
    installed those under their conda names): the ``pip:`` list of a conda file, or
    the ``pip`` list of mlmagic YAML.
    """
    converted = set()
    for text in spec.conda:
        match = _match_spec(text)
        requirement = _pip_requirement(match) if match is not None else None
        if requirement is not None:
            converted.add(requirement)
    return tuple(r for r in spec.pip if r not in converted)


def _dependency_items(
    document: _yaml.YamlDocument,
) -> tuple[list[tuple[int | None, str]], list[tuple[int | None, str]]]:
    """(conda specs, pip lines) of ``dependencies``, each with its line."""
    value = document.data.get("dependencies")
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise SpecError(
            f"dependencies must be a list, not {_yaml.kind(value)}; write one '- spec' per "
            "line, for example '- numpy=1.26'.",
            line=document.line("dependencies"),
        )
    conda: list[tuple[int | None, str]] = []
    pip: list[tuple[int | None, str]] = []
    for index, item in enumerate(value):
        line = document.line("dependencies", index)
        if isinstance(item, str):
            conda.append((line, item))
        elif isinstance(item, dict) and list(item) == ["pip"]:
            pip += _pip_items(document, index, item["pip"], line)
        else:
            raise SpecError(
                f"dependency {index + 1} is {_yaml.kind(item)}; a dependency is a conda "
                "spec such as numpy=1.26, or the one mapping 'pip:' with a list of pip "
                "requirements.",
                line=line,
            )
    return conda, pip


def _pip_items(
    document: _yaml.YamlDocument, index: int, value: object, line: int | None
) -> list[tuple[int | None, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(
            "pip: under dependencies must be a list of requirement strings, for example "
            "'- pip:' then '  - tomli>=2'.",
            line=line,
        )
    return [(document.line("dependencies", index, "pip", i), r) for i, r in enumerate(value)]


def _match_spec(text: str) -> _MatchSpec | None:
    """Read a conda spec; ``None`` if it cannot be read.

    Forms: ``name``, ``name=1.2``, ``name=1.2=build``, ``name>=1.2,<2``,
    ``name 1.2.* build``, ``name[version='>=1.2']``, each optionally ``channel::``-led.
    The version comes back as written (``=1.2``, ``>=1.2,<2``, ``1.2.*``) without the
    build; the text comes back whole, with its spacing made canonical.
    """
    channel, _, text = text.rpartition("::")
    prefix = f"{channel.strip()}::" if channel else ""
    text = " ".join(text.split())
    match = _NAME.match(text)
    if match is None:
        return None
    name, rest = match.group(0).lower(), text[match.end() :].strip()
    if rest.startswith("["):
        if not rest.endswith("]"):
            return None
        fields = {
            m.group(1): next(g for g in m.groups()[1:] if g is not None)
            for m in _BRACKET_ITEM.finditer(rest[1:-1])
        }
        return _MatchSpec(name, fields.get("version", "").replace(" ", ""), f"{prefix}{name}{rest}")
    # Tighten "numpy >= 1.26 , < 2" to "numpy>=1.26,<2": whitespace then only separates
    # a version from its build string (or the name from a bare version, "numpy 1.26.*").
    rest = re.sub(r"\s*([,|])\s*", r"\1", rest)
    rest = re.sub(r"(==|!=|>=|<=|~=|>|<|=)\s+", r"\1", rest)
    written = f"{prefix}{name}{rest}" if rest[:1] in "=<>!~" else f"{prefix}{name} {rest}"
    version = rest
    if rest.startswith("=") and not rest.startswith("=="):
        # name=1.2=build: the second '=' starts the build string.
        version = "=" + rest[1:].partition("=")[0]
    parts = version.split()
    if len(parts) > 2 or (parts and not re.fullmatch(r"[\w.*+!=<>~,|-]+", parts[0])):
        return None
    return _MatchSpec(name, parts[0] if parts else "", written)


def _pip_requirement(match: _MatchSpec) -> str | None:
    """The pip requirement for a conda spec; ``None`` if not needed or not installable."""
    if _not_needed(match.name) or _conda_only(match.name):
        return None
    specifier = _pip_specifier(match.version)
    if specifier is None:
        return None
    name = CONDA_TO_PIP.get(match.name, match.name)
    try:
        return normalise_requirement(name + specifier)
    except SpecError:  # a conda version pip cannot read (such as 2021b)
        return None


def _pip_specifier(version: str) -> str | None:
    """A conda version constraint as a pip specifier; ``None`` when pip has no way to
    say it (alternatives with ``|``, wildcards inside a range)."""
    if version in ("", "*"):
        return ""
    if "|" in version:
        return None
    clauses = []
    for clause in version.split(","):
        match = _OPERATOR.fullmatch(clause)
        assert match is not None  # the pattern matches every string
        operator, value = match.group(1), match.group(2)
        if not value:
            return None
        if operator in (None, "=", "=="):
            if value.endswith("*"):
                clauses.append(f"=={value.rstrip('*').rstrip('.')}.*")
            elif operator == "=" and len(value.split(".")) < 3:
                # conda's `=1.26` is a prefix match, pip's `==1.26` is not.
                clauses.append(f"=={value}.*")
            else:
                clauses.append(f"=={value}")
        elif operator == "!=" and value.endswith("*"):
            clauses.append(f"!={value.rstrip('*').rstrip('.')}.*")
        elif "*" in value:
            return None
        else:
            clauses.append(operator + value)
    return ",".join(clauses)


def _python_version(version: str, raw: str, line: int | None) -> str | None:
    """``3.X`` from a ``python`` spec that pins a minor version or starts at one.

    ``python=3.11``, ``python 3.11.*``, ``python==3.11.4``, ``python>=3.11`` → ``3.11``;
    ``python`` alone or a spec with several clauses → ``None`` (it stays a conda spec).
    """
    match = re.fullmatch(r"(==|=|>=|~=)?(\d+)\.(\d+)(\.[\d*]+|\.?\*)?", version)
    if match is None:
        return None
    major, minor = match.group(2), match.group(3)
    if major != "3":
        raise SpecError(
            f"{raw!r} asks for Python {major}.{minor}; mlmagic builds Python 3 "
            "environments, so ask for python=3.X (for example python=3.11).",
            line=line,
        )
    return f"3.{minor}"


def _name(text: str) -> str:
    match = _match_spec(text)
    return match.name if match is not None else text


def _not_needed(name: str) -> bool:
    return name in NOT_NEEDED or (name.startswith("_") and name not in CONDA_TO_PIP)


def _conda_only(name: str) -> bool:
    if name in CONDA_TO_PIP:
        return False
    return name in CONDA_ONLY or name.startswith(CONDA_ONLY_PREFIXES)
