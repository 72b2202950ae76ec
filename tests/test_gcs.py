"""gs:// end to end against a real local Cloud Storage server (fake-gcs-server) and the real Pub/Sub
emulator: a 5 MB input by gs:// URI, an output over 1 MB claim-checked to gs:// by a real worker
process, read back by the client, all with the real google-cloud-storage client."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.client.outputs import read_output
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.topology import QueueTopology
from tests.conftest import PROJECT, WorkerFactory
from tests.support.storage_server import LocalStorageServer, StorageServerError

BUCKET = "symbols-claims"
INPUT_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def storage_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LocalStorageServer(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log")
    try:
        server.start()
    except StorageServerError as exc:
        pytest.fail(f"the local Cloud Storage server could not start: {exc}")
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    os.environ["STORAGE_EMULATOR_HOST"] = server.url
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    yield server.url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def bucket(storage_host: str) -> Any:
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    client = storage.Client()
    return client.create_bucket(BUCKET)


def test_a_large_gs_input_and_a_claim_checked_gs_output_end_to_end(
    bucket: Any, storage_host: str, start_worker: WorkerFactory, client: AsyncInferClient, topology: QueueTopology
) -> None:
    payload = os.urandom(INPUT_BYTES)
    name = f"inputs/{uuid.uuid4().hex}.bin"
    bucket.blob(name).upload_from_string(payload)
    start_worker(
        "tests.support.large_io_handler:build_handler",
        STORAGE_EMULATOR_HOST=storage_host,
        GOOGLE_CLOUD_PROJECT=PROJECT,
        ASYNCINFER_RESULTS_URI_PREFIX=f"gs://{BUCKET}/results",
    )
    request = InferenceRequest.by_uri("big-1", "large-io", f"gs://{BUCKET}/{name}")
    client.submit(request).result(timeout=30)
    answer = client.wait([request.request_id], timeout_s=120)[request.request_id]
    result = answer.result
    assert result is not None and result.ok, result
    assert result.output is None
    assert result.output_uri is not None and result.output_uri.startswith(f"gs://{BUCKET}/results/big-1-")

    output = read_output(result)
    assert output is not None
    assert output["input_bytes"] == INPUT_BYTES
    assert output["sha256"] == hashlib.sha256(payload).hexdigest()
    stored = bucket.get_blob(result.output_uri.removeprefix(f"gs://{BUCKET}/"))
    assert stored.size > 1_000_000
    assert stored.content_type == "application/json"


def test_a_missing_gs_input_is_answered_with_an_error_not_retried(
    bucket: Any, storage_host: str, start_worker: WorkerFactory, client: AsyncInferClient
) -> None:
    start_worker(
        "tests.support.large_io_handler:build_handler",
        STORAGE_EMULATOR_HOST=storage_host,
        GOOGLE_CLOUD_PROJECT=PROJECT,
        ASYNCINFER_RESULTS_URI_PREFIX=f"gs://{BUCKET}/results",
    )
    request = InferenceRequest.by_uri("missing-1", "large-io", f"gs://{BUCKET}/inputs/never-uploaded.bin")
    client.submit(request).result(timeout=30)
    result = client.wait([request.request_id], timeout_s=120)[request.request_id].result
    assert result is not None and result.error is not None
    assert result.error.code == "input_not_found"
    assert result.delivery_attempt == 1


def test_a_second_write_of_the_same_output_keeps_the_first_without_overwrite_rights(bucket: Any) -> None:
    # The VM's account may create objects but not overwrite them: a redelivery's write must not fail.
    from asyncinfer.worker.blobs import write_blob

    first = write_blob(f"gs://{BUCKET}/results", "dup-1-m1.json", b'{"value": 1}')
    second = write_blob(f"gs://{BUCKET}/results", "dup-1-m1.json", b'{"value": 2}')
    assert first == second == f"gs://{BUCKET}/results/dup-1-m1.json"
    assert bucket.blob("results/dup-1-m1.json").download_as_bytes() == b'{"value": 1}'


def test_the_worker_images_default_results_folder_is_writable_by_its_user(tmp_path: Path) -> None:
    dockerfile = (Path(__file__).resolve().parent.parent / "images" / "worker.Dockerfile").read_text()
    # The default file:// prefix is relative to WORKDIR /app; the non-root user must own that folder.
    assert "install -d -o 10001 -g 10001 /app/.asyncinfer/results" in dockerfile
    assert dockerfile.index("install -d -o 10001") < dockerfile.index("USER asyncinfer")
