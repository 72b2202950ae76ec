#!/bin/bash
# Installs Docker and the NVIDIA container toolkit, and lets root's Docker pull from Artifact Registry.
set -euxo pipefail

apt-get update
# python3: the startup script's JSON error line and its unhealthy responder on the health port.
apt-get install -y --no-install-recommends docker.io python3

curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
  | gpg --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
  | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' \
  > /etc/apt/sources.list.d/nvidia-container-toolkit.list
apt-get update
apt-get install -y --no-install-recommends nvidia-container-toolkit
nvidia-ctk runtime configure --runtime=docker
systemctl enable docker
systemctl restart docker

# The VM's service account token authenticates pulls; GCE's Debian images ship gcloud.
registries="$(echo "${WORKER_IMAGE:-}" | grep -oE '^[a-z0-9-]+-docker\.pkg\.dev' || true)"
if [ -n "${registries}" ]; then
  gcloud auth configure-docker "${registries}" --quiet
fi
