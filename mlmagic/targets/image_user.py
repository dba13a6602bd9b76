"""The user an image's containers run as, and giving a run's folders to it.

mlmagic keeps the ``USER`` an image sets (its author chose it), so when Jupyter runs as
root the run's folders, made by root, must become writable by that user before its
container starts; otherwise the launcher cannot even open the run's log.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from mlmagic.engine.base import ContainerEngine, ImageInfo
from mlmagic.exceptions import EngineError, RunError
from mlmagic.run.paths import RunPaths

__all__ = ["give_run_folders", "image_user"]

_ROOT_NAMES = ("", "root", "0")


def image_user(
    engine: ContainerEngine, image: str, info: ImageInfo | None = None
) -> tuple[int, int] | None:
    """The ``(uid, gid)`` the containers of ``image`` run as; ``None`` for root.

    A numeric ``USER uid:gid`` is read as it is; a name is looked up in the image (one
    short container), once per image id in this process. ``info``: the image as just
    looked up, which saves asking the engine again.

    Raises
    ------
    RunError
        The image names a user that cannot be looked up in it.
    """
    if info is None:
        info = engine.image_info(image)
    if info is None:
        return None
    name, _, group = info.user.partition(":")
    if name in _ROOT_NAMES:
        return None
    if name.isdigit() and group.isdigit():
        return int(name), int(group)
    return _looked_up(engine, image, info.id, info.user)


@cache
def _looked_up(engine: ContainerEngine, image: str, image_id: str, user: str) -> tuple[int, int]:
    try:
        out = engine.run_once(image, ["sh", "-c", "id -u; id -g"]).split()
    except EngineError as exc:
        raise RunError(
            f"The image {image} runs as USER {user}, whose ids could not be looked up in it "
            f"({str(exc).splitlines()[0]}): set USER as uid:gid in its Dockerfile."
        ) from exc
    if len(out) != 2 or not all(part.isdigit() for part in out):
        raise RunError(
            f"The image {image} runs as USER {user}, whose ids could not be looked up in it "
            f"(`id` printed {' '.join(out)!r}): set USER as uid:gid in its Dockerfile."
        )
    return int(out[0]), int(out[1])


def give_run_folders(paths: RunPaths, uid: int, gid: int) -> None:
    """Make the folders a run container writes, and what is in them, owned by ``uid``.

    Called before the container starts, on folders mlmagic has just made, so nothing
    the run wrote can be in them; links are changed themselves, never followed.
    """
    for top in (paths.working, paths.outputs, paths.logs, paths.system):
        _chown(top, uid, gid)
        for folder, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                _chown(Path(folder) / name, uid, gid)


def _chown(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
