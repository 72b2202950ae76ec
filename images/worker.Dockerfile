# syntax=docker/dockerfile:1
# The worker's container: what every GPU VM runs (`asyncinfer worker`).
# Build from the repository root:  docker build -f images/worker.Dockerfile -t IMAGE .
# The CUDA build of PyTorch comes with the base image; the project is installed without its `model`
# extra so pip keeps that torch instead of fetching a CPU build.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies change less often than code: this layer is reused across code-only releases.
COPY pyproject.toml README.md* ./
COPY asyncinfer ./asyncinfer
COPY worker ./worker
RUN pip install ".[gcs]" \
 && python -c "import torch, worker.cli; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

RUN useradd --uid 10001 --create-home asyncinfer
USER asyncinfer

ENV ASYNCINFER_HEALTH_PORT=8080 \
    ASYNCINFER_DEVICE=auto
EXPOSE 8080
# The VM's shutdown script runs `docker stop`, which sends this signal: the worker drains on it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["asyncinfer"]
CMD ["worker"]
