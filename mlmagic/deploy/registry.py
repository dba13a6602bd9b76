"""A base image registry's password given in code or in a file: used for one build only.

Azure ML code and files carry the registry password itself (``base_image_registry.password``,
``baseImageRegistry.password``). mlmagic never stores a password: the environment's login
names an environment variable instead (:class:`~mlmagic.spec.RegistryLogin`), and the
password is put in that variable only while the environment is built, then removed, so
nothing started afterwards inherits it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from mlmagic.spec import RegistryLogin

__all__ = ["login_for", "registry_password"]


def login_for(address: str, username: str, password: str | None) -> RegistryLogin:
    """The login to store for ``username`` at ``address``.

    With a password, the login names a variable for it (the same for the same registry
    and user, so the environment's cache key does not change between sessions); without
    one, Docker's own credential store (``docker login``) is used.
    """
    if password is None:
        return RegistryLogin(address=address, username=username)
    digest = hashlib.sha256(f"{address}\0{username}".encode()).hexdigest()[:12].upper()
    return RegistryLogin(
        address=address, username=username, password_env=f"MLMAGIC_REGISTRY_PASSWORD_{digest}"
    )


@contextmanager
def registry_password(login: RegistryLogin | None, password: str | None) -> Iterator[None]:
    """Make ``password`` readable by the build of an environment with ``login``, inside
    the ``with`` block only.

    A variable the user set themselves is left as it is (theirs wins, and stays).
    """
    name = login.password_env if login is not None else None
    if name is None or password is None or name in os.environ:
        yield
        return
    os.environ[name] = password
    try:
        yield
    finally:
        os.environ.pop(name, None)
