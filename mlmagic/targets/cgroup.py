"""A cgroup (v2) per local process tree, where the machine lets this process make one.

A cgroup holds every process started in it, whatever ``setsid`` or double forks they
do, and ``cgroup.kill`` ends them all at once: the surest way to answer for a tree. It
needs the unified hierarchy mounted and this process's own cgroup writable (root, or a
delegated systemd scope); where either is missing the caller falls back to tracking the
tree by its environment token (:mod:`mlmagic.targets.process`).
"""

from __future__ import annotations

import contextlib
import os
from functools import cache
from pathlib import Path

__all__ = ["cgroup_members", "kill_cgroup", "new_cgroup", "own_cgroup", "remove_cgroup"]


@cache
def own_cgroup() -> Path | None:
    """This process's cgroup folder in the unified (v2) hierarchy, if it is writable."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        groups = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    # "0::/path" is this process's place in the unified hierarchy.
    own = next((line[3:] for line in groups if line.startswith("0::")), None)
    for line in mounts:
        fields = line.split()
        separator = fields.index("-")
        if own is not None and fields[separator + 1] == "cgroup2":
            folder = Path(fields[4]) / own.lstrip("/")
            if os.access(folder / "cgroup.procs", os.W_OK) and os.access(folder, os.W_OK):
                return folder
    return None


def new_cgroup(name: str) -> str | None:
    """Make a cgroup ``name`` below this process's own; ``None`` where none can be made."""
    parent = own_cgroup()
    if parent is None:
        return None
    folder = parent / name
    try:
        folder.mkdir()
    except OSError:
        return None
    return str(folder)


def cgroup_members(folder: str) -> list[int]:
    """The PIDs in the cgroup and every cgroup below it; ``[]`` once it is gone."""
    found: list[int] = []
    for where, _, _ in os.walk(folder):
        with contextlib.suppress(OSError):
            found += [int(pid) for pid in Path(where, "cgroup.procs").read_text().split()]
    return found


def kill_cgroup(folder: str) -> bool:
    """SIGKILL every process in the cgroup at once; ``False`` where the kernel is too old
    for ``cgroup.kill`` (5.14) and the caller must kill them one by one."""
    try:
        Path(folder, "cgroup.kill").write_text("1")
    except FileNotFoundError:
        return not Path(folder).exists()
    except OSError:
        return False
    return True


def remove_cgroup(folder: str) -> None:
    """Remove an empty cgroup (and the empty ones below it); no error when it is gone or
    still holds a process (the kernel refuses; it stays for a later call)."""
    for where, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(where)
