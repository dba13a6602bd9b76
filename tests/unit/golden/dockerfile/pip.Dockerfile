FROM python:3.11-slim
USER root
ENV DEBIAN_FRONTEND=noninteractive
COPY uv /usr/local/bin/uv
ENV VIRTUAL_ENV=/opt/mlmagic/env PATH=/opt/mlmagic/env/bin:$PATH UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1
RUN v=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    && { [ "$v" = "3.11" ] || { echo "mlmagic: the base image has Python $v, not 3.11: choose a base image with Python 3.11 (--base) or drop --python" >&2; exit 1; }; }
RUN uv venv --python python3 /opt/mlmagic/env
RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv --mount=type=secret,id=mlmagic-ca,target=/run/secrets/mlmagic-ca --mount=type=secret,id=mlmagic-build-settings,target=/run/secrets/mlmagic-build-settings . /run/secrets/mlmagic-build-settings \
    && printf '%s\n' scikit-learn==1.5.2 >> /opt/mlmagic/requirements.txt \
    && uv pip install -r /opt/mlmagic/requirements.txt
RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv --mount=type=secret,id=mlmagic-ca,target=/run/secrets/mlmagic-ca --mount=type=secret,id=mlmagic-build-settings,target=/run/secrets/mlmagic-build-settings . /run/secrets/mlmagic-build-settings \
    && printf '%s\n' 'pandas>=2' >> /opt/mlmagic/requirements.txt \
    && uv pip install -r /opt/mlmagic/requirements.txt
