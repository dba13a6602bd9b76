"""The files a run wrote (``outputs/`` and ``logs/``), listed and served to a browser.

A run's script writes these folders, so nothing in them is trusted: a listing walks them
without following a link (a link is listed as one, never as what it points to), and a
download opens the file through :func:`mlmagic.run.untrusted.open_run_file`, which refuses
a link or a special file anywhere on the way. A name is checked as words first: absolute,
``..``, or outside ``outputs/`` and ``logs/`` is refused before anything is opened.

What a browser is given is inert: the type guessed from the name, ``nosniff`` so it is
never guessed again from the bytes, a ``sandbox`` content security policy so an HTML or SVG
file the script wrote runs no script on the Jupyter server's origin, and those active types
only as an attachment.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote

from mlmagic.exceptions import ConflictError, MlmagicError, NotFoundError
from mlmagic.run.paths import RunPaths
from mlmagic.run.untrusted import RefusedFile, open_run_file

__all__ = [
    "FOLDERS",
    "MAX_DOWNLOAD",
    "MAX_LISTED",
    "BadFileName",
    "Download",
    "content_headers",
    "list_files",
    "open_download",
    "plain_name",
]

#: The folders of a run that are listed and served.
FOLDERS = ("outputs", "logs")
#: The most files one listing holds (then ``truncated`` is true).
MAX_LISTED = 2000
#: The largest file served whole; larger ones are copied out with ``run.download()``.
MAX_DOWNLOAD = 2 << 30
# Types a browser would run (HTML, SVG, XML, scripts): served only as an attachment.
_ACTIVE = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")
_SCRIPT_WORDS = ("javascript", "ecmascript")


class BadFileName(MlmagicError, ValueError):
    """A file name that is not a plain path inside ``outputs/`` or ``logs/`` (400)."""


@dataclass
class Download:
    """An open file of a run and the headers to serve it with.

    Attributes
    ----------
    file
        Open for reading, positioned at its start; the caller closes it.
    size
        Its size when it was opened: no more than this is served (a live run may grow it).
    headers
        ``Content-Type``, ``Content-Disposition``, ``X-Content-Type-Options`` and
        ``Content-Security-Policy``.
    """

    file: IO[bytes]
    size: int
    headers: dict[str, str]


def plain_name(name: str) -> PurePosixPath:
    """``name`` as a path inside ``outputs/`` or ``logs/``, else :class:`BadFileName`."""
    path = PurePosixPath(name)
    parts = [part for part in path.parts if part not in ("", ".")]
    if path.is_absolute() or ".." in parts or "\\" in name or "\x00" in name:
        raise BadFileName(
            f"{name!r} is not a file of the run: give a path inside it, like outputs/model.pkl."
        )
    if len(parts) < 2 or parts[0] not in FOLDERS:
        raise BadFileName(f"{name!r} is not in the run's outputs/ or logs/.")
    return PurePosixPath(*parts)


def list_files(paths: RunPaths) -> dict[str, Any]:
    """The files of ``outputs/`` and ``logs/``, found without following any link.

    Returns
    -------
    dict
        ``{"files": [{"path", "size", "modified", "kind"}], "truncated"}``; ``path`` is
        ``outputs/...`` or ``logs/...`` (``/``-separated), ``kind`` is ``file`` or
        ``link`` (a link is listed, its target never read, and it cannot be downloaded);
        sorted by path; at most :data:`MAX_LISTED`.
    """
    found: list[dict[str, Any]] = []
    truncated = False
    for folder in FOLDERS:
        top = paths.root / folder
        if not _is_real_folder(top):
            continue
        for current, folders, files in os.walk(top, followlinks=False):
            folders.sort()
            for name in sorted(files + [f for f in folders if _is_link(Path(current, f))]):
                full = Path(current, name)
                try:
                    info = full.lstat()
                except OSError:
                    continue  # removed while listed
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                    continue  # FIFOs, sockets, devices: nothing a person opens
                if len(found) >= MAX_LISTED:
                    truncated = True
                    break
                found.append(
                    {
                        "path": full.relative_to(paths.root).as_posix(),
                        "size": info.st_size if stat.S_ISREG(info.st_mode) else None,
                        "modified": info.st_mtime,
                        "kind": "file" if stat.S_ISREG(info.st_mode) else "link",
                    }
                )
    found.sort(key=lambda f: f["path"])
    return {"files": found, "truncated": truncated}


def open_download(paths: RunPaths, name: str) -> Download:
    """Open ``outputs/...`` or ``logs/...`` of a run to serve it.

    Raises
    ------
    BadFileName
        ``name`` is absolute, has ``..``, or is outside ``outputs/`` and ``logs/``.
    NotFoundError
        No such file.
    ConflictError
        The file, or a folder on the way, is a link or not a regular file; or it is larger
        than :data:`MAX_DOWNLOAD`.
    """
    relative = plain_name(name)
    try:
        file = open_run_file(paths, paths.root / relative)
    except RefusedFile as exc:
        raise ConflictError(str(exc)) from exc
    if file is None:
        raise NotFoundError(f"The run has no {relative}: its files are listed beside it.")
    size = os.fstat(file.fileno()).st_size
    if size > MAX_DOWNLOAD:
        file.close()
        raise ConflictError(
            f"{relative} is {size >> 20} MiB, more than the browser is given "
            f"({MAX_DOWNLOAD >> 20} MiB): copy it with run.download({str(relative)!r})."
        )
    return Download(file, size, content_headers(relative.name))


def content_headers(filename: str) -> dict[str, str]:
    """The headers a run's file ``filename`` is served with (see the module's text)."""
    kind, encoding = mimetypes.guess_type(filename, strict=False)
    if kind is None or encoding is not None:
        # A compressed file is served as what it is, not as what it decompresses to.
        kind = "application/octet-stream"
    active = kind in _ACTIVE or any(word in kind for word in _SCRIPT_WORDS)
    if kind.startswith("text/") or kind == "application/json":
        kind += "; charset=utf-8"
    disposition = "attachment" if active else "inline"
    return {
        "Content-Type": kind,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src "
        "'unsafe-inline'",
        "Cache-Control": "no-store",
    }


def _is_real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _is_link(path: Path) -> bool:
    # os.walk lists a link to a folder among the folders; it is shown as a link.
    return path.is_symlink()
