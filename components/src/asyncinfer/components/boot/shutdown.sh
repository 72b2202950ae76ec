#!/bin/bash
# Shutdown script of an asyncinfer GPU worker VM (rendered by asyncinfer.components.worker_pool).
# Spot preemption gives about 30 s between the ACPI signal and the power-off. SIGTERM makes the
# worker stop pulling, finish or nack what it holds and exit (nack = immediate redelivery to
# another VM), so nothing is lost. `docker stop -t` sends SIGTERM and waits that long before SIGKILL;
# the whole script is bounded below the notice, so a hung dockerd cannot hold the power-off either.
set -uo pipefail

METADATA_HOST="${METADATA_HOST:-metadata.google.internal}"
BUDGET_S="${ASYNCINFER_SHUTDOWN_BUDGET_S:-@@SHUTDOWN_BUDGET_S@@}"

# Bounded: a slow metadata server must not eat the notice.
if curl -sf --max-time 2 -H 'Metadata-Flavor: Google' \
    "http://${METADATA_HOST}/computeMetadata/v1/instance/preempted" 2>/dev/null | grep -q TRUE; then
  echo "asyncinfer-shutdown: preempted: draining the worker" >&2
else
  echo "asyncinfer-shutdown: stopping the worker" >&2
fi
timeout --kill-after=1 "${BUDGET_S}" docker stop -t @@STOP_TIMEOUT_S@@ asyncinfer-worker >/dev/null \
  || echo "asyncinfer-shutdown: docker stop did not finish cleanly within ${BUDGET_S} s" >&2
exit 0
