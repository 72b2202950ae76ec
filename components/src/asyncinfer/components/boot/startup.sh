#!/bin/bash
# Startup script of an asyncinfer GPU worker VM (rendered by asyncinfer.components.worker_pool).
# The baked image holds the NVIDIA driver, Docker with the NVIDIA runtime, the Ops Agent and the worker's
# container image, so a boot only checks the GPU, pins the image to a digest and (re)starts the container.
#
# A boot problem (no GPU, a driver too old for the image's CUDA, an image that cannot be pulled) does not
# crash the script half-way: it is logged at ERROR, written to the guest attribute asyncinfer/boot-status,
# and a small responder answers the health port with 503 and the reason, so the autohealer replaces the
# VM and whoever looks at it sees why. docs/COMPONENTS.md ("Boot, bake and storage").
set -uo pipefail

# Overridable for the tests (tests/boot), fixed on a VM.
METADATA_HOST="${METADATA_HOST:-metadata.google.internal}"
STATE_DIR="${ASYNCINFER_STATE_DIR:-/run/asyncinfer}"
ROOT_HOME="${ASYNCINFER_ROOT_HOME:-/root}"
OPS_AGENT_CONFIG_FILE="${ASYNCINFER_OPS_AGENT_CONFIG:-/etc/google-cloud-ops-agent/config.yaml}"
GPU_WAIT_TRIES="${ASYNCINFER_GPU_WAIT_TRIES:-6}"
GPU_WAIT_SLEEP_S="${ASYNCINFER_GPU_WAIT_SLEEP_S:-5}"

WORKER_IMAGE=@@WORKER_IMAGE@@
HEALTH_PORT=@@HEALTH_PORT@@
IMAGE_CUDA=@@CUDA_VERSION@@
MIN_DRIVER=@@MIN_DRIVER@@
CONTAINER=asyncinfer-worker
ENV_FILE="${STATE_DIR}/worker.env"
METADATA="http://${METADATA_HOST}/computeMetadata/v1"

log() { echo "asyncinfer-boot: $*" >&2; }

boot_status() {
  # Guest attributes need `enable-guest-attributes=TRUE` in the instance metadata (the template sets it).
  curl -sf -X PUT --data "$1" -H 'Metadata-Flavor: Google' \
    "${METADATA}/instance/guest-attributes/asyncinfer/boot-status" >/dev/null || true
}

unhealthy() {
  local reason="$1"
  # A JSON line with severity ERROR: the guest agent forwards startup-script output to Cloud Logging.
  printf '{"severity":"ERROR","message":"asyncinfer boot failed","reason":%s}\n' \
    "$(printf '%s' "${reason}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" >&2
  boot_status "unhealthy: ${reason}"
  # The autohealer probes the worker's health port; nothing listening there looks the same as a VM that
  # never booted. Answer 503 with the reason instead, and leave the VM to the autohealer.
  printf '%s' "${reason}" > "${STATE_DIR}/boot-failure"
  setsid nohup python3 - "${HEALTH_PORT}" "${STATE_DIR}/boot-failure" >/dev/null 2>&1 <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, reason_file = int(sys.argv[1]), sys.argv[2]
reason = open(reason_file, encoding="utf-8").read()
class Unhealthy(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"healthy": False, "problems": ["boot: " + reason]}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("0.0.0.0", port), Unhealthy).serve_forever()
PY
  echo $! > "${STATE_DIR}/health-responder.pid"
  exit 1
}

mkdir -p "${STATE_DIR}"
boot_status "starting"
(
  umask 077
  cat > "${ENV_FILE}" <<'ENVEOF'
@@WORKER_ENV@@
ENVEOF
)

# --- the image must be what the stack baked: Docker, the NVIDIA runtime and a driver for the image's CUDA
command -v docker >/dev/null 2>&1 \
  || unhealthy "docker is not installed: the boot image is not an asyncinfer bake (asyncinfer:existingImage/existingFamily must be baked with asyncinfer.components/bake)"
command -v nvidia-smi >/dev/null 2>&1 \
  || unhealthy "nvidia-smi is not installed: the boot image has no NVIDIA driver (bake it with asyncinfer.components/bake)"

# The driver may still be loading (persistence daemon, lazy module load): a few tries before giving up.
driver=""
for ((try = 1; try <= GPU_WAIT_TRIES; try++)); do
  if driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)" \
      && [ -n "${driver}" ]; then
    break
  fi
  driver=""
  sleep "${GPU_WAIT_SLEEP_S}"
