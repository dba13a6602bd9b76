"""Where things run: one module per target, chosen by name from one registry.

Built in: ``docker`` (:class:`~mlmagic.targets.docker.DockerTarget`) and ``local``
(:class:`~mlmagic.targets.local.LocalTarget`). Another package adds a target with an entry
point in the ``mlmagic.targets`` group naming its :class:`~mlmagic.targets.base.Target`
subclass (``ray = "mlmagic_ray:RayTarget"``); a target of mlmagic's own is one module
plus one line in :data:`BUILTIN`. :meth:`mlmagic.workspace.Workspace.resolve_target` is
the one place that picks a target (``auto`` → docker when an engine answers, else local).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module, metadata

from mlmagic.exceptions import MlmagicError
from mlmagic.targets.base import Materialised, Target, TargetContext

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Materialised",
    "Target",
    "TargetContext",
    "machine_targets",
    "names",
    "target_class",
]

#: The entry-point group other packages register targets in.
ENTRY_POINT_GROUP = "mlmagic.targets"

#: mlmagic's own targets: name → ``module:Class``, imported when first used.
BUILTIN = {
    "docker": "mlmagic.targets.docker:DockerTarget",
    "local": "mlmagic.targets.local:LocalTarget",
    "ray": "mlmagic.targets.ray:RayTarget",
}


@cache
def _registered() -> dict[str, str]:
    found = dict(BUILTIN)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def names() -> tuple[str, ...]:
    """The names of every target this installation knows, sorted."""
    return tuple(sorted(_registered()))


def machine_targets() -> tuple[str, ...]:
    """The targets that run on this machine, sorted: every one a run may name with
    ``--target``, not those reached through a compute (:attr:`Target.needs_compute`).
    A registered target whose module cannot be imported is left out."""
    found = []
    for name in names():
        try:
            if not target_class(name).needs_compute:
                found.append(name)
        except (MlmagicError, ImportError):
            continue
    return tuple(found)


def target_class(name: str) -> type[Target]:
    """The :class:`Target` subclass registered as ``name``.

    Raises
    ------
    MlmagicError
        No target has that name, or its module does not provide one.
    """
    where = _registered().get(name)
    if where is None:
        raise MlmagicError(f"Unknown target {name!r}: use {', '.join(names())} or auto.")
    module, _, attribute = where.partition(":")
    found = getattr(import_module(module), attribute, None)
    if not (isinstance(found, type) and issubclass(found, Target)):
        raise MlmagicError(
            f"The target {name!r} registered as {where} is not a mlmagic Target subclass: "
            "reinstall the package that provides it."
        )
    return found
