#!/bin/bash
# The Ops Agent ships the worker's JSON logs to Cloud Logging with their severity (startup.sh writes its
# pipeline) and reports GPU metrics; Google's repository script installs it.
set -euxo pipefail

curl -fsSL -o /tmp/add-google-cloud-ops-agent-repo.sh https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh
bash /tmp/add-google-cloud-ops-agent-repo.sh --also-install
rm -f /tmp/add-google-cloud-ops-agent-repo.sh
systemctl enable google-cloud-ops-agent
