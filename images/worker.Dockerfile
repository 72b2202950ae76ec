# syntax=docker/dockerfile:1
# The worker's container: what every GPU VM runs (`asyncinfer-worker`).
# Build from the repository root:  docker build -f images/worker.Dockerfile -t IMAGE .
# The CUDA build of PyTorch comes with the base image.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what a VM runs: the core, the client library, the worker runtime and the model. No Pulumi,
# rich, matplotlib, holidays or developer tools. torch is already in the base image (a CUDA build), so
# pip keeps it. Dependencies change less often than code: this layer is reused across code-only releases.
COPY core ./core
COPY client ./client
COPY worker ./worker
# The model: replace this with your own model's distribution (one that names its handler below).
COPY examples/symbols ./examples/symbols
RUN pip install ./core ./client "./worker[gcs]" ./examples/symbols \
 && python -c "import torch, asyncinfer.worker.main, drawing_symbols; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# The default file:// folders (results, inputs) are relative to WORKDIR and must belong to the
# non-root user; on a VM the stack sets ASYNCINFER_RESULTS_URI_PREFIX to its gs:// bucket instead.
RUN groupadd --gid 10001 asyncinfer \
 && useradd --uid 10001 --gid 10001 --create-home asyncinfer \
 && install -d -o 10001 -g 10001 /app/.asyncinfer/results /app/.asyncinfer/blobs /app/.asyncinfer/numba
USER asyncinfer
# The example's PNG decoder (drawing_symbols.fastpng) is compiled by numba on its first import and
# cached; compile it here, into a folder its user owns, so a VM's worker reads the cache instead of
# compiling at start (about half a second per process). numba checks the cache against the CPU it
# runs on and compiles again if the VM's differs. Drop these two lines with the example model.
ENV NUMBA_CACHE_DIR=/app/.asyncinfer/numba
RUN python -c "import drawing_symbols.fastpng"

# The image names its model: a stack deploys a new model by naming a new image, nothing else.
ENV ASYNCINFER_HANDLER=drawing_symbols.symbols:build_handler \
    ASYNCINFER_HEALTH_PORT=8080 \
    ASYNCINFER_DEVICE=auto
EXPOSE 8080
# The VM's shutdown script runs `docker stop`, which sends this signal: the worker drains on it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["asyncinfer-worker"]
