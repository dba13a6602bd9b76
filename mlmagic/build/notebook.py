"""The notebook layer: what an environment needs to execute a notebook as a run.

A notebook runs under ``mlmagic_notebook`` with a kernel of the environment's own Python,
which needs ``nbclient``, ``nbformat`` and ``ipykernel``. Like the serving dependencies
(:mod:`mlmagic.deploy.image`), they are installed into a folder of their own and put at
the *end* of ``sys.path`` (the runner appends ``MLMAGIC_NOTEBOOK_DEPS``), so the versions
the environment pins win, and the environment itself is never changed:

- on the docker target, an image made ``FROM`` the environment's image with one layer,
  named by the environment image's id and this layer's text, so it is built once per
  environment build and found by one lookup afterwards (:func:`build_notebook_image`);
- on the local target, a folder per Python version under the venv cache, shared by every
  local run (:func:`notebook_deps`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Generator
from pathlib import Path

from mlmagic.build.context import write_build_secrets
from mlmagic.build.dockerfile import BUILD_SETTINGS_SECRET, CA_SECRET
from mlmagic.build.image import logged_build
from mlmagic.build.venv import plain_environment, venv_root
from mlmagic.engine.base import BuildRequest, ContainerEngine
from mlmagic.events import BuildEvent, BuildEventKind
from mlmagic.exceptions import BuildError, RunError

__all__ = [
    "DEPS_VARIABLE",
    "IMAGE_DEPS",
    "NOTEBOOK_REQUIREMENTS",
    "build_notebook_image",
    "notebook_deps",
    "notebook_image_tag",
    "render",
]

#: What executing a notebook needs, beside the environment's packages.
NOTEBOOK_REQUIREMENTS = ("ipykernel>=6", "nbclient>=0.7", "nbformat>=5")
#: The variable naming the folder the runner appends to ``sys.path``.
DEPS_VARIABLE = "MLMAGIC_NOTEBOOK_DEPS"
#: That folder in a notebook image.
IMAGE_DEPS = "/opt/mlmagic/notebook-deps"
_READY = ".mlmagic-ready"


def render(env_image: str, user: str = "") -> str:
    """The Dockerfile of the notebook layer on ``env_image`` (pure).

    ``user`` is the ``USER`` of the environment's image, set back after the install so
    runs keep it (``""``: root, nothing to set back).
    """
    secrets = (
        f"--mount=type=secret,id={CA_SECRET},target=/run/secrets/{CA_SECRET} "
        f"--mount=type=secret,id={BUILD_SETTINGS_SECRET},"
        f"target=/run/secrets/{BUILD_SETTINGS_SECRET}"
    )
    install = " \\\n    && ".join(
        [
            f". /run/secrets/{BUILD_SETTINGS_SECRET}",
            "PY=$(command -v python || command -v python3)",
            f'mlmagic-uv pip install --python "$PY" --target {IMAGE_DEPS} '
            + " ".join(shlex.quote(r) for r in NOTEBOOK_REQUIREMENTS),
            f"chmod -R a+rX {IMAGE_DEPS}",
        ]
    )
    lines = [
        f"FROM {env_image}",
        "USER root",
        "COPY uv /usr/local/bin/mlmagic-uv",
        f"RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv {secrets} {install}",
        f"ENV {DEPS_VARIABLE}={IMAGE_DEPS}",
    ]
    if user:
        lines.append(f"USER {user}")
    return "\n".join([*lines, ""])


def notebook_image_tag(env_image_id: str, dockerfile: str) -> str:
    """The notebook image of an environment image (by id, so a rebuilt environment gets
    a new one) and the layer's text (so a changed layer does too)."""
    key = hashlib.sha256(f"{env_image_id}\n{dockerfile}".encode()).hexdigest()[:20]
    return f"mlmagic-notebook:{key}"


def build_notebook_image(
    engine: ContainerEngine, env_image: str, *, log_path: Path
) -> Generator[BuildEvent, None, str]:
    """The notebook image of ``env_image``, built unless it exists; returns its tag.

    Yields build events (every line goes to ``log_path``); a cache hit yields one ``DONE``.

    Raises
    ------
    BuildError
        The install failed (its cause first, the log has every line).
    RunError
        ``env_image`` is gone from the engine.
    """
    info = engine.image_info(env_image)
    if info is None:
        raise RunError(f"The environment's image {env_image} is gone: build the environment.")
    dockerfile = render(env_image, info.user)
    tag = notebook_image_tag(info.id, dockerfile)
    if engine.image_info(tag) is not None:
        yield BuildEvent(BuildEventKind.DONE, image=tag, cached=True, message="notebook layer")
        return tag
    from uv import find_uv_bin

    with tempfile.TemporaryDirectory(prefix="mlmagic-notebook-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        shutil.copy2(find_uv_bin(), context / "uv")
        secrets = write_build_secrets(Path(tmp) / "secrets")
        request = BuildRequest(context_dir=context, tag=tag, secrets=secrets)
        what = f"the notebook layer ({', '.join(NOTEBOOK_REQUIREMENTS)}) on {env_image}"
        yield from logged_build(engine, request, log_path, what)
    return tag


def notebook_deps(python: str) -> Generator[BuildEvent, None, Path]:
    """The folder with the notebook requirements for ``python``'s version, installed
    unless it exists (shared by local runs; installed aside, then renamed, so two runs
    that install at once both get a whole folder).

    Raises
    ------
    BuildError
        uv could not install them (its message).
    """
    from uv import find_uv_bin

    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = venv_root() / f"notebook-deps-py{version}"
    if (target / _READY).exists():
        yield BuildEvent(BuildEventKind.DONE, image=str(target), cached=True)
        return target
    yield BuildEvent(
        BuildEventKind.STEP, step=f"notebook layer ({', '.join(NOTEBOOK_REQUIREMENTS)})"
    )
    staging = target.with_name(f"{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    out = subprocess.run(
        [
            find_uv_bin(),
            "--color",
            "never",
            "pip",
            "install",
            "--python",
            python,
            "--target",
            str(staging),
            *NOTEBOOK_REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
        env=plain_environment(),
    )
    if out.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(
            f"Installing what runs a notebook ({', '.join(NOTEBOOK_REQUIREMENTS)}) failed: {last}"
        )
    (staging / _READY).write_text("")
    try:
        staging.rename(target)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    yield BuildEvent(BuildEventKind.DONE, image=str(target))
    return target
