"""A consumer's Pulumi program, run under mocks from a folder with its own `components/` and `worker.py`.

It declares two models with asyncinfer's ModelStack and prints, as JSON, what the lead test checks:
where asyncinfer was imported from, both models' resource names and their rendered startup scripts.
"""

# ruff: noqa: I001  (the consumer's own imports first, as its program would write them)
import json

import worker  # the consumer's own module: asyncinfer must not hide it
from components import team_labels  # the consumer's own package: asyncinfer must not hide it

import asyncinfer.components
from asyncinfer.components import ModelStack, ModelStackArgs
from asyncinfer.components.testing import run_under_mocks

PROJECT = "consumer-project"
REGISTRY = "asia-northeast1-docker.pkg.dev/consumer-project/models"


def build() -> object:
    return [
        ModelStack(name, ModelStackArgs.of(image=f"{REGISTRY}/{name}:1", project=PROJECT))
        for name in ("ocr", "symbols")
    ]


graph = run_under_mocks(build, project=PROJECT, stack="dev")
templates = [r for r in graph if r.type == "gcp:compute/instanceTemplate:InstanceTemplate"]
print(
    json.dumps(
        {
            "asyncinfer_components_file": asyncinfer.components.__file__,
            "consumer_worker": worker.ROLE,
            "consumer_labels": team_labels(),
            "urns": [r.urn for r in graph],
            "names": [r.name for r in graph],
            "topics": sorted(str(r.inputs.get("name")) for r in graph if r.type == "gcp:pubsub/topic:Topic"),
            "startup_scripts": [t.inputs["metadata"]["startup-script"] for t in templates],
            "shutdown_scripts": [t.inputs["metadata"]["shutdown-script"] for t in templates],
        }
    )
)
