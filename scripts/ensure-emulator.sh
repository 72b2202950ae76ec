#!/usr/bin/env bash
# Make sure Google's official Pub/Sub emulator (and the Java it runs on) is installed.
# Idempotent: does nothing when both are present.
set -euo pipefail

have_emulator() {
  command -v gcloud >/dev/null 2>&1 || return 1
  local root
  root=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || true)
  [ -n "$root" ] && [ -d "$root/platform/pubsub-emulator" ]
}

if have_emulator && command -v java >/dev/null 2>&1; then
  exit 0
fi

echo "Installing the Pub/Sub emulator (google-cloud-cli-pubsub-emulator) and Java..."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No apt-get here. Install the Pub/Sub emulator yourself:" >&2
  echo "  gcloud components install pubsub-emulator beta   (plus a Java 17 runtime)" >&2
  echo "or point PUBSUB_EMULATOR_HOST at a running emulator." >&2
  exit 1
fi
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq google-cloud-cli-pubsub-emulator default-jre-headless; then
  echo "apt-get could not install google-cloud-cli-pubsub-emulator." >&2
  echo "Add Google's Cloud SDK apt repository (https://cloud.google.com/sdk/docs/install#deb)" >&2
  echo "and run this again, or point PUBSUB_EMULATOR_HOST at a running emulator." >&2
  exit 1
fi
have_emulator || { echo "the emulator is still missing after installation" >&2; exit 1; }
