"""The snapshot of a run's source folder: what is copied into the run, and what is not.

A run works on a copy of its source folder taken at submission, so editing files while it
runs changes nothing, and the copy is kept with the run. What is copied follows an ignore
file at the top of the source folder, the first of ``.mlignore``, ``.amlignore`` (Azure
Machine Learning's) and ``.gitignore`` that exists, in gitignore syntax. Nested ignore
files are not read. ``.git/``, ``__pycache__/`` and ``.ipynb_checkpoints/`` are never
copied, nor are the paths the caller excludes (the workspace folder).

Size limits are checked on the whole list before anything is copied, so a folder that is
too big fails fast and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pathspec

from mlmagic.exceptions import RunError

__all__ = ["ALWAYS_IGNORED", "IGNORE_FILES", "SnapshotInfo", "ignored_by", "snapshot"]

#: Ignore files looked for at the top of the source folder; the first found is used.
IGNORE_FILES = (".mlignore", ".amlignore", ".gitignore")
#: Folders never copied, wherever they are.
ALWAYS_IGNORED = frozenset({".git", "__pycache__", ".ipynb_checkpoints"})

_LARGEST_SHOWN = 5


@dataclass(frozen=True)
class SnapshotInfo:
    """What :func:`snapshot` copied.

    Attributes
    ----------
    files
        The number of files copied.
    bytes
        Their total size.
    ignore_file
        The ignore file whose rules were followed, or ``None`` when there was none.
    skipped
        Paths (relative to the source folder) that were not copied although no rule
        ignores them, each with the reason: symbolic links to folders or to places outside
        the source folder, special files, files that vanished while copying.
    """

    files: int
    bytes: int
    ignore_file: Path | None
    skipped: list[str] = field(default_factory=list)


class _File(NamedTuple):
    relative: str  # POSIX path relative to the source folder
    size: int


def snapshot(
    source_dir: Path,
    dest: Path,
    *,
    exclude: Sequence[Path] = (),
    max_bytes: int = 300 * 1024 * 1024,
    max_files: int = 2000,
) -> SnapshotInfo:
    """Copy ``source_dir`` into ``dest``, leaving out what the ignore rules name.

    Files are copied with their modes and modification times. Symbolic links to folders
    are not followed; a symbolic link to a file is copied as the file's contents when the
    file is inside ``source_dir`` and skipped otherwise.

    Parameters
    ----------
    source_dir
        The folder to copy.
    dest
        Where to copy it; must not exist, or be an empty folder. Its parents are created.
        When it lies inside ``source_dir`` it is left out of the copy.
    exclude
        More files or folders to leave out (the workspace folder when it lies inside
        ``source_dir``): absolute, or relative to the current folder. Paths outside
        ``source_dir`` change nothing.
    max_bytes
        The largest total size allowed.
    max_files
        The most files allowed.

    Returns
    -------
    SnapshotInfo
        What was copied and what was skipped.

    Raises
    ------
    RunError
        ``source_dir`` is not a folder, ``dest`` is not empty, the ignore file cannot be
        read, the files left are over a limit (nothing is copied then; the message names
        the largest files or folders), or a file cannot be read.
    """
    source = _check_source(Path(source_dir))
    dest = Path(dest)
    _check_dest(dest)
    ignore_file = next((source / n for n in IGNORE_FILES if (source / n).is_file()), None)
    spec = _read_ignore_file(ignore_file)
    excluded = {Path(path).resolve() for path in exclude} | {dest.resolve()}

    folders, files, skipped = _walk(source, spec, excluded)
    _check_limits(source, files, ignore_file, max_bytes, max_files)

    dest.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        (dest / folder).mkdir(parents=True, exist_ok=True)
    copied = 0
    total = 0
    for file in files:
        try:
            shutil.copy2(source / file.relative, dest / file.relative)
        except FileNotFoundError:
            skipped.append(f"{file.relative}: removed while the snapshot was taken")
            continue
        except OSError as exc:
            raise RunError(
                f"Cannot copy {source / file.relative} into the run's snapshot: "
                f"{exc.strerror or exc}. Make it readable, or add it to .mlignore "
                f"(gitignore syntax) in {source}."
            ) from exc
        copied += 1
        total += file.size
    return SnapshotInfo(files=copied, bytes=total, ignore_file=ignore_file, skipped=skipped)


def ignored_by(source_dir: Path, relative: str) -> Path | None:
    """The ignore file whose rules leave ``relative`` out of a snapshot of ``source_dir``.

    ``None`` when the file would be copied (as far as the rules go). A file is left out
    when it, or one of its folders, matches: ignored folders are pruned, as git does.
    """
    source = Path(source_dir).resolve()
    ignore_file = next((source / n for n in IGNORE_FILES if (source / n).is_file()), None)
    if ignore_file is None:
        return None
    spec = _read_ignore_file(ignore_file)
    parts = Path(relative).parts
    folders = ["/".join(parts[:i]) + "/" for i in range(1, len(parts))]
    if any(spec.match_file(folder) for folder in folders) or spec.match_file(relative):
        return ignore_file
    return None


def _check_source(source_dir: Path) -> Path:
    if not source_dir.exists():
        raise RunError(
            f"The source folder {source_dir} does not exist. Pass the folder that holds "
            "the training script with --source-dir."
        )
    if not source_dir.is_dir():
        raise RunError(
            f"The source folder {source_dir} is not a folder. Pass the folder that holds "
            "the training script with --source-dir."
        )
    return source_dir.resolve()


def _check_dest(dest: Path) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise RunError(f"Cannot take a snapshot into {dest}: it is a file, not a folder.")
    if any(dest.iterdir()):
        raise RunError(
            f"Cannot take a snapshot into {dest}: the folder is not empty. "
            "Give a new or an empty folder."
        )


def _read_ignore_file(path: Path | None) -> pathspec.GitIgnoreSpec:
    if path is None:
        return pathspec.GitIgnoreSpec.from_lines([])
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except OSError as exc:
        raise RunError(f"Cannot read the ignore file {path}: {exc.strerror or exc}.") from exc
    except ValueError as exc:  # pathspec's error for a malformed pattern
        raise RunError(
            f"The ignore file {path} has a pattern that is not gitignore syntax: {exc}. "
            "Fix or remove it."
        ) from exc


def _walk(
    source: Path, spec: pathspec.GitIgnoreSpec, excluded: set[Path]
) -> tuple[list[str], list[_File], list[str]]:
    """List the folders and files to copy, in a stable order, and what is skipped."""
    folders: list[str] = []
    files: list[_File] = []
    skipped: list[str] = []
    for root, dirnames, filenames in os.walk(source):  # does not follow links to folders
        here = Path(root)
        prefix = here.relative_to(source).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        kept = []
        for name in sorted(dirnames):
            path = here / name
            relative = prefix + name
            # Pruning an ignored folder is what git does too: a rule cannot re-include a
            # file whose folder is ignored.
            if name in ALWAYS_IGNORED or spec.match_file(relative + "/") or path in excluded:
                continue
            if path.is_symlink():
                skipped.append(f"{relative}/: a symbolic link to a folder (not followed)")
                continue
            kept.append(name)
            folders.append(relative)
        dirnames[:] = kept
        for name in sorted(filenames):
            path = here / name
            relative = prefix + name
            if spec.match_file(relative) or path in excluded:
                continue
            size, reason = _regular_file_size(path, source)
            if reason is None:
                files.append(_File(relative, size))
            else:
                skipped.append(f"{relative}: {reason}")
    return folders, files, skipped


def _regular_file_size(path: Path, source: Path) -> tuple[int, str | None]:
    """The size of the file ``path`` names, or why it is not copied."""
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            return 0, f"a symbolic link to {os.readlink(path)}, which does not exist"
        if not target.is_relative_to(source):
            return 0, f"a symbolic link to {target}, outside the source folder (not copied)"
    try:
        status = path.stat()
    except OSError as exc:
        return 0, f"cannot be read ({exc.strerror or exc})"
    if not path.is_file():
        return 0, "not a regular file (a pipe, socket or device)"
    return status.st_size, None


def _check_limits(
    source: Path, files: list[_File], ignore_file: Path | None, max_bytes: int, max_files: int
) -> None:
    total = sum(file.size for file in files)
    problems = []
    if total > max_bytes:
        largest = sorted(files, key=lambda file: file.size, reverse=True)[:_LARGEST_SHOWN]
        problems.append(
            f"its files add up to {_size(total)}, over the limit of {_size(max_bytes)}. "
            "Largest files: "
            + ", ".join(f"{file.relative} ({_size(file.size)})" for file in largest)
            + "."
        )
    if len(files) > max_files:
        counts = Counter(
            file.relative.split("/", 1)[0] + "/" if "/" in file.relative else "top level"
            for file in files
        )
        busiest = counts.most_common(_LARGEST_SHOWN)
        problems.append(
            f"it holds {len(files):,} files, over the limit of {max_files:,}. "
            "Folders with the most files: "
            + ", ".join(f"{folder} ({_files(count)})" for folder, count in busiest)
            + "."
        )
    if not problems:
        return
    fix = f"Add them to .mlignore (gitignore syntax) in {source}, or pass a smaller --source-dir."
    if ignore_file is not None and ignore_file.name != IGNORE_FILES[0]:
        fix += f" A .mlignore replaces the {ignore_file.name} used now, so copy its rules into it."
    raise RunError(
        f"The source folder {source} is too big for a run's snapshot: "
        + " Also, ".join(problems)
        + f" {fix}"
    )


def _files(count: int) -> str:
    return f"{count:,} file" if count == 1 else f"{count:,} files"


def _size(count: int) -> str:
    """``count`` bytes for a person to read: ``"812 bytes"``, ``"3.4 MiB"``."""
    if count < 1024:
        return f"{count:,} bytes"
    size = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
