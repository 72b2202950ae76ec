#!/bin/bash
# Installs the NVIDIA data-center driver from NVIDIA's Debian 12 repository.
# The kernel modules are built by DKMS and are unsigned: the instance template turns Secure Boot off
# for that reason (vTPM and integrity monitoring stay on).
set -euxo pipefail
: "${DRIVER_BRANCH:?DRIVER_BRANCH must be set, e.g. 550}"

apt-get update
apt-get install -y --no-install-recommends ca-certificates curl gnupg "linux-headers-$(uname -r)" dkms

keyring_deb=/tmp/cuda-keyring.deb
curl -fsSL -o "${keyring_deb}" \
  https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb
dpkg -i "${keyring_deb}"
rm -f "${keyring_deb}"
apt-get update
apt-get install -y --no-install-recommends "cuda-drivers-${DRIVER_BRANCH}"
# A kernel or driver upgrade on a running worker would break the GPU until the next reboot.
apt-mark hold "cuda-drivers-${DRIVER_BRANCH}" "linux-image-$(uname -r)" "linux-headers-$(uname -r)"

# Keep the driver loaded between containers so each container start does not pay for initialization.
systemctl enable nvidia-persistenced || true
