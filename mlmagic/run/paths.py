"""Where a run's files live, on the host and inside its container.

On the host everything is under ``<workspace>/runs/<run id>/``::

    events.jsonl  the journal (stages, build, end), written by mlmagic on the host
    notebook-layer.log  a notebook run's build of what executes it
    lib/          the local target's copy of mlmagic_run.py (a container mounts it instead)
    snapshot/     the source folder as it was at submit time (never seen by the run)
    working/      the working directory: a copy of snapshot/ for the length of the run
    outputs/      the script's ./outputs, written live through a bind mount
    logs/         the script's ./logs, likewise
    system/       written from inside the run (by the launcher and mlmagic_run):
                  output.log (every line the script printed), metrics.jsonl,
                  params.json, exit.json, progress.jsonl (a notebook's cells)

Once the script runs, mlmagic writes nothing on the host in the folders the run can write
(``working/``, ``outputs/``, ``logs/``, ``system/``): a script that replaces a file there
with a link can only mislead readers, which is why every host-side read of them goes
through :mod:`mlmagic.run.untrusted`. The journal lies beside them, where no container
sees it.

Inside the container the paths follow ARCHITECTURE.md's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONTAINER", "RunPaths"]


@dataclass(frozen=True)
class _ContainerPaths:
    src: str = "/mlmagic/src"
    outputs: str = "/mlmagic/src/outputs"
    logs: str = "/mlmagic/src/logs"
    system: str = "/mlmagic/run"
    lib: str = "/mlmagic/lib"
    data: str = "/mlmagic/data"

    @property
    def helper(self) -> str:
        return f"{self.lib}/mlmagic_run.py"

    @property
    def notebook_runner(self) -> str:
        return f"{self.lib}/mlmagic_notebook.py"

    def in_system(self, name: str) -> str:
        return f"{self.system}/{name}"


#: Paths inside a run container.
CONTAINER = _ContainerPaths()


@dataclass(frozen=True)
class RunPaths:
    """The folders and files of one run on the host."""

    root: Path

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot"

    @property
    def working(self) -> Path:
        """The script's working directory: a writable copy of :attr:`snapshot` (see
        :mod:`mlmagic.run.working`)."""
        return self.root / "working"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def system(self) -> Path:
        return self.root / "system"

    @property
    def output_log(self) -> Path:
        return self.system / "output.log"

    @property
    def metrics(self) -> Path:
        return self.system / "metrics.jsonl"

    @property
    def params(self) -> Path:
        return self.system / "params.json"

    @property
    def progress(self) -> Path:
        """Where a notebook's runner appends ``{"cell": K, "cells": N}`` per cell."""
        return self.system / "progress.jsonl"

    @property
    def exit_file(self) -> Path:
        return self.system / "exit.json"

    @property
    def events(self) -> Path:
        """The journal: written by mlmagic on the host, outside every folder the run sees."""
        return self.root / "events.jsonl"

    @property
    def notebook_log(self) -> Path:
        """The build log of a notebook run's notebook layer (written before it starts,
        beside the journal)."""
        return self.root / "notebook-layer.log"

    @property
    def lib(self) -> Path:
        """Where a local-target run imports ``mlmagic_run`` from (copied at its start)."""
        return self.root / "lib"

    @property
    def legacy_events(self) -> Path:
        """Where older runs kept their journal (inside ``system/``), read for their replay."""
        return self.system / "events.jsonl"

    def create(self) -> None:
        """Make the folders the container mounts (the snapshot is made by its copy)."""
        for folder in (self.outputs, self.logs, self.system):
            folder.mkdir(parents=True, exist_ok=True)
        for file in (self.output_log, self.metrics, self.events):
            file.touch()
