#!/bin/bash
# Installs the NVIDIA data-center driver from NVIDIA's Debian 12 repository.
# The kernel modules are built by DKMS and are unsigned: the instance template turns Secure Boot off
# for that reason (vTPM and integrity monitoring stay on).
set -euxo pipefail
: "${DRIVER_BRANCH:?DRIVER_BRANCH must be set, e.g. 570}"

apt-get update
apt-get install -y --no-install-recommends ca-certificates curl gnupg "linux-headers-$(uname -r)" dkms

keyring_deb=/tmp/cuda-keyring.deb
curl -fsSL -o "${keyring_deb}" \
  https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb
dpkg -i "${keyring_deb}"
rm -f "${keyring_deb}"
apt-get update
apt-get install -y --no-install-recommends "cuda-drivers-${DRIVER_BRANCH}"
# The module must exist for the kernel the image boots (upgrade-kernel.sh rebooted into the newest one).
if ! modinfo -k "$(uname -r)" nvidia >/dev/null; then
  echo "DKMS built no nvidia module for kernel $(uname -r); see /var/lib/dkms" >&2
  exit 1
fi
# A kernel or driver upgrade on a running worker would break the GPU until the next reboot.
apt-mark hold "cuda-drivers-${DRIVER_BRANCH}" "linux-image-$(uname -r)" "linux-headers-$(uname -r)" \
  linux-image-cloud-amd64 linux-headers-cloud-amd64

# Keep the driver loaded between containers so each container start does not pay for initialization.
systemctl enable nvidia-persistenced || true
