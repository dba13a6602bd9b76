"""``Run.get_context()``: the run a training script belongs to, written through ``mlmagic_run``.

Stdlib only, importable on any Python from 3.8, because it runs inside images that have
nothing of mlmagic or Azure installed. The same class is the offline run of a notebook:
outside a run ``mlmagic_run`` prints what it is given instead of recording it.

How Azure's calls map onto a run's records:

- ``log(name, number)`` is one value of the metric ``name``; a value that is not a number
  (text, ``None``) is a parameter instead, as the metrics file holds numbers only;
- ``log_list(name, values)`` logs each value of the list as the next step of ``name``;
- ``log_row(name, a=1, b=2)`` and ``log_table(name, {"a": [...], "b": [...]})`` log each
  column as the metric ``name.column``;
- ``tag(key, value)`` and ``set_tags`` record the parameter ``tag:key``;
- ``upload_file(name, path)`` copies the file to the run's ``outputs/`` (or ``logs/`` when
  ``name`` starts with ``logs/``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import mlmagic_run

__all__ = ["Run"]

#: The parameter-name prefix of tags set from inside a run.
TAG_PREFIX = "tag:"


class Run:
    """The run of the current process (Azure ML's ``Run`` as a script sees it).

    Use :meth:`get_context`; the attributes Azure's scripts read are :attr:`id`,
    :attr:`experiment` (its name) and :attr:`offline`.
    """

    def __init__(self) -> None:
        self.id = mlmagic_run.run_id() or f"OfflineRun_{uuid.uuid4()}"
        self.offline = mlmagic_run.run_id() is None
        self.parent = None
        #: Azure's named inputs; data reaches an mlmagic run as script arguments.
        self.input_datasets: dict[str, Any] = {}

    @classmethod
    def get_context(cls, allow_offline: bool = True, **_: Any) -> Run:
        """The run this process is part of; outside a run an offline run that prints.

        Raises
        ------
        RuntimeError
            Outside a run with ``allow_offline=False``.
        """
        run = cls()
        if run.offline and not allow_offline:
            raise RuntimeError(
                "Run.get_context(allow_offline=False) is outside an mlmagic run: submit the "
                "script (Experiment.submit, %submit) or allow an offline run."
            )
        return run

    @property
    def experiment(self) -> _Experiment:
        """The experiment (its ``name``: the run id up to its time stamp; ``default``
        offline)."""
        return _Experiment(self.id.rsplit("_", 2)[0] if not self.offline else "default")

    # -- metrics -------------------------------------------------------------------------

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """One value of the metric ``name`` (a parameter when it is not a number)."""
        if _is_number(value):
            mlmagic_run.log(name, value, step=step)
        else:
            mlmagic_run.log_params({name: value})

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        """Each value of ``value`` as the next step of the metric ``name``."""
        for item in value:
            self.log(name, item)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """One row of the table ``name``: each column as the metric ``name.column``."""
        for column, value in kwargs.items():
            self.log(f"{name}.{column}", value)

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        """A table of columns: each column's values as the metric ``name.column``."""
        for column, values in value.items():
            self.log_list(f"{name}.{column}", list(values))

    def log_image(self, name: str, path: str | None = None, plot: Any = None, **_: Any) -> None:
        """Keep an image file (or a matplotlib figure) in the run's outputs as ``name``."""
        if plot is not None:
            target = Path(mlmagic_run.output_dir()) / f"{name}.png"
            plot.savefig(str(target))
        elif path is not None:
            self.upload_file(f"outputs/{Path(path).name}", path)

    # -- tags ----------------------------------------------------------------------------

    def tag(self, key: str, value: Any = None) -> None:
        """Set the tag ``key`` (to ``""`` when no value is given)."""
        mlmagic_run.log_params({TAG_PREFIX + key: "" if value is None else str(value)})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set several tags at once."""
        for key, value in tags.items():
            self.tag(key, value)

    # -- files ---------------------------------------------------------------------------

    def upload_file(self, name: str, path_or_stream: Any) -> None:
        """Copy a file (or the bytes of a stream) into the run as ``name``.

        ``outputs/...`` and ``logs/...`` go to those folders of the run; any other name
        goes under ``outputs/``.
        """
        target = _run_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            target.write_bytes(data if isinstance(data, bytes) else str(data).encode())
        elif Path(path_or_stream).resolve() != target.resolve():
            shutil.copyfile(str(path_or_stream), str(target))

    def upload_folder(self, name: str, path: str) -> None:
        """Copy a folder into the run as ``name`` (see :meth:`upload_file`)."""
        target = _run_path(name)
        if Path(path).resolve() != target.resolve():
            shutil.copytree(path, str(target), dirs_exist_ok=True)

    def get_secret(self, name: str) -> str:
        """A secret, from the run's environment variable of that name.

        Raises
        ------
        KeyError
            No such variable: put the secret in the environment's variables.
        """
        value = os.environ.get(name)
        if value is None:
            raise KeyError(
                f"run.get_secret({name!r}): there is no key vault here; set {name} in the "
                "environment's environment_variables and read it from there."
            )
        return value

    # -- lifecycle -----------------------------------------------------------------------

    def complete(self, **_: Any) -> None:
        """Nothing to do: the run completes when the script exits 0."""

    def fail(self, error_details: Any = None, **_: Any) -> None:
        """Say why the script fails; the run fails when the script exits non-zero."""
        if error_details is not None:
            print(f"run.fail: {error_details}", flush=True)

    def flush(self, **_: Any) -> None:
        """Nothing to do: every value is written when it is logged."""

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, offline={self.offline})"


class _Experiment:
    """The experiment a script's run belongs to, as far as a script can see it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def workspace(self) -> Any:
        raise RuntimeError(
            "run.experiment.workspace is not reachable from inside an mlmagic run: pass what "
            "the script needs as arguments (datastore.path(...).as_mount() for data)."
        )

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name})"


def _is_number(value: Any) -> bool:
    if isinstance(value, (str, bytes)) or value is None:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _run_path(name: str) -> Path:
    """Where the run keeps ``name``: under its outputs, or its logs for ``logs/...``."""
    outputs = Path(mlmagic_run.output_dir())
    parts = [p for p in PurePosixPath(name.replace(os.sep, "/")).parts if p not in ("", ".")]
    if not parts or ".." in parts or name.startswith("/"):
        raise ValueError(f"upload name {name!r}: give a relative path such as outputs/model.pkl.")
    if parts[0] == "outputs":
        return outputs.joinpath(*parts[1:]) if parts[1:] else outputs
    if parts[0] == "logs":
        return outputs.parent.joinpath("logs", *parts[1:])
    return outputs.joinpath(*parts)
