"""Writing a run's output that arrives as a stream (a remote engine's log, a Ray job's log)
into the run's files, as the launcher writes them on a shared filesystem.

A relay sees the launcher's stdout only: ``mlmagic_run`` prints metrics and params as
marker lines there (``MLMAGIC_METRICS_FILE=-``), as the notebook runner does its cells'
progress (``MLMAGIC_PROGRESS_FILE=-``), and :func:`write_lines` sorts them back into
``metrics.jsonl``, ``params.json`` and ``progress.jsonl``; the rest is the log.
:class:`Progress` keeps how far a relay got, so a re-attaching process resumes without
duplicates.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from mlmagic.run.paths import RunPaths
from mlmagic_notebook import PROGRESS_MARKER
from mlmagic_run import METRIC_MARKER, PARAMS_MARKER

__all__ = ["Progress", "write_lines"]


def write_lines(paths: RunPaths, lines: Iterable[str]) -> None:
    """Append ``lines`` (without their newlines) to the run's log, metrics, params and
    notebook progress."""
    log: list[str] = []
    metrics: list[str] = []
    progress: list[str] = []
    params: dict[str, object] = {}
    for line in lines:
        bare = line.rstrip("\r")
        if bare.startswith(METRIC_MARKER):
            metrics.append(bare[len(METRIC_MARKER) :])
        elif bare.startswith(PROGRESS_MARKER):
            progress.append(bare[len(PROGRESS_MARKER) :])
        elif bare.startswith(PARAMS_MARKER):
            with contextlib.suppress(ValueError):
                values = json.loads(bare[len(PARAMS_MARKER) :])
                if isinstance(values, dict):
                    params.update(values)
        else:
            log.append(line)
    if log:
        _append(paths.output_log, "".join(f"{line}\n" for line in log))
    if metrics:
        _append(paths.metrics, "".join(f"{line}\n" for line in metrics))
    if progress:
        _append(paths.progress, "".join(f"{line}\n" for line in progress))
    if params:
        _merge_params(paths.params, params)


class Progress:
    """How much of a stream a relay has written (a count in ``path``; 0 when unreadable)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int:
        """The count saved last."""
        try:
            return int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def save(self, count: int) -> None:
        """Save ``count``, atomically."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(str(count))
        os.replace(temporary, self.path)


def _append(path: Path, text: str) -> None:
    # The run is elsewhere: nothing but this relay writes these files here.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _merge_params(path: Path, values: dict[str, object]) -> None:
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    current.update(values)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(current, indent=1, ensure_ascii=False))
    os.replace(temporary, path)
