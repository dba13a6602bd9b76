"""The short-lived process that starts a local run or server, detached (stdlib only).

:func:`mlmagic.targets.process.spawn_detached` runs this file by its path (not as a
module of mlmagic, which the started process's environment may not import)::

    python -I detach.py SETTINGS_JSON COMMAND...

``SETTINGS_JSON`` is ``{"cgroup": PATH or "", "read_only": [PATH, ...]}``. In order, this
process:

1. moves itself into the cgroup ``PATH`` (made by the caller), so that everything it
   starts, and everything that starts, is in it, whatever ``setsid`` or double forks
   they do; a cgroup it cannot enter is reported and left to the caller;
2. for ``read_only`` folders, enters a private mount namespace (a user namespace too
   when not root) and bind-mounts each folder read-only onto itself, so the command
   sees the same paths, read-only, while every other process sees them as they were;
3. starts ``COMMAND`` in a new session, detached from every stream, and exits: the
   command is reparented to init and is never the caller's child.

It prints one JSON line: ``{"pid": N, "cgroup": true|false}``, or ``{"error": TEXT,
"read_only": true|false}`` with exit code 1 when nothing was started.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys

__all__ = ["main"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
# Mount options a user namespace may not drop from a mount it inherited (they are
# "locked"), so a read-only remount keeps them; their statvfs and mount flags are equal.
_KEPT = os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME


def main(argv: list[str]) -> int:
    """Do the three steps above for ``argv`` = ``[SETTINGS_JSON, *COMMAND]``."""
    settings, command = json.loads(argv[0]), argv[1:]
    joined = False
    if settings.get("cgroup"):
        try:
            with open(os.path.join(settings["cgroup"], "cgroup.procs"), "w") as procs:
                procs.write(str(os.getpid()))
            joined = True
        except OSError:
            joined = False
    if settings.get("read_only"):
        try:
            _read_only_view(settings["read_only"])
        except OSError as exc:
            print(json.dumps({"error": _describe(exc), "read_only": True}))
            return 1
    try:
        child = subprocess.Popen(
            command,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError as exc:
        print(json.dumps({"error": _describe(exc), "read_only": False}))
        return 1
    print(json.dumps({"pid": child.pid, "cgroup": joined}))
    return 0


def _read_only_view(folders: list[str]) -> None:
    """Enter a private mount namespace where each folder is read-only (raises OSError)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        _check(libc.unshare(_CLONE_NEWNS), "unshare a mount namespace")
    else:
        uid, gid = os.geteuid(), os.getegid()
        _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare a user and mount namespace")
        # The same ids inside as outside: files the command makes stay the user's.
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
            with open(f"/proc/self/{name}", "w") as file:
                file.write(text)
        with open("/proc/self/gid_map", "w") as file:
            file.write(f"{gid} {gid} 1")
    # Nothing done here may reach the other processes' mounts.
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    for folder in folders:
        real = os.path.realpath(folder)
        _check(libc.mount(real.encode(), real.encode(), None, _MS_BIND | _MS_REC, None), real)
        # The folder and every mount below it (a bind is read-only one mount at a time).
        for point in _mounts_under(real):
            flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | (os.statvfs(point).f_flag & _KEPT)
            _check(libc.mount(None, point.encode(), None, flags, None), point)


def _mounts_under(real: str) -> list[str]:
    """Mount points at or below ``real`` in this namespace (``/proc/self/mountinfo``)."""
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
            if point == real or point.startswith(real.rstrip("/") + "/"):
                found.append(point)
    return found


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{os.strerror(errno)} ({what})")


def _describe(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
