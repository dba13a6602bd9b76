"""Copying a file or folder out of a place someone else can write, never through a link.

A run's outputs are written by its script, which may be hostile or careless, and a model
version's folder is mounted into services. Checking such a tree for links and then
copying it with functions that follow links leaves a gap in which a file can become a
link to any host file. Here the check and the copy are one act: every name is opened
relative to its parent folder's descriptor with ``O_NOFOLLOW``, its type is read from the
opened descriptor, and what is copied is what was opened. A link, a named pipe, a socket
or a device file met anywhere is refused, naming it; nothing is copied then.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePath

from mlmagic.exceptions import MlmagicError

__all__ = ["copy_out"]

#: Open for reading without following a link, blocking on a pipe or taking a terminal.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Deeper trees are refused: each level holds one open descriptor while it is copied.
MAX_DEPTH = 200
_CHUNK = 1 << 20


def copy_out(root: Path, relative: PurePath, dest: Path, *, shown: PurePath | None = None) -> Path:
    """Copy ``root / relative`` (a file or a folder) to ``dest``, following no link.

    Parameters
    ----------
    root
        A folder the caller trusts (a run's folder, the folder the user named); it is
        the only path followed as given.
    relative
        The path under ``root`` to copy, without ``..``. Every part of it, and every
        file and folder under it, is opened without following a link.
    dest
        Where the copy goes. Its parent must exist. A folder there is merged into (files
        of the same name replaced); a file there is replaced.
    shown
        How ``root`` is written in messages (``PurePath("")`` for paths relative to it);
        the full ``root`` by default.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    MlmagicError
        A link, named pipe, socket or device file is met (named in the message), a file
        changes type while it is copied, the tree is deeper than :data:`MAX_DEPTH`, or
        the path does not exist. ``dest`` is then as it was: the copy is made in a
        temporary folder beside it and moved into place only once complete.
    """
    parts = relative.parts
    if not parts or relative.is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{relative} is not a plain path below {root}")
    label = root if shown is None else shown
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".mlmagic-copy-", dir=dest.parent))
    except OSError as exc:
        raise MlmagicError(
            f"Cannot copy to {dest}: {exc.strerror or exc}. Give a folder that exists and "
            "that you can write."
        ) from exc
    try:
        _copy_below(root, parts, scratch, label)
        _place(scratch / parts[-1], dest)
    except OSError as exc:
        raise MlmagicError(
            f"Cannot copy {label / relative} to {dest}: {exc.strerror or exc}"
            f"{f' ({exc.filename})' if exc.filename else ''}."
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dest


def _copy_below(root: Path, parts: tuple[str, ...], scratch: Path, label: PurePath) -> None:
    """Walk down ``parts`` from ``root`` without following links; copy the last into
    ``scratch``."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        *parents, last = parts
        walked = label
        for part in parents:
            walked = walked / part
            child, info = _open(folder, part, walked)
            os.close(folder)
            folder = child
            if not stat.S_ISDIR(info.st_mode):
                raise MlmagicError(f"{walked} is not a folder: check the path.")
        _copy(folder, last, scratch / last, walked / last, depth=0)
    finally:
        os.close(folder)


def _copy(folder: int, name: str, dest: Path, shown: PurePath, *, depth: int) -> None:
    """Copy the entry ``name`` of the open ``folder`` to the new path ``dest``."""
    if depth > MAX_DEPTH:
        raise MlmagicError(
            f"{shown} is nested more than {MAX_DEPTH} folders deep: flatten the folder, "
            "then try again."
        )
    fd, info = _open(folder, name, shown)
    try:
        if stat.S_ISDIR(info.st_mode):
            dest.mkdir()
            for entry in sorted(os.listdir(fd)):
                _copy(fd, entry, dest / entry, shown / entry, depth=depth + 1)
            os.chmod(dest, stat.S_IMODE(info.st_mode) & 0o777)
            os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))
        else:
            _copy_bytes(fd, info, dest)
    finally:
        os.close(fd)


def _open(folder: int, name: str, shown: PurePath) -> tuple[int, os.stat_result]:
    """Open ``name`` in ``folder`` as a plain file or folder, and what it is."""
    try:
        before = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        raise MlmagicError(f"There is no {shown}: check the path.") from None
    _refuse_special(before.st_mode, shown)
    flags = _READ | (os.O_DIRECTORY if stat.S_ISDIR(before.st_mode) else 0)
    try:
        fd = os.open(name, flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_special(stat.S_IFLNK, shown)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            raise _changed(shown) from exc
        raise
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino, stat.S_IFMT(after.st_mode)) != (
        before.st_dev,
        before.st_ino,
        stat.S_IFMT(before.st_mode),
    ):
        os.close(fd)
        raise _changed(shown)
    return fd, after


def _refuse_special(mode: int, shown: PurePath) -> None:
    """Raise for anything but a plain file or folder, saying what it is."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    if stat.S_ISLNK(mode):
        kind = "a symbolic link"
    elif stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "a device file"
    raise MlmagicError(
        f"{shown} is {kind}, and only plain files and folders are copied (never through "
        "a link, so nothing from elsewhere on this machine is picked up): replace it with "
        "the file it stands for, or move it out of the folder, then try again."
    )


def _changed(shown: PurePath) -> MlmagicError:
    return MlmagicError(
        f"{shown} changed while it was being copied: copy it again once nothing writes to it."
    )


def _copy_bytes(source: int, info: os.stat_result, dest: Path) -> None:
    """Copy an open plain file's bytes, permissions (never set-id bits) and times."""
    out = os.open(dest, _WRITE, 0o600)
    try:
        while chunk := os.read(source, _CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
        os.fchmod(out, stat.S_IMODE(info.st_mode) & 0o777)
        os.utime(out, ns=(info.st_atime_ns, info.st_mtime_ns))
    finally:
        os.close(out)


def _place(copy: Path, dest: Path) -> None:
    """Move a finished copy to ``dest``, merging into a folder already there."""
    if copy.is_dir() and dest.is_dir():
        for child in copy.iterdir():
            _place(child, dest / child.name)
        return
    try:
        os.replace(copy, dest)
    except OSError as exc:
        raise MlmagicError(
            f"Cannot put the copy at {dest}: {exc.strerror}. Choose another destination."
        ) from exc
