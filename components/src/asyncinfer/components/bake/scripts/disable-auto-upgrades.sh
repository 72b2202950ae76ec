#!/bin/bash
# A worker VM is never patched in place: unattended-upgrades would restart dockerd (killing the worker
# mid-batch) or replace the driver's user space under a loaded kernel module. Security updates arrive
# by re-baking; a newer Debian image alone does not change the content hash, so re-bake on a schedule
# (docs/COMPONENTS.md, "Boot, bake and storage").
set -euxo pipefail

systemctl disable --now apt-daily.timer apt-daily-upgrade.timer || true
systemctl mask apt-daily.service apt-daily-upgrade.service || true
apt-get purge -y unattended-upgrades || true
cat > /etc/apt/apt.conf.d/99asyncinfer-no-auto-upgrades <<'APT'
APT::Periodic::Update-Package-Lists "0";
APT::Periodic::Unattended-Upgrade "0";
APT
apt-mark hold docker.io containerd runc nvidia-container-toolkit nvidia-container-toolkit-base \
  libnvidia-container1 libnvidia-container-tools google-cloud-ops-agent
