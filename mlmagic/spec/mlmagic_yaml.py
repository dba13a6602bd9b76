"""The ``yaml`` format: mlmagic's own YAML, one key per field of the spec.

.. code-block:: yaml

    base_image: python:3.11-slim     # default: the configured image for `gpu`
    python: "3.11"                   # 3.X; an unquoted 3.10 is read as written, not as 3.1
    apt: [git, curl]                 # Debian/Ubuntu packages
    pip: [scikit-learn==1.5.2, pandas>=2]
    index_url: https://pypi.org/simple
    extra_index_urls: [https://download.pytorch.org/whl/cpu]
    conda: [numpy=1.26, cudatoolkit=11.8]   # conda specs, read as in environment.yml
    channels: [conda-forge]
    solver: uv                       # or conda (micromamba)
    env: {OMP_NUM_THREADS: 1}
    gpu: false
    cuda: "12.1"                     # X.Y: the nvidia/cuda base of that CUDA (implies gpu)
    user_managed: false              # true: use the base image's Python, install nothing
    dockerfile_steps: ["RUN echo done"]
    registry: {address: myregistry.example.com, username: me, password_env: REGISTRY_TOKEN}

Any YAML mapping is claimed as this format (after conda's files, which have
``dependencies``), so a misspelt key gets an "unknown key" error naming the known ones
rather than a confusing pip error. A single string is accepted where a list is expected
(``apt: git``). ``pip`` and ``conda`` are read by the same code as the pip and conda
formats (:func:`mlmagic.spec.requirements.read_lines`,
:func:`mlmagic.spec.conda.read_dependencies`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mlmagic.exceptions import SpecError
from mlmagic.spec import _yaml
from mlmagic.spec.base import SOLVERS, EnvironmentSpec, RegistryLogin
from mlmagic.spec.conda import read_channels, read_dependencies
from mlmagic.spec.dockerfile import instructions
from mlmagic.spec.requirements import read_lines, sort_requirements

__all__ = ["KEYS", "detect", "parse"]

#: The keys of mlmagic YAML.
KEYS = (
    "apt",
    "base_image",
    "channels",
    "conda",
    "cuda",
    "dockerfile_steps",
    "env",
    "extra_index_urls",
    "gpu",
    "index_url",
    "pip",
    "python",
    "registry",
    "solver",
    "user_managed",
)
_REGISTRY_KEYS = ("address", "password_env", "username")
_APT_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.\-]*(?::[a-z0-9-]+)?(?:=[A-Za-z0-9+.:~\-]+)?")
_PYTHON = re.compile(r"3\.\d{1,2}")
_CUDA = re.compile(r"\d{1,2}\.\d{1,2}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def detect(text: str) -> bool:
    """Any YAML mapping (conda files are claimed before this format is asked)."""
    return _yaml.load_mapping(text) is not None


def parse(text: str) -> EnvironmentSpec:
    """Read mlmagic YAML into a ``yaml`` spec.

    Raises
    ------
    SpecError
        The YAML is malformed, a key is unknown, a value has the wrong type or form, a
        registry password is written in the text, or keys contradict each other; with
        the line of the key (or list item) at fault.
    """
    document = _yaml.load(text)
    data = document.data
    if not isinstance(data, dict):
        raise SpecError(
            "mlmagic YAML is a mapping of keys to values, for example 'pip: [pandas>=2]'; "
            f"the keys are {', '.join(KEYS)}.",
            line=document.line(),
        )
    for key in data:
        if key not in KEYS:
            raise SpecError(
                f"{key!r} is not a key of mlmagic YAML; the keys are {', '.join(KEYS)}.",
                line=document.line(str(key)),
            )
    pip = read_lines(_yaml.string_list(document, "pip"))
    conda = read_dependencies(_yaml.string_list(document, "conda"))
    python = _python(document)
    if python and conda.python and python != conda.python:
        raise SpecError(
            f"python is {python} but conda asks for python {conda.python}; keep one of them.",
            line=document.line("python"),
        )
    user_managed = _boolean(document, "user_managed")
    if user_managed and (pip.requirements or conda.conda):
        raise SpecError(
            "user_managed: true installs nothing into the base image's Python, yet pip or "
            "conda lists packages; remove the packages, or remove user_managed.",
            line=document.line("user_managed"),
        )
    return EnvironmentSpec(
        format="yaml",
        base_image=_single_word(document, "base_image"),
        python=python or conda.python,
        apt=_apt(document),
        pip=sort_requirements([*pip.requirements, *conda.pip]),
        index_url=_index_url(document, pip.index_url),
        extra_index_urls=tuple(
            dict.fromkeys(
                [
                    *(url.strip() for _, url in _yaml.string_list(document, "extra_index_urls")),
                    *pip.extra_index_urls,
                ]
            )
        ),
        conda=conda.conda,
        channels=read_channels(_yaml.string_list(document, "channels")),
        solver=_solver(document),
        env=_yaml.string_mapping(document, "env"),
        gpu=_boolean(document, "gpu"),
        cuda=_cuda(document),
        user_managed=user_managed,
        dockerfile_steps=_dockerfile_steps(document),
        registry=_registry(document),
    )


def _python(document: _yaml.YamlDocument) -> str | None:
    value = document.data.get("python")
    if value is None:
        return None
    # The text as written: YAML reads `python: 3.10` as the number 3.1.
    text = document.scalar_text("python")
    if text is None or isinstance(value, bool) or not _PYTHON.fullmatch(text.strip()):
        shown = text if text is not None else _yaml.kind(value)
        raise SpecError(
            f"python must be a Python version of the form 3.X, such as '3.11', not {shown}.",
            line=document.line("python"),
        )
    return text.strip()


def _cuda(document: _yaml.YamlDocument) -> str | None:
    value = document.data.get("cuda")
    if value is None:
        return None
    # As with python: YAML reads `cuda: 12.10` as 12.1, so the text is taken as written.
    text = document.scalar_text("cuda")
    if text is None or isinstance(value, bool) or not _CUDA.fullmatch(text.strip()):
        shown = text if text is not None else _yaml.kind(value)
        raise SpecError(
            f"cuda must be a CUDA version of the form X.Y, such as '12.1', not {shown}.",
            line=document.line("cuda"),
        )
    return text.strip()


def _boolean(document: _yaml.YamlDocument, key: str) -> bool:
    value = document.data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpecError(
            f"{key} must be true or false, not {_yaml.kind(value)} "
            f"({document.scalar_text(key) or value!r}).",
            line=document.line(key),
        )
    return value


def _text(document: _yaml.YamlDocument, key: str) -> str | None:
    """A string value, or ``None`` when the key is absent or empty."""
    value = document.data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(
            f"{key} must be text, not {_yaml.kind(value)}; quote it if YAML reads it as "
            "something else.",
            line=document.line(key),
        )
    return value.strip()


def _single_word(document: _yaml.YamlDocument, key: str) -> str | None:
    value = _text(document, key)
    if value is not None and len(value.split()) > 1:
        raise SpecError(
            f"{key} must be one word, with no spaces: {value!r}.", line=document.line(key)
        )
    return value


def _index_url(document: _yaml.YamlDocument, from_pip: str | None) -> str | None:
    index_url = _single_word(document, "index_url")
    if index_url and from_pip and index_url != from_pip:
        raise SpecError(
            f"index_url is {index_url} but the pip list says --index-url {from_pip}; "
            "keep one of them (the index_url key is the clearer place).",
            line=document.line("index_url"),
        )
    return index_url or from_pip


def _solver(document: _yaml.YamlDocument) -> str:
    value = document.data.get("solver")
    if value is None:
        return "uv"
    if value not in SOLVERS:
        raise SpecError(
            f"solver must be one of {', '.join(SOLVERS)}, not {value!r}: uv installs pip "
            "packages, conda installs conda packages with micromamba.",
            line=document.line("solver"),
        )
    return str(value)


def _apt(document: _yaml.YamlDocument) -> tuple[str, ...]:
    packages = []
    for line, raw in _yaml.string_list(document, "apt"):
        name = raw.strip()
        if not _APT_PACKAGE.fullmatch(name):
            raise SpecError(
                f"{raw!r} is not a Debian package name; apt takes one name per item, "
                "optionally with =version, for example apt: [git, curl].",
                line=line,
            )
        packages.append(name)
    # The order of `apt-get install` arguments does not matter to what is installed.
    return tuple(sorted(set(packages)))


def _dockerfile_steps(document: _yaml.YamlDocument) -> tuple[str, ...]:
    """Dockerfile lines, blank lines dropped, checked as instructions (no ``FROM``)."""
    value = document.data.get("dockerfile_steps")
    numbered: list[tuple[int, str]] = []
    if isinstance(value, str):
        node = document.node("dockerfile_steps")
        assert node is not None
        first = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            first += 1  # a block scalar's text starts on the line after its indicator
        numbered = [(first + i, line) for i, line in enumerate(value.splitlines())]
    else:
        for line, item in _yaml.string_list(document, "dockerfile_steps"):
            numbered += [(line or 0, part) for part in item.splitlines()]
    steps = [(line, text.rstrip()) for line, text in numbered if text.strip()]
    found = instructions("\n".join(text for _, text in steps), numbers=[line for line, _ in steps])
    for step in found:
        if step.keyword == "FROM":
            raise SpecError(
                "dockerfile_steps may not hold FROM: the steps run on top of the "
                "environment, and a FROM would start a new image without it. Set "
                "base_image instead, or write the whole Dockerfile in the cell.",
                line=step.line,
            )
    return tuple(text for _, text in steps)


def _registry(document: _yaml.YamlDocument) -> RegistryLogin | None:
    value = document.data.get("registry")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpecError(
            f"registry must be a mapping with address, username and password_env, not "
            f"{_yaml.kind(value)}.",
            line=document.line("registry"),
        )
    if "password" in value:
        raise SpecError(
            "never put a password in the cell: it would be stored with the environment. "
            "Name an environment variable that holds it (password_env: MY_REGISTRY_TOKEN), "
            "or log in once with `docker login` and leave password_env out.",
            line=document.line("registry", "password"),
        )
    for key in value:
        if key not in _REGISTRY_KEYS:
            raise SpecError(
                f"{key!r} is not a key of registry; use {', '.join(_REGISTRY_KEYS)}.",
                line=document.line("registry", str(key)),
            )
    fields: dict[str, Any] = {}
    for key in _REGISTRY_KEYS:
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, str) or not item.strip() or len(item.split()) > 1:
            raise SpecError(
                f"registry {key} must be one word of text, not {_yaml.kind(item)} or "
                "several words.",
                line=document.line("registry", key),
            )
        fields[key] = item.strip()
    for key in ("address", "username"):
        if key not in fields:
            raise SpecError(
                f"registry needs {key}, for example registry: {{address: "
                "myregistry.example.com, username: me, password_env: REGISTRY_TOKEN}.",
                line=document.line("registry"),
            )
    password_env = fields.get("password_env")
    if password_env is not None and not _VARIABLE_NAME.fullmatch(password_env):
        raise SpecError(
            f"registry password_env names an environment variable, and {password_env!r} is "
            "not a variable name; use letters, digits and underscores (REGISTRY_TOKEN).",
            line=document.line("registry", "password_env"),
        )
    return RegistryLogin(**fields)
