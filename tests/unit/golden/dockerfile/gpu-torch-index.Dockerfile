# mlmagic base: nvidia/cuda:12.4.1-runtime-ubuntu22.04: torch==2.5.1 comes from the PyTorch index for CUDA 12.4 (https://download.pytorch.org/whl/cu124)
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04
USER root
ENV DEBIAN_FRONTEND=noninteractive
RUN (command -v python3 >/dev/null || (apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*))
COPY uv /usr/local/bin/uv
ENV VIRTUAL_ENV=/opt/mlmagic/env PATH=/opt/mlmagic/env/bin:$PATH UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1
RUN uv venv --python python3 /opt/mlmagic/env
RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv --mount=type=secret,id=mlmagic-ca,target=/run/secrets/mlmagic-ca --mount=type=secret,id=mlmagic-build-settings,target=/run/secrets/mlmagic-build-settings . /run/secrets/mlmagic-build-settings \
    && printf '%s\n' torch==2.5.1 >> /opt/mlmagic/requirements.txt \
    && uv pip install --extra-index-url https://download.pytorch.org/whl/cu124 -r /opt/mlmagic/requirements.txt
