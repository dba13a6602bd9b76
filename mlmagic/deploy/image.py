"""The inference image: the environment's image plus the serving layer, models and code.

Layers go from what changes least to what changes most, so a new model version or an
edited ``score.py`` rebuilds only the last layers and never reinstalls packages::

    FROM <environment image>
    serving dependencies (uvicorn, inference-schema), beside the user's packages, not over
    the scoring server (mlmagic_serve)
    the model files
    the entry script's source folder

The serving dependencies go into their own folder, added to ``sys.path`` *after*
site-packages by a ``.pth`` file, so the user's pinned packages always win.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlmagic.build.context import write_build_secrets
from mlmagic.build.dockerfile import BUILD_SETTINGS_SECRET, CA_SECRET
from mlmagic.build.image import logged_build
from mlmagic.deploy.staging import SERVE_REQUIREMENTS, model_subdir, stage_inference
from mlmagic.engine.base import BuildRequest, ContainerEngine
from mlmagic.events import BuildEvent
from mlmagic.models import Model

__all__ = ["APP_DIR", "MODEL_DIR", "SERVE_PORT", "build_inference_image", "model_dir", "render"]

#: Where things live in an inference image.
APP_DIR = "/var/mlmagic/app"
MODEL_DIR = "/var/mlmagic/models"
SERVE_PORT = 5001
_SERVE_DEPS = "/opt/mlmagic/serve-deps"


def model_dir(models: Sequence[Model]) -> str:
    """``AZUREML_MODEL_DIR`` in the container: one model's folder, or the root of several."""
    subdir = model_subdir([m.ref for m in models])
    return f"{MODEL_DIR}/{subdir}" if subdir else MODEL_DIR


def render(env_image: str, entry_script: str, models: Sequence[Model]) -> str:
    """The inference Dockerfile (pure)."""
    secrets = (
        f"--mount=type=secret,id={CA_SECRET},target=/run/secrets/{CA_SECRET} "
        f"--mount=type=secret,id={BUILD_SETTINGS_SECRET},"
        f"target=/run/secrets/{BUILD_SETTINGS_SECRET}"
    )
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    install = " \\\n    && ".join(
        [
            f". /run/secrets/{BUILD_SETTINGS_SECRET}",
            "PY=$(command -v python || command -v python3)",
            f'mlmagic-uv pip install --python "$PY" --target {_SERVE_DEPS} '
            + " ".join(shlex.quote(r) for r in SERVE_REQUIREMENTS),
            f'SITE=$("$PY" -c "{purelib}")',
            'mkdir -p "$SITE"',
            f'echo {_SERVE_DEPS} > "$SITE/zz-mlmagic-serve.pth"',
        ]
    )
    directory = model_dir(models)
    entry = f"{APP_DIR}/{entry_script}"
    return "\n".join(
        [
            f"FROM {env_image}",
            "USER root",
            "COPY uv /usr/local/bin/mlmagic-uv",
            f"RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv {secrets} {install}",
            "COPY lib/mlmagic_serve /opt/mlmagic/lib/mlmagic_serve",
            "COPY lib/azureml /opt/mlmagic/lib/azureml",
            f"COPY models {MODEL_DIR}",
            f"COPY app {APP_DIR}",
            f'ENV PYTHONPATH=/opt/mlmagic/lib MLMAGIC_ENTRY_SCRIPT="{entry}" '
            f'AZUREML_MODEL_DIR="{directory}" MLMAGIC_MODEL_DIR="{directory}" '
            f"MLMAGIC_HOST=0.0.0.0 MLMAGIC_PORT={SERVE_PORT} PYTHONUNBUFFERED=1",
            f"WORKDIR {APP_DIR}",
            f"EXPOSE {SERVE_PORT}",
            'CMD ["sh", "-c", "exec \\"$(command -v python || command -v python3)\\" '
            '-m mlmagic_serve"]',
            "",
        ]
    )


def build_inference_image(
    engine: ContainerEngine,
    *,
    env_image: str,
    models: Sequence[Model],
    source_dir: Path,
    entry_script: str,
    tag: str,
    log_path: Path,
    exclude: Sequence[Path] = (),
) -> Iterator[BuildEvent]:
    """Build the inference image, yielding build events (every line goes to ``log_path``)."""
    from uv import find_uv_bin

    with tempfile.TemporaryDirectory(prefix="mlmagic-deploy-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(render(env_image, entry_script, models))
        shutil.copy2(find_uv_bin(), context / "uv")
        stage_inference(
            context,
            models=models,
            source_dir=source_dir,
            entry_script=entry_script,
            exclude=exclude,
        )
        secrets = write_build_secrets(Path(tmp) / "secrets")
        request = BuildRequest(context_dir=context, tag=tag, secrets=secrets)
        yield from logged_build(engine, request, log_path, f"the inference image {tag}")
