"""A run's life: Preparing → Starting → Running → Finalizing → Completed | Failed | Canceled.

:func:`drive` runs in a thread of the submitting process and takes a queued run to its
end. The container (or, on the local target, the detached process), not that thread, is
the truth of a live run: if the kernel dies, the script goes on, and any process that
later looks at the run (:func:`watch`) finalises it when the script ends.
:func:`finalize` is idempotent: whichever process sees the end first closes the record; a
second one changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from mlmagic.distributed.resources import (
    framework_note,
    missing_launcher,
    split_gpus,
)
from mlmagic.engine.base import ContainerState, GpuRequest
from mlmagic.events import BuildEvent, BuildEventKind, RunEvent, RunEventKind, Stage, Status, drain
from mlmagic.exceptions import BuildError, EngineError, MlmagicError, RunError, SpecError
from mlmagic.records import RunRecord
from mlmagic.run import journal
from mlmagic.run.config import parse_gpus
from mlmagic.run.notebook import is_notebook
from mlmagic.run.paths import RunPaths
from mlmagic.run.untrusted import read_exit
from mlmagic.targets.base import Target

if TYPE_CHECKING:
    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

__all__ = ["cancel", "drive", "enter_stage", "finalize", "owner_alive", "owner_id", "watch"]

#: The longest a run's driver waits on its target before it looks at the run again.
_WAIT = 2.0
# Runs this process watches, so a run is watched once per process.
_watching: set[str] = set()
_watching_lock = threading.Lock()


class _Stop(Exception):
    """The run cannot go on; carries how it ends."""

    def __init__(self, status: Status, message: str, stage: Stage | None) -> None:
        super().__init__(message)
        self.status, self.message, self.stage = status, message, stage


def owner_id() -> str:
    """Who drives a run: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that drives a run still lives (unknown hosts count as alive)."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _paths(ws: Workspace, run_id: str) -> RunPaths:
    return RunPaths(ws.path("runs", run_id))


def enter_stage(ws: Workspace, run_id: str, stage: Stage) -> bool:
    """Record that ``stage`` starts; ``False`` when the run has already ended."""
    if not ws.store.start_stage(run_id, stage.value):
        return False
    journal.append(_paths(ws, run_id).events, RunEvent(RunEventKind.STAGE, stage=stage))
    return True


def drive(ws: Workspace, run_id: str) -> None:
    """Take a queued run to its end (the submitting process's thread).

    The record is read once; what changes under it (a cancel request from another
    process) is asked of the store by a narrow query at each step.
    """
    with _watching_lock:
        _watching.add(run_id)
    stage = Stage.PREPARING
    try:
        record = ws.store.run(run_id)
        assert record is not None
        target = ws.target(record.target)
        target.begin_run(record)  # beside the preparing, which it does not depend on
        paths = _paths(ws, run_id)
        env, gpus = _prepare(ws, record, paths, target)
        stage = Stage.STARTING
        _check_canceled(ws, run_id, stage)
        if not enter_stage(ws, run_id, Stage.STARTING):
            return
        try:
            handle = target.start_run(record, paths, env, gpus)
        except MlmagicError as exc:
            raise _Stop(Status.FAILED, f"the script could not start: {exc}", stage) from exc
        started = time.time()
        ws.store.update_run(run_id, handle=handle, started=started)
        record = replace(record, handle=handle, started=started)
        stage = Stage.RUNNING
        entered = enter_stage(ws, run_id, Stage.RUNNING)
        if not entered or ws.store.cancel_requested(run_id):
            # Canceled while it was starting: stop what was started.
            target.stop(handle, timeout=5)
        _follow(ws, record, target)
    except _Stop as stop:
        finalize(ws, run_id, status=stop.status, message=stop.message, stage=stop.stage)
    except BaseException as exc:
        finalize(ws, run_id, status=Status.FAILED, message=f"mlmagic failed: {exc!r}", stage=stage)
    finally:
        with _watching_lock:
            _watching.discard(run_id)


