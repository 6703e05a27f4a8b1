# The Wonders image: one image for the api (gunicorn) and the ingest job (python -m ingest).
#
#   docker compose build                        CPU PyTorch (the default)
#   docker compose -f docker-compose.yml -f docker-compose.gpu.yml build
#                                               CUDA PyTorch (TORCH_INDEX_URL, see docker-compose.gpu.yml)
#
# Two stages: `builder` has the compilers and pip's work; `runtime` gets only the finished virtual
# environment and the code, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Where PyTorch comes from: the CPU-only wheels by default (about 200 MB instead of several GB of CUDA).
# For a GPU image: https://pypi.org/simple (PyPI's Linux wheels are CUDA builds) or a
# https://download.pytorch.org/whl/cuXXX index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers, for any dependency that has no wheel for this platform. They stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies before the code: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt /tmp/requirements.txt
RUN set -eux; \
    pip install --upgrade pip; \
    torch_version="$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' /tmp/requirements.txt)"; \
    test -n "$torch_version"; \
    pip install --index-url "$TORCH_INDEX_URL" "torch==${torch_version}"; \
    pip install -r /tmp/requirements.txt; \
    pip check

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="wonders" \
      org.opencontainers.image.description="Semantic search over landmark photos (CLIP + Qdrant): api and ingest"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    IMAGES_DIR=/photos \
    DATA_DIR=/data \
    PORT=8000 \
    HOST=0.0.0.0

# The unprivileged user, and the folders it writes. In docker-compose.yml /cache/huggingface and /data are
# named volumes: a new volume takes this ownership, so the model weights download once and stay.
RUN groupadd --system --gid 10001 wonders \
    && useradd --system --uid 10001 --gid wonders --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin wonders \
    && mkdir -p /app /photos /data "$HF_HOME" \
    && chown wonders:wonders /data "$HF_HOME"

COPY --from=builder /opt/venv /opt/venv

# The code last, so that editing it does not rebuild the dependency layers. Owned by root: read-only to the app.
WORKDIR /app
COPY core/ core/
COPY ingest/ ingest/
COPY api/ api/
COPY search/ search/
COPY eval/ eval/
COPY ops/ ops/
RUN python -m compileall -q core ingest api

USER wonders:wonders

EXPOSE 8000

# The API. The ingest job uses the same image with `python -m ingest`.
CMD ["gunicorn", "-c", "api/gunicorn_conf.py", "api.wsgi:app"]