done
[ -n "${driver}" ] || unhealthy "nvidia-smi found no GPU after ${GPU_WAIT_TRIES} tries (driver not loaded, or no GPU attached)"

# Version order, not string order: 570.26 < 570.124.06.
if [ "$(printf '%s\n%s\n' "${MIN_DRIVER}" "${driver}" | sort -V | head -n 1)" != "${MIN_DRIVER}" ]; then
  unhealthy "NVIDIA driver ${driver} is older than ${MIN_DRIVER}, the minimum for the worker image's CUDA ${IMAGE_CUDA}: re-bake with asyncinfer:driverBranch ${MIN_DRIVER%%.*} or newer"
fi
log "GPU driver ${driver} (CUDA ${IMAGE_CUDA} needs >= ${MIN_DRIVER})"

# --- registry credentials for root: the docker CLI reads ${HOME}/.docker/config.json, and a startup
# script's HOME is not always root's.
export HOME="${ROOT_HOME}"
export DOCKER_CONFIG="${ROOT_HOME}/.docker"
registry="${WORKER_IMAGE%%/*}"
case "${registry}" in
  *-docker.pkg.dev|*.gcr.io|gcr.io)
    if command -v docker-credential-gcr >/dev/null 2>&1; then
      docker-credential-gcr configure-docker --registries="${registry}" >/dev/null \
        || unhealthy "docker-credential-gcr could not configure ${registry} for root"
    else
      gcloud auth configure-docker "${registry}" --quiet >/dev/null 2>&1 \
        || unhealthy "gcloud auth configure-docker ${registry} failed for root"
    fi
    ;;
esac

# --- the image, by digest. A digest in the reference is used as is (pulled only if the bake did not
# hold it); a tag is pulled every boot (only the manifest when nothing changed), so a tag pushed again
# is picked up, and the container runs from the digest the tag named at that moment.
repository="${WORKER_IMAGE%@*}"
case "${repository##*/}" in *:*) repository="${repository%:*}" ;; esac
case "${WORKER_IMAGE}" in
  *@sha256:*)
    pinned="${WORKER_IMAGE#*@}"
    pinned="${repository}@${pinned}"
    if ! docker image inspect "${pinned}" >/dev/null 2>&1; then
      docker pull "${pinned}" >&2 || unhealthy "docker pull ${pinned} failed (registry access for the VM's service account?)"
    fi
    ;;
  *)
    if ! docker pull "${WORKER_IMAGE}" >&2; then
      docker image inspect "${WORKER_IMAGE}" >/dev/null 2>&1 \
        || unhealthy "docker pull ${WORKER_IMAGE} failed and the image is not in the boot image"
      log "WARNING: docker pull ${WORKER_IMAGE} failed; running the copy baked into the image"
    fi
    pinned="$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "${WORKER_IMAGE}" \
      | grep -m 1 "^${repository}@sha256:")" \
      || unhealthy "no digest for ${WORKER_IMAGE} after the pull"
    ;;
esac
log "worker image ${WORKER_IMAGE} -> ${pinned}"

# --- logs: Docker's json-file driver on disk, the Ops Agent reads the files and parses each line twice
# (Docker's wrapper, then the worker's own JSON), and moves `severity` onto the LogEntry.
if [ -d "$(dirname "${OPS_AGENT_CONFIG_FILE}")" ]; then
  cat > "${OPS_AGENT_CONFIG_FILE}" <<'OPSEOF'
@@OPS_AGENT_CONFIG@@
OPSEOF
  systemctl restart google-cloud-ops-agent >/dev/null 2>&1 \
    || log "WARNING: google-cloud-ops-agent did not restart; worker logs stay on the VM only"
else
  log "WARNING: the Ops Agent is not installed; worker logs stay on the VM only"
fi

docker rm -f "${CONTAINER}" >/dev/null 2>&1 || true
# --network host: the health check reaches the worker's port without a port mapping.
# --restart on-failure:5: a crash is retried a few times, then the health check fails and the
#   autohealer replaces the VM; `always` would hide a worker that can never start.
# --stop-timeout: an ACPI shutdown that bypasses the shutdown script still gives the worker time to drain.
docker run --detach --name "${CONTAINER}" \
  --gpus all \
  --network host \
  --restart on-failure:5 \
  --stop-timeout @@STOP_TIMEOUT_S@@ \
  --log-driver json-file --log-opt max-size=50m --log-opt max-file=3 \
  --env-file "${ENV_FILE}" \
  "${pinned}" >&2 \
  || unhealthy "docker run ${pinned} failed"
boot_status "running ${pinned}"
