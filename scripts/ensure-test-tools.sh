#!/usr/bin/env bash
# Command-line tools the tests run for real, besides the Pub/Sub emulator: Packer validates the bake's
# template offline (Debian's packer 1.6 is enough for `packer validate`). Idempotent.
set -euo pipefail

command -v packer >/dev/null 2>&1 && exit 0

echo "Installing packer (to validate the VM image template)..."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No apt-get here: install HashiCorp Packer (>= 1.6) yourself; the bake tests need it." >&2
  exit 1
fi
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq packer || { echo "apt-get could not install packer" >&2; exit 1; }
