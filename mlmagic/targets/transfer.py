"""A run's files to and from an engine that does not see this machine's folders.

On a remote engine (see :mod:`mlmagic.computes.docker_host`) nothing can be bind-mounted:
:func:`run_archive` packs what a run container reads (the snapshot, the ``--data``
folders, the helper module, the empty ``outputs/``, ``logs/`` and system folders) into one
tar that the engine unpacks at ``/`` of the created container before it starts, and
:func:`unpack` brings a folder or file the engine hands back (its archive API) into the
run's folder here.

What comes back was written by the run: :func:`unpack` keeps regular files and folders
only, below the destination, and never follows or makes a link (the same distrust as
:mod:`mlmagic.run.untrusted`).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from mlmagic.run.paths import CONTAINER, RunPaths
from mlmagic.targets.labels import AZUREML_SHIM, HELPER, NOTEBOOK_RUNNER

__all__ = ["run_archive", "unpack"]

# What a spooled archive keeps in memory before it goes to a temporary file.
_IN_MEMORY = 16 * 1024 * 1024


def run_archive(paths: RunPaths, data: Mapping[str, str], owner: tuple[int, int] | None) -> bytes:
    """The tar of a run container's files, by their paths inside it (from ``/``).

    Parameters
    ----------
    paths
        The run's folders here (the snapshot is read).
    data
        ``--data`` folders, name → folder here; copied read-only (mode without write
        bits) to ``/mlmagic/data/<name>``.
    owner
        The ``(uid, gid)`` of the image's user, which must be able to write the run's
        folders; ``None``: root.
    """
    uid, gid = owner or (0, 0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("/mlmagic", CONTAINER.lib, CONTAINER.data):
            _folder(tar, folder, 0, 0, 0o755)
        _tree(tar, paths.snapshot, CONTAINER.src, uid, gid, writable=True)
        for folder in (CONTAINER.outputs, CONTAINER.logs, CONTAINER.system):
            _folder(tar, folder, uid, gid, 0o755)
        # What a bind mount gives a run on this machine: the launcher, the notebook runner
        # and the azureml shim (read-only, root's).
        tar.add(HELPER, arcname=_name(CONTAINER.helper), filter=_owned(0, 0, writable=False))
        tar.add(
            NOTEBOOK_RUNNER,
            arcname=_name(CONTAINER.notebook_runner),
            filter=_owned(0, 0, writable=False),
        )
        tar.add(
            AZUREML_SHIM,
            arcname=_name(f"{CONTAINER.lib}/azureml"),
            filter=_no_cache(_owned(0, 0, writable=False)),
        )
        for name, folder in sorted(data.items()):
            _tree(tar, Path(folder), f"{CONTAINER.data}/{name}", 0, 0, writable=False)
    return buffer.getvalue()


def _no_cache(
    change: Callable[[tarfile.TarInfo], tarfile.TarInfo],
) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name.split("/") else change(info)

    return keep


def _name(path: str) -> str:
    return str(PurePosixPath(path).relative_to("/"))


def _folder(tar: tarfile.TarFile, path: str, uid: int, gid: int, mode: int) -> None:
    info = tarfile.TarInfo(_name(path))
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
    tar.addfile(info)


def _owned(uid: int, gid: int, *, writable: bool) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def change(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        if not writable:
            info.mode &= ~0o222
        return info

    return change


def _tree(
    tar: tarfile.TarFile, folder: Path, target: str, uid: int, gid: int, *, writable: bool
) -> None:
    # Links inside stay links (as a bind mount shows them); none is followed here.
    tar.add(folder, arcname=_name(target), filter=_owned(uid, gid, writable=writable))


def unpack(chunks: Iterable[bytes], destination: Path) -> int:
    """Write the archive of one file or folder (the engine's ``get_archive``) into
    ``destination``: a folder's content goes into ``destination`` (made if needed), a
    file's into ``destination`` as that file. Returns how many files were written.

    Only regular files and folders are kept, and only below ``destination``; anything
    else (links, devices, names with ``..``) is skipped.
    """
    with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY) as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r:") as tar:
            return _extract(tar, destination)


def _extract(tar: tarfile.TarFile, destination: Path) -> int:
    written = 0
    for member in _members(tar):
        parts = PurePosixPath(member.name).parts[1:]  # the top entry is what was asked for
        # One file asked for has no parts below the top: it is the destination itself.
        target = destination.joinpath(*parts)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            continue
        if target.is_symlink() or target.is_dir():
            continue  # never write through a link, never replace a folder
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out)
        written += 1
    return written


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            continue
        if member.isreg() or member.isdir():
            yield member
