#!/bin/bash
# The source image's own kernel can be older than the archive: its exact `linux-headers-$(uname -r)`
# disappears from Debian's mirrors once a newer kernel is published, and DKMS then cannot build the
# driver. The cloud kernel metapackages always name a kernel whose headers are in the archive; the
# template reboots into it before the driver is built.
set -euxo pipefail

apt-get update
apt-get install -y --no-install-recommends linux-image-cloud-amd64 linux-headers-cloud-amd64
