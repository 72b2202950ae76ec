#!/bin/bash
# Leaves nothing machine-specific in the image: every VM made from it must look freshly booted.
set -euxo pipefail

apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*
journalctl --rotate || true
journalctl --vacuum-time=1s || true
# The packer user's keys; OS Login manages access on the workers.
rm -f /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys
