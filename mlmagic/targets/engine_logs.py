"""A remote run's output, brought into its run's files here as the engine streams it.

A run container on an engine that does not share this machine's folders writes its
files inside itself. Its launcher also prints every line to its standard output, and
with ``MLMAGIC_METRICS_FILE=-`` / ``MLMAGIC_PARAMS_FILE=-`` metrics and parameters travel
in that output as marker lines. :class:`EngineLogRelay` follows the container's log
through the engine's API and writes it into the run's files, so the stream, the widget,
``run.logs()``, the CLI and the panel read a remote run like a local one:

- lines that start with :data:`mlmagic_run.METRIC_MARKER` go to ``metrics.jsonl`` and
  those with :data:`mlmagic_run.PARAMS_MARKER` are merged into ``params.json``;
- every other line goes to ``output.log``.

One process relays a run at a time (an ``flock`` on a file beside its journal), and the
number of lines copied is kept beside it, so a process that re-attaches (a new kernel,
the CLI) goes on where the last one stopped without writing a line twice.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterable, Iterator

from mlmagic.engine.base import ContainerEngine
from mlmagic.exceptions import MlmagicError
from mlmagic.run.paths import RunPaths
from mlmagic.targets.relayed import Progress, write_lines

__all__ = ["EngineLogRelay"]


class EngineLogRelay:
    """Copies one run container's log into its run's files.

    Parameters
    ----------
    engine
        The engine the container runs on.
    handle
        The container's id.
    paths
        The run's files on this machine.
    """

    def __init__(self, engine: ContainerEngine, handle: str, paths: RunPaths) -> None:
        self.engine, self.handle, self.paths = engine, handle, paths
        self._lock_file = paths.root / "engine-log.lock"
        self._progress = Progress(paths.root / "engine-log.lines")
        self.thread: threading.Thread | None = None
        #: Why the stream broke, when it did (the engine stopped answering).
        self.error = ""

    def follow(self) -> bool:
        """Relay in a thread as the container prints, unless another process (or thread)
        does; ``True`` when this one does."""
        fd = self._lock(blocking=False)
        if fd is None:
            return False
        self.thread = threading.Thread(
            target=self._relay, args=(fd, True), name=f"mlmagic-log-{self.handle[:12]}", daemon=True
        )
        self.thread.start()
        return True

    def finish(self) -> None:
        """Once the container ended: wait for whoever relays, then copy what is left."""
        fd = self._lock(blocking=True)
        assert fd is not None
        self._relay(fd, False)

    def _lock(self, *, blocking: bool) -> int | None:
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _relay(self, fd: int, follow: bool) -> None:
        try:
            done = self._progress.read()
            lines = self.engine.logs(self.handle, follow=follow)
            for line in _skip(lines, done):
                write_lines(self.paths, [line])
                done += 1
                self._progress.save(done)
        except (MlmagicError, OSError) as exc:
            self.error = str(exc)
        except Exception as exc:  # the HTTP stream of a vanished engine breaks mid-read
            self.error = f"the engine's log stream broke: {exc}"
        finally:
            os.close(fd)  # releases the lock


def _skip(lines: Iterable[str], count: int) -> Iterator[str]:
    for index, line in enumerate(lines):
        if index >= count:
            yield line
