"""What a run is asked to do: :class:`RunConfig`, checked before anything starts.

Every check that can fail on the user's input happens here, at submit time, with a
one-line message: a missing script, a data folder that does not exist, a GPU request or a
size that does not parse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlmagic.distributed.config import Distribution
from mlmagic.engine.base import GpuRequest
from mlmagic.exceptions import MlmagicError, RunError
from mlmagic.run.notebook import is_notebook, runner_argv
from mlmagic.targets.base import Target

__all__ = [
    "MAX_EXPERIMENT_LENGTH",
    "RunConfig",
    "check_experiment",
    "check_positive",
    "data_variable",
    "parse_data",
    "parse_gpus",
    "parse_size",
    "parse_tags",
]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)[bkmg]?", re.IGNORECASE)
_DATA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
#: The longest experiment name. A run id is the name plus 23 characters, and it names the
#: run's folder and container and appears in REST routes, which take ids of up to 200.
MAX_EXPERIMENT_LENGTH = 128
_EXPERIMENT = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_EXPERIMENT_LENGTH - 1}}}")


@dataclass(frozen=True)
class RunConfig:
    """A run's script, arguments, environment and resources.

    Attributes
    ----------
    script
        The script's path relative to ``source_dir`` (what runs as ``python -u script``).
    args
        Arguments passed to the script.
    source_dir
        The folder snapshotted as the run's working directory.
    environment
        ``name`` or ``name:version`` of the environment.
    experiment, name, tags
        How the run is filed.
    gpus
        ``none``, ``all``, ``auto``, a count (``"2"``) or device ids (``"0,1"``).
    data
        Read-only data folders, name → host path.
    shm_size, memory, cpus, timeout
        Resources and limits; ``timeout`` in seconds.
    target
        Where it runs: ``docker``.
    distributed
        The layout of a distributed run (nodes, processes, framework); ``None`` for one
        process in one container.
    compute
        The compute (see :mod:`mlmagic.computes`) of a run on the ``ray`` target, or of one
        on ``docker@NAME`` (a Docker engine elsewhere).
    parameters
        For a notebook (``script`` ends in ``.ipynb``): the values injected after its
        ``parameters`` cell (:mod:`mlmagic.run.notebook`).
    """

    script: str
    environment: str
    source_dir: str
    args: tuple[str, ...] = ()
    experiment: str = "default"
    name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    gpus: str = "none"
    data: Mapping[str, str] = field(default_factory=dict)
    shm_size: str | None = None
    memory: str | None = None
    cpus: float | None = None
    timeout: float | None = None
    target: str = "docker"
    distributed: Distribution | None = None
    compute: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _target_class(self.target).check_run(self)
        if is_notebook(self.script):
            if self.args:
                raise RunError(
                    f"{self.script} is a notebook, which takes no command-line arguments: "
                    "give its values as parameters (-p name=value) instead of after --."
                )
        elif self.parameters:
            raise RunError(
                f"Parameters (-p) are for notebooks, and {self.script} is a script: pass its "
                "arguments after -- instead."
            )
        parse_gpus(self.gpus)
        for value, what in ((self.shm_size, "--shm-size"), (self.memory, "--memory")):
            if value is not None:
                parse_size(value, what)
        check_positive(self.cpus, "--cpus")
        check_positive(self.timeout, "--timeout", unit=" of seconds")
        check_experiment(self.experiment)
        if self.distributed is not None:
            gpus = parse_gpus(self.gpus)
            if isinstance(gpus, GpuRequest) and len(gpus.device_ids) % self.distributed.nodes:
                raise RunError(
                    f"--gpus {self.gpus}: {len(gpus.device_ids)} ids do not split evenly over "
                    f"{self.distributed.nodes} nodes; give a multiple of the node count."
                )

    @property
    def argv(self) -> tuple[str, ...]:
        """What the run's Python executes after ``python -u``: the script and its
        arguments, or the notebook runner (:func:`~mlmagic.run.notebook.runner_argv`)."""
        if is_notebook(self.script):
            return runner_argv(self.script, self.parameters)
        return (self.script, *self.args)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, stored with the run."""
        data = asdict(self)
        data["args"] = list(self.args)
        data["distributed"] = self.distributed.to_dict() if self.distributed else None
        data["parameters"] = dict(self.parameters)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Rebuild from :meth:`to_dict`."""
        dist = data.get("distributed")
        return cls(
            **{
                **data,
                "args": tuple(data.get("args", ())),
                "distributed": Distribution.from_dict(dist) if dist else None,
            }
        )


def _target_class(name: str) -> type[Target]:
    """The class of the target ``name`` (``docker@COMPUTE`` is docker's), whose
    :meth:`~mlmagic.targets.base.Target.check_run` decides what it takes; the base class
    for a name this installation does not know (a stored run of a target since
    uninstalled still reads; a new run is refused when its target is resolved)."""
    from mlmagic.targets import target_class

    try:
        return target_class(name.partition("@")[0])
    except MlmagicError:
        return Target


def parse_gpus(value: str) -> GpuRequest | str | None:
    """``None`` for no GPUs, ``"auto"``, or the :class:`GpuRequest` for ``value``."""
    text = str(value).strip().lower()
    if text in ("", "none", "0"):
        return None
    if text == "auto":
        return "auto"
    if text == "all":
        return GpuRequest(count=-1)
    if text.isdigit():
        return GpuRequest(count=int(text))
    ids = tuple(i.strip() for i in text.removeprefix("device=").split(",") if i.strip())
    listed = text.startswith("device=") or "," in text
    if listed and ids and all(re.fullmatch(r"[\w-]+", i) for i in ids):
        return GpuRequest(device_ids=ids)
    raise RunError(
        f"--gpus {value!r} is not understood: use all, auto, none, a count (2) or device ids (0,1)."
    )


def parse_size(value: str, what: str = "size") -> str:
    """Check a Docker size such as ``512m`` or ``2g``; zero is refused (Docker would
    read it as "no limit")."""
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise RunError(f"{what} {value!r} is not a size: write it like 512m or 2g.")
    if float(match.group(1)) == 0:
        raise RunError(
            f"{what} {value!r} is zero: give a size like 512m or 2g, or leave {what} out "
            "for no limit."
        )
    return value.strip().lower()


def check_positive(value: float | None, what: str, *, unit: str = "") -> None:
    """Refuse a limit that is not a finite number above zero (``None``: no limit)."""
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise RunError(
            f"{what} must be a positive number{unit}, not {value!r}: leave it out for no limit."
        )


def check_experiment(name: str) -> None:
    """Refuse an experiment name that cannot be part of a run id.

    A run id names a folder, a container (Docker takes ASCII letters, digits, ``_``,
    ``.`` and ``-``) and a REST route, so the name is held to what all of them take.
    """
    if not isinstance(name, str) or not _EXPERIMENT.fullmatch(name):
        raise RunError(
            f"Experiment name {name!r}: use ASCII letters, digits, '-', '_' and '.', "
            f"starting with a letter or digit, at most {MAX_EXPERIMENT_LENGTH} characters."
        )


def parse_data(items: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``["name=path", ...]`` (or a mapping) → ``{name: absolute path}``; paths must exist."""
    pairs = items.items() if isinstance(items, Mapping) else [_split(i) for i in items]
    data = {}
    for name, path in pairs:
        if not isinstance(name, str) or not _DATA_NAME.fullmatch(name):
            raise RunError(
                f"Data name {name!r}: start with a letter; use letters, digits, '-' and '_'."
            )
        if not str(path).strip():
            raise RunError(
                f"--data {name}= names no folder: give its path after '=', like "
                f"--data {name}=./data."
            )
        folder = Path(path).expanduser().resolve()
        if not folder.exists():
            raise RunError(f"--data {name}={path}: {folder} does not exist.")
        data[name] = str(folder)
    return data


def parse_tags(items: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``["k=v", ...]`` (or a mapping) → ``{k: v}``."""
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    return dict(_split(i, "--tag") for i in items)


def data_variable(name: str) -> str:
    """The environment variable that holds a data folder's path in the container."""
    return "MLMAGIC_DATA_" + re.sub(r"\W", "_", name).upper()


def _split(item: str, what: str = "--data") -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise RunError(f"{what} {item!r}: write it as NAME=VALUE.")
    return name.strip(), value.strip()
