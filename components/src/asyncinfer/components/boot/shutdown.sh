#!/bin/bash
# Shutdown script of an asyncinfer GPU worker VM (rendered by components/worker_pool.py).
# Spot preemption gives about 30 s between the ACPI signal and the power-off. SIGTERM makes the
# worker stop pulling, finish or nack what it holds and exit (nack = immediate redelivery to
# another VM), so nothing is lost. `docker stop -t` sends SIGTERM and waits that long before SIGKILL;
# it stays below the notice so the container is never cut off mid-drain by the power-off.
set -uo pipefail

if curl -sf -H 'Metadata-Flavor: Google' \
    'http://metadata.google.internal/computeMetadata/v1/instance/preempted' | grep -q TRUE; then
  logger -t asyncinfer "preempted: draining the worker"
fi
docker stop -t @@STOP_TIMEOUT_S@@ asyncinfer-worker || true
