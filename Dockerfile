# backproplab: docker build -t backproplab . && docker run -p 8000:8000 -v backproplab-runs:/data backproplab
# GPU: docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 \
#        -t backproplab:gpu . && docker run --gpus all -p 8000:8000 backproplab:gpu
FROM debian:bookworm-slim AS build
ARG TORCH_VERSION=2.13.0
# jax: an ordinary dependency (the CPU jaxlib from PyPI), pinned as in constraints.txt
ARG JAX_VERSION=0.10.2
# where the torch wheel comes from: the CPU index by default; empty to use only
# PIP_FIND_LINKS (e.g. a local folder served on 127.0.0.1) and PyPI
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
        ${PIP_FIND_LINKS:+--find-links "$PIP_FIND_LINKS"} "torch==${TORCH_VERSION}" \
    && rm -rf /opt/venv/lib/python3*/site-packages/torch/include \
              /opt/venv/lib/python3*/site-packages/torch/test
COPY pyproject.toml README.md /src/
COPY backend /src/backend
COPY frontend /src/frontend
RUN pip install "/src[torch]" "jax==${JAX_VERSION}" "jaxlib==${JAX_VERSION}" && rm -rf /src

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
    BACKPROPLAB_HOST=0.0.0.0 BACKPROPLAB_PORT=8000 \
    BACKPROPLAB_ALLOWED_HOSTS='["*"]' \
    BACKPROPLAB_DATA_DIR=/data
# the run store (runs.sqlite3): mount a volume here to keep runs across containers
RUN mkdir -p /data && chown app:app /data
VOLUME ["/data"]
USER app
WORKDIR /home/app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BACKPROPLAB_PORT', '8000') + '/api/health', timeout=2)"]
ENTRYPOINT ["backproplab", "serve"]
