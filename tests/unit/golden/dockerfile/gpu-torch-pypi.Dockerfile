# mlmagic base: python:3.12-slim: torch==2.7.1 from PyPI brings CUDA 12.6 as wheels: a plain Python base and a driver are enough
FROM python:3.12-slim
USER root
ENV DEBIAN_FRONTEND=noninteractive
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY uv /usr/local/bin/uv
ENV VIRTUAL_ENV=/opt/mlmagic/env PATH=/opt/mlmagic/env/bin:$PATH UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1
RUN v=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    && { [ "$v" = "3.12" ] || { echo "mlmagic: the base image has Python $v, not 3.12: choose a base image with Python 3.12 (--base) or drop --python" >&2; exit 1; }; }
RUN uv venv --python python3 /opt/mlmagic/env
RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv --mount=type=secret,id=mlmagic-ca,target=/run/secrets/mlmagic-ca --mount=type=secret,id=mlmagic-build-settings,target=/run/secrets/mlmagic-build-settings . /run/secrets/mlmagic-build-settings \
    && printf '%s\n' torch==2.7.1 >> /opt/mlmagic/requirements.txt \
    && uv pip install -r /opt/mlmagic/requirements.txt
