"""The output of a Ray job, brought into its run's files as it comes.

A Ray job's only channel back that every cluster has is its log. :class:`LogPump` follows
it (Ray's websocket tail) and writes it into the run's files on this machine, so the
stream, the widget, ``run.logs()``, the CLI and the panel read a Ray run like any other:

- lines that start with :data:`mlmagic_run.METRIC_MARKER` go to ``metrics.jsonl`` and
  those with :data:`mlmagic_run.PARAMS_MARKER` are merged into ``params.json`` (the
  launcher on the cluster runs with ``MLMAGIC_METRICS_FILE=-``); they are taken out;
- the lines of a distributed run's driver (:data:`~mlmagic.targets.ray_driver.MARKER`)
  are filed by :func:`~mlmagic.targets.ray_gang.file_marker`;
- every other line goes to ``output.log``.

One process pumps a run at a time (an ``flock`` on a file beside the run's journal), and
how far it got is kept beside it too, so a process that re-attaches later (a new kernel,
the CLI) goes on where the last one stopped, without writing a line twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time

from mlmagic.computes.client import JobInfo, RayJobs
from mlmagic.exceptions import MlmagicError
from mlmagic.run.paths import RunPaths
from mlmagic.targets.ray_driver import MARKER
from mlmagic.targets.ray_gang import file_marker
from mlmagic.targets.relayed import Progress, write_lines

__all__ = ["LogPump"]

_RETRY = 1.0


class LogPump:
    """A thread that copies one Ray job's log into its run's files.

    Parameters
    ----------
    jobs
        The compute's Jobs API.
    submission_id
        The job (the run's id).
    paths
        The run's files on this machine.
    """

    def __init__(self, jobs: RayJobs, submission_id: str, paths: RunPaths) -> None:
        self.jobs, self.job, self.paths = jobs, submission_id, paths
        self._lock_file = paths.root / "ray-pump.lock"
        self._progress = Progress(paths.root / "ray-pump.offset")
        self._lock_fd: int | None = None
        self.thread: threading.Thread | None = None
        #: The last error of the stream, for a run whose cluster stopped answering.
        self.error = ""
        self._ray_banner = f"Running entrypoint for job {submission_id}: "
        #: Set to stop retrying a cluster that does not answer (the run was closed).
        self.stop_requested = False

    def start(self) -> bool:
        """Start pumping unless another process does; ``True`` when this one does."""
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        self.thread = threading.Thread(
            target=self._run, name=f"mlmagic-ray-{self.job}", daemon=True
        )
        self.thread.start()
        return True

    @property
    def done(self) -> bool:
        """Whether this pump has copied the job's whole log (the job ended)."""
        return self.thread is not None and not self.thread.is_alive()

    def _run(self) -> None:
        try:
            consumed = self._progress.read()
            pending = ""
            while True:
                seen = 0
                try:
                    for chunk in self.jobs.tail(self.job):
                        # Ray sends the log from its start: skip what was already copied.
                        skip = max(0, min(len(chunk), consumed - seen))
                        seen += len(chunk)
                        pending += chunk[skip:]
                        pending = self._write_lines(pending)[0]
                        consumed = max(consumed, seen - len(pending))
                        self._progress.save(consumed)
                    info = self.jobs.info(self.job)
                    if info is None or info.ended:
                        break
                except MlmagicError as exc:
                    self.error = str(exc)
                    info = _safe_info(self.jobs, self.job)
                    if info is not None and info.ended:
                        break
                    time.sleep(_RETRY)
                    if self.stop_requested:
                        return
            # The tail may end before the last lines reach it: read the whole log once.
            with contextlib.suppress(MlmagicError):
                rest = self.jobs.logs(self.job)[consumed:]
                pending = pending + rest if rest else pending
                consumed += len(rest)
            pending = self._write_lines(pending)[0]
            if pending:
                self._write_lines(pending + "\n")
            self._progress.save(consumed)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = None

    def _write_lines(self, text: str) -> tuple[str, int]:
        """Write the complete lines of ``text``; return the rest and how many were written."""
        *lines, rest = text.split("\n")
        if not lines:
            return rest, 0
        kept = []
        for line in lines:
            if line.startswith(MARKER):  # a distributed run's driver reporting
                file_marker(self.paths, line.rstrip("\r"))
            elif not line.startswith(self._ray_banner):
                # Ray's own line, with the launcher's whole command, is not the run's.
                kept.append(line)
        write_lines(self.paths, kept)
        return rest, len(lines)


def _safe_info(jobs: RayJobs, job: str) -> JobInfo | None:
    try:
        return jobs.info(job)
    except MlmagicError:
        return None
