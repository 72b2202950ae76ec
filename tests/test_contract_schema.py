"""The published contract: committed JSON Schemas that match the models, documented examples that the
models accept, and a request submitted by another program (gcloud) answered on the emulator."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.core.contract import InferenceRequest, InferenceResult
from asyncinfer.core.contract_schema import SCHEMA_FILES, render, schema_dir, stale_files
from asyncinfer.core.topology import QueueTopology
from tests.conftest import PROJECT, REPO

CONTRACT_DOC = REPO / "docs" / "CONTRACT.md"


def test_committed_schemas_match_the_models() -> None:
    stale = stale_files(schema_dir())
    assert not stale, f"{stale} differ from contract.py; run `python -m asyncinfer.core.contract_schema`"


def test_the_package_ships_the_committed_files() -> None:
    # The editable install resolves to the repository's folder: the files the tests compare are
    # the files the wheel's package data (core/pyproject.toml) ships.
    assert schema_dir().resolve() == (REPO / "core/src/asyncinfer/core/schemas").resolve()
    assert '"schemas/*.json"' in (REPO / "core/pyproject.toml").read_text()


def test_the_check_fails_when_a_model_drifts(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    for name, text in render().items():
        schema = json.loads(text)
        # What a field added to the model without regenerating looks like.
        schema["properties"].pop("schema_version")
        (folder / name).write_text(json.dumps(schema, indent=2) + "\n")
    assert sorted(stale_files(folder)) == sorted(SCHEMA_FILES)
    check = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-m", "asyncinfer.core.contract_schema", "--check", "--dir", str(folder)],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 1 and "regenerate" in check.stdout


def test_schemas_require_what_the_models_require() -> None:
    request = json.loads(render()["request.schema.json"])
    result = json.loads(render()["result.schema.json"])
    assert set(request["required"]) == {"request_id", "model"}
    assert request["additionalProperties"] is False
    assert request["properties"]["request_id"]["pattern"] == r"^[A-Za-z0-9._:\-]+$"
    assert {"message_id", "status"} <= set(result["required"])
    assert result["properties"]["status"]["enum"] == ["ok", "error"]


def _doc_examples() -> tuple[list[str], list[str]]:
    text = CONTRACT_DOC.read_text()
    messages = re.findall(r"--message='(\{.*?\})'", text)
    results = [block for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    return messages, results


def test_documented_examples_are_valid() -> None:
    messages, results = _doc_examples()
    assert messages and results, "docs/CONTRACT.md lost its examples"
    for message in messages:
        if message != "{...}":
            InferenceRequest.model_validate_json(message)
    for block in results:
        InferenceResult.model_validate_json(block)


def _gcloud(env: dict[str, str], *args: str) -> str:
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud is not on PATH (it is what starts the emulator, too)"
    done = subprocess.run([gcloud, *args, f"--project={PROJECT}"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"gcloud {' '.join(args)} failed:\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.emulator
def test_gcloud_submits_and_reads_a_result(emulator_host: str, topology: QueueTopology, start_worker: Any) -> None:
    """The documented commands, run: gcloud publishes a request, a worker answers, gcloud pulls it."""
    from asyncinfer.client.pubsub import subscriber_client

    subscriber = subscriber_client()
    results_subscription = f"{topology.name}-gcloud-results"
    subscriber.create_subscription(
        name=f"projects/{PROJECT}/subscriptions/{results_subscription}",
        topic=f"projects/{PROJECT}/topics/{topology.results_topic}",
    )
    subscriber.close()
    start_worker()
    env = {
        **os.environ,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{emulator_host}/",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
    }
    body = json.dumps({"request_id": "from-gcloud-1", "model": "faulty", "input_b64": base64.b64encode(b"ok").decode(),
                       "submitted_at": "2026-01-01T00:00:00Z"})
    _gcloud(env, "pubsub", "topics", "publish", topology.requests_topic, f"--message={body}")
    pulled: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not pulled and time.monotonic() < deadline:
        pulled = json.loads(_gcloud(env, "pubsub", "subscriptions", "pull", results_subscription, "--auto-ack",
                                    "--limit=10", "--format=json"))
    assert pulled, "no result reached the results subscription within 60 s"
    message = pulled[0]["message"]
    result = InferenceResult.model_validate_json(base64.b64decode(message["data"]))
    assert result.request_id == "from-gcloud-1" and result.status == "ok" and result.output == {"value": 0}
    assert message["attributes"]["request_id"] == "from-gcloud-1" and message["attributes"]["status"] == "ok"
