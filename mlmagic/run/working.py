"""A run's working directory: a writable copy of its snapshot.

The snapshot (``runs/<id>/snapshot``) is the code as it was submitted, and what a re-run
runs, so the run itself never sees it. As on Azure Machine Learning, the script runs in a
copy made when its run starts (``runs/<id>/working``): it may write, replace or delete
files beside itself, and the snapshot stays byte for byte as submitted. The copy is
removed when the run ends (:func:`mlmagic.run.lifecycle.finalize`): a run keeps its
outputs and logs, not what it wrote elsewhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlmagic.exceptions import RunError
from mlmagic.run.paths import RunPaths

__all__ = ["working_copy"]


def working_copy(paths: RunPaths) -> Path:
    """Copy the run's snapshot into its working directory, and return that folder.

    Files keep their modes and modification times; links are copied as links (a
    snapshot holds none, but older local runs kept two). A working directory left by an
    earlier start of the same run is replaced, so the script always begins from the
    snapshot.

    Raises
    ------
    RunError
        The copy could not be made (a full disk, a folder that cannot be written).
    """
    working = paths.working
    try:
        if working.exists():
            shutil.rmtree(working)
        # copytree copies file data in the kernel (sendfile), the fastest way a plain
        # file system offers; the snapshot's size limits bound how long it takes.
        shutil.copytree(paths.snapshot, working, symlinks=True)
    except OSError as exc:
        raise RunError(
            f"Cannot copy the run's snapshot into its working directory {working}: "
            f"{exc.strerror or exc}. Free some disk space in the workspace and submit again."
        ) from exc
    return working
