FROM python:3.11-slim
USER root
ENV DEBIAN_FRONTEND=noninteractive
COPY uv /usr/local/bin/uv
ENV VIRTUAL_ENV=/opt/mlmagic/env PATH=/opt/mlmagic/env/bin:$PATH UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1
RUN --mount=type=secret,id=mlmagic-ca,target=/run/secrets/mlmagic-ca --mount=type=secret,id=mlmagic-build-settings,target=/run/secrets/mlmagic-build-settings . /run/secrets/mlmagic-build-settings \
    && python3 -c "import tarfile, urllib.request as u; u.urlretrieve('https://micro.mamba.pm/api/micromamba/linux-64/latest', '/tmp/mm.tar.bz2'); tarfile.open('/tmp/mm.tar.bz2').extract('bin/micromamba', '/usr/local')" \
    && rm /tmp/mm.tar.bz2 \
    && micromamba create -y -p /opt/mlmagic/env -c conda-forge python=3.11 cudatoolkit=11.8 \
    && micromamba clean -a -y