def _prepare(
    ws: Workspace, record: RunRecord, paths: RunPaths, target: Target
) -> tuple[Environment, GpuRequest | None]:
    """Materialise the environment (an image or a venv); check GPUs."""
    run_id = record.id
    if not enter_stage(ws, run_id, Stage.PREPARING):
        raise _Stop(Status.CANCELED, "canceled before it started", Stage.QUEUED)
    env = ws.environments.get(record.env_name or "", record.env_version)
    events = ws.environments.build(env, target=record.target)

    def record_event(event: BuildEvent) -> None:
        journal.append(paths.events, RunEvent(RunEventKind.BUILD, build=event))
        if event.kind is not BuildEventKind.LOG:
            _check_canceled(ws, run_id, Stage.PREPARING)

    try:
        built = drain(events, record_event)
    except (BuildError, SpecError) as exc:
        raise _Stop(
            Status.FAILED, f"the environment {env.ref} failed to build: {exc}", Stage.PREPARING
        ) from exc
    except EngineError as exc:
        raise _Stop(Status.FAILED, str(exc), Stage.PREPARING) from exc
    finally:
        events.close()
    # The record names what runs: building under today's settings may have made (or
    # found) another version than the one picked at submit, e.g. after the default base
    # image changed.
    ws.store.update_run(
        run_id, image=target.location(built), env_name=built.name, env_version=built.version
    )
    if built.version != env.version:
        _note(paths, f"{env.ref} is built as {built.ref} under the current settings; it runs")
    asked = parse_gpus(record.config.gpus)
    gpus = asked if isinstance(asked, GpuRequest) else None
    if asked == "auto":
        problem = target.gpu_problem(built)
        gpus = None if problem else GpuRequest(count=-1)
        if problem:
            _note(paths, f"no GPU available, running on the CPU (--gpus auto): {problem}")
    elif gpus is not None:
        problem = target.gpu_problem(built, gpus)
        if problem:
            raise _Stop(Status.FAILED, problem, Stage.PREPARING)
    for note in target.notes(record.config):
        _note(paths, note)
    if is_notebook(record.config.script):
        _prepare_notebook(ws, record, paths, target, built)
    if record.config.distributed is not None:
        _check_gang(target, built, record, paths, gpus)
    return built, gpus


def _prepare_notebook(
    ws: Workspace, record: RunRecord, paths: RunPaths, target: Target, env: Environment
) -> None:
    """Make what executes the notebook (its own layer or folder), its events in the log."""

    def record_event(event: BuildEvent) -> None:
        journal.append(paths.events, RunEvent(RunEventKind.BUILD, build=event))
        if event.kind is not BuildEventKind.LOG:
            _check_canceled(ws, record.id, Stage.PREPARING)

    try:
        drain(target.prepare_notebook(env, paths), record_event)
    except (BuildError, RunError, EngineError) as exc:
        raise _Stop(
            Status.FAILED, f"what runs the notebook could not be made: {exc}", Stage.PREPARING
        ) from exc


def _check_gang(
    target: Target, env: Environment, record: RunRecord, paths: RunPaths, gpus: GpuRequest | None
) -> None:
    """Refuse a distributed run the environment or the host cannot run, before it starts."""
    dist = record.config.distributed
    assert dist is not None
    needed = missing_launcher(dist)
    if needed and not target.has_command(env, needed[0]):
        raise _Stop(
            Status.FAILED,
            f"--distributed {dist.framework} needs {needed[0]}, which the environment "
            f"{env.ref} does not have: {needed[1]}.",
            Stage.PREPARING,
        )
    note = framework_note(dist, env.packages)
    if note:
        _note(paths, note)
    try:
        split_gpus(gpus, dist.nodes, target.gpu_count() if gpus else None)
    except MlmagicError as exc:
        raise _Stop(Status.FAILED, str(exc), Stage.PREPARING) from exc


def _check_canceled(ws: Workspace, run_id: str, stage: Stage) -> None:
    if ws.store.cancel_requested(run_id):
        raise _Stop(Status.CANCELED, f"canceled while {stage.value.lower()}", stage)


def _follow(ws: Workspace, record: RunRecord, target: Target) -> None:
    """Wait for the script of a started run to end (or time out) and finalise the run."""
    assert record.handle is not None
    handle, timeout = record.handle, record.config.timeout
    started = record.started or time.time()
    while True:
        state = target.state(handle)
        if state is None or not state.running:
            finalize(ws, record.id, state=state)
            return
        if timeout and time.time() - started > timeout:
            target.stop(handle, timeout=10)
            finalize(
                ws,
                record.id,
                state=target.state(handle),
                status=Status.FAILED,
                message=f"timed out after {timeout:g} s (--timeout)",
            )
            return
        # Up to a few seconds at a time where the target hears of the end (the engine's
        # wait), never past the run's --timeout; a target that cannot polls.
        left = started + timeout - time.time() if timeout else _WAIT
        target.wait_exit(handle, max(0.05, min(_WAIT, left)))


def watch(ws: Workspace, run_id: str) -> None:
    """Finalise a run nobody drives any more, now or when its container ends.

    Called when a process looks at a live run: if the process that submitted it is gone,
    this process watches the container (in a thread) and closes the record at its end.
    """
    record = ws.store.run(run_id)
    if record is None or record.status.is_terminal or owner_alive(record.owner):
        return
    with _watching_lock:
        if run_id in _watching:
            return
        _watching.add(run_id)

    def _watch() -> None:
        try:
            if record.handle is None:
                stage = (
                    Stage(record.status.value)
                    if record.status is not Status.QUEUED
                    else Stage.QUEUED
                )
                finalize(
                    ws,
                    run_id,
                    status=Status.FAILED,
                    message="the process that submitted the run ended before its container "
                    "started; submit it again",
                    stage=stage,
                )
                return
            _follow(ws, record, ws.target(record.target))
        finally:
            with _watching_lock:
                _watching.discard(run_id)

    threading.Thread(target=_watch, name=f"mlmagic-watch-{run_id}", daemon=True).start()


