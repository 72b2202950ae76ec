#!/bin/bash
# The build VM has no external IP: it reaches Debian's and NVIDIA's archives through Cloud NAT, which
# the same `pulumi up` may still be creating. Wait for it, and say what is missing if it never comes.
set -euo pipefail

for _ in $(seq 1 60); do
  if curl -sf --max-time 5 -o /dev/null https://deb.debian.org/debian/dists/bookworm/Release; then
    exit 0
  fi
  sleep 5
done
echo "no internet egress from the build VM after 5 min: the subnet needs Cloud NAT (asyncinfer:createNat) \
because Debian's and NVIDIA's archives are outside Google" >&2
exit 1
