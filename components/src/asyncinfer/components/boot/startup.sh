#!/bin/bash
# Startup script of an asyncinfer GPU worker VM (rendered by components/worker_pool.py).
# The baked image already holds the NVIDIA driver, Docker with the NVIDIA runtime and the worker's
# container image, so this only (re)starts the container: the 7 minutes of driver install and image
# pull happen once, at bake time, not at every scale-out.
set -euo pipefail

WORKER_IMAGE=@@WORKER_IMAGE@@
CONTAINER=asyncinfer-worker
ENV_FILE=/run/asyncinfer/worker.env

mkdir -p /run/asyncinfer
umask 077
cat > "${ENV_FILE}" <<'ENVEOF'
@@WORKER_ENV@@
ENVEOF

# The driver is loaded lazily on some kernels; failing here (not in the container) makes the
# autohealer replace a VM whose GPU did not come up.
nvidia-smi >/dev/null

# A worker image that changed after the bake (the same tag, pushed again) is pulled once here.
if ! docker image inspect "${WORKER_IMAGE}" >/dev/null 2>&1; then
  docker pull "${WORKER_IMAGE}"
fi

docker rm -f "${CONTAINER}" >/dev/null 2>&1 || true
# --network host: the health check reaches the worker's port without a port mapping.
# --stop-timeout: an ACPI shutdown that bypasses the shutdown script still gives the worker time to drain.
docker run --detach --name "${CONTAINER}" \
  --gpus all \
  --network host \
  --restart on-failure:5 \
  --stop-timeout @@STOP_TIMEOUT_S@@ \
  --log-driver gcplogs \
  --env-file "${ENV_FILE}" \
  "${WORKER_IMAGE}" worker