def cancel(ws: Workspace, run_id: str) -> None:
    """Ask a run to stop: before it starts it never will; a running container is stopped."""
    record = ws.store.run(run_id)
    if record is None or record.status.is_terminal:
        return
    ws.store.update_run(run_id, cancel_requested=1)
    if record.handle:
        target = ws.target(record.target)
        target.stop(record.handle, timeout=10)
        finalize(ws, run_id, state=target.state(record.handle))
    elif not owner_alive(record.owner):
        finalize(ws, run_id, status=Status.CANCELED, message="canceled before it started")


def finalize(
    ws: Workspace,
    run_id: str,
    *,
    state: ContainerState | None = None,
    status: Status | None = None,
    message: str = "",
    stage: Stage | None = None,
) -> bool:
    """Close the run's record once; ``False`` when another process already did.

    The outcome comes from ``status``/``message`` when given, else from the container's
    exit (its state, or the launcher's exit file when the container is gone). The record
    is read here, once: whichever process finalises needs its latest handle and cancel
    request.
    """
    record = ws.store.run(run_id)
    if record is None or record.status.is_terminal:
        return False
    paths = _paths(ws, run_id)
    if record.handle:
        enter_stage(ws, run_id, Stage.FINALIZING)
    exit_code = _exit_code(state, paths)
    if status is None:
        status, message, stage = _outcome(record, state, exit_code, paths)
        if status is Status.FAILED and record.handle:
            message = ws.target(record.target).exit_message(record.handle) or message
    if record.cancel_requested and status is not Status.COMPLETED:
        status, message = Status.CANCELED, message or "canceled"
    if status is Status.FAILED and record.handle and exit_code is not None:
        said = _console_of_silent_run(ws.target(record.target), record.handle, paths)
        if said:
            message = f"{message}; before its log began it printed: {said}"
    ended = time.time()
    closed = ws.store.finish_run(
        run_id,
        status=status.value,
        exit_code=exit_code,
        ended=ended,
        error=message or None,
        failed_stage=stage.value if stage and status is Status.FAILED else None,
    )
    if closed:
        # What it ran in goes before the END event, so whoever sees the end sees it gone.
        try:
            if record.handle:
                ws.target(record.target).remove(record.handle)
            elif record.config.distributed is not None:
                # Only a distributed run begins anything before it starts (its network).
                ws.target(record.target).abandon_run(record)
        finally:
            # The working copy goes with what ran in it: the run keeps its snapshot,
            # outputs and logs (what the script wrote elsewhere is not an output, as on
            # Azure), and a workspace of many runs does not hold each one's code twice.
            shutil.rmtree(paths.working, ignore_errors=True)
            journal.append(
                paths.events,
                RunEvent(RunEventKind.END, status=status, exit_code=exit_code, message=message),
            )
    return closed


def _console_of_silent_run(target: Target, handle: str, paths: RunPaths) -> str:
    """The last line a failed run printed outside its log, kept in its log; ``""`` when
    the log has lines (the launcher ran) or nothing else was printed.

    What fails before the launcher opens the log (no python in the image, a log the
    image's user cannot write) is printed only to the container's own output, which
    leaves with the container: copy it into the run's log first.
    """
    try:
        if not stat.S_ISREG((info := os.lstat(paths.output_log)).st_mode) or info.st_size:
            return ""
    except FileNotFoundError:
        pass
    lines = [line for line in target.console(handle) if line.strip()]
    if not lines:
        return ""
    # The run has ended, but it could have left a link here: never follow one.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    with contextlib.suppress(OSError):
        fd = os.open(paths.output_log, flags, 0o644)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.write(fd, "".join(f"{line}\n" for line in lines).encode())
        finally:
            os.close(fd)
    return lines[-1].strip()


def _exit_code(state: ContainerState | None, paths: RunPaths) -> int | None:
    if state is not None and state.exit_code is not None:
        return state.exit_code
    return read_exit(paths)[0]


def _outcome(
    record: RunRecord, state: ContainerState | None, exit_code: int | None, paths: RunPaths
) -> tuple[Status, str, Stage | None]:
    if exit_code == 0:
        return Status.COMPLETED, "", None
    if state is not None and state.oom_killed:
        limit = record.config.memory
        return (
            Status.FAILED,
            f"killed for memory (exit {exit_code}, OOMKilled) with --memory {limit or 'unset'}: "
            "give it more with --memory, or use less",
            Stage.RUNNING,
        )
    if exit_code is None:
        return (
            Status.FAILED,
            "the run ended without an exit code (its container or launcher was killed "
            "or removed before writing one)",
            Stage.RUNNING,
        )
    error = read_exit(paths)[1]  # the last line of its traceback, as the launcher read it
    why = f": {error}" if error else ""
    return Status.FAILED, f"the script exited with code {exit_code}{why}", Stage.RUNNING


def _note(paths: RunPaths, text: str) -> None:
    """A line from mlmagic in the run's log stream."""
    journal.append(
        paths.events,
        RunEvent(RunEventKind.BUILD, build=BuildEvent(BuildEventKind.LOG, message=text)),
    )
