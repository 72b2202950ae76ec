"""The worker against the real Pub/Sub emulator, in real processes, with real signals."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from asyncinfer.core.contract import InferenceRequest

pytestmark = pytest.mark.emulator


def submit_many(client: Any, payloads: list[bytes], prefix: str, model: str = "faulty") -> list[str]:
    ids = []
    for i, payload in enumerate(payloads):
        request_id = f"{prefix}-{i}"
        client.submit(InferenceRequest.inline(request_id, model, payload))
        ids.append(request_id)
    return ids


def worker_log(process: Any) -> str:
    return str(process.log_path.read_text(errors="replace"))


def test_ok_path_answers_every_request_once(start_worker: Any, client: Any) -> None:
    start_worker()
    ids = submit_many(client, [b"ok"] * 40, "ok")
    answers = client.wait(ids, timeout_s=60)
    assert len(answers) == 40
    assert all(a.ok and a.result.output == {"value": 0} for a in answers.values())
    assert all(a.result.model_version == "faulty-1" and a.result.delivery_attempt == 1 for a in answers.values())
    time.sleep(1)
    assert sum(client.duplicate_answers.values()) == 0


def test_bad_input_gets_error_results_and_is_not_retried(start_worker: Any, client: Any) -> None:
    start_worker()
    ids = [
        *submit_many(client, [b"garbage"], "invalid"),
        *submit_many(client, [b"ok"], "wrongmodel", model="other-model"),
        *submit_many(client, [b"nan"], "nan"),
        *submit_many(client, [b"boom"], "boom"),
    ]
    client.submit_raw(b"{not json", request_id="malformed")
    ids.append("malformed")
    answers = client.wait(ids, timeout_s=60)
    codes = {rid: a.result.error.code for rid, a in answers.items()}
    assert codes == {
        "invalid-0": "not_a_command",
        "wrongmodel-0": "unknown_model",
        "nan-0": "invalid_output",
        "boom-0": "handler_error",
        "malformed": "malformed_json",
    }
    assert answers["malformed"].result.request_id is None
    assert answers["malformed"].result.message_id
    time.sleep(2)  # a nacked error would come back within the 0-1 s retry backoff
    assert sum(client.duplicate_answers.values()) == 0


def test_one_bad_item_does_not_fail_its_batch_mates(start_worker: Any, client: Any) -> None:
    """b"boom" decodes like the others and makes `predict` raise: the 32 form one batch, the batch
    fails, is retried item by item, and only the poisoned item gets an error."""
    # A long max wait: the 32 form one batch however slow the machine.
    worker = start_worker(ASYNCINFER_MAX_BATCH_SIZE="32", ASYNCINFER_MAX_WAIT_MS="3000")
    payloads = [b"ok"] * 31
    payloads.insert(17, b"boom")
    ids = submit_many(client, payloads, "batch")
    answers = client.wait(ids, timeout_s=60)
    assert len(answers) == 32
    failed = [rid for rid, a in answers.items() if not a.ok]
    assert failed == ["batch-17"]
    assert answers["batch-17"].result.error.code == "handler_error"
    events = [json.loads(line) for line in worker_log(worker).splitlines() if line.startswith("{")]
    retried = [e for e in events if e.get("message") == "batch failed; retrying its items one by one"]
    assert [e["size"] for e in retried] == [32], retried
    done = [e for e in events if e.get("message") == "batch done" and e.get("batch_id") == retried[0]["batch_id"]]
    assert [e["size"] for e in done] == [32], done


def test_transient_failures_are_dead_lettered_after_max_attempts(start_worker: Any, client: Any) -> None:
    start_worker()
    ids = submit_many(client, [b"transient", b"ok"], "dl")
    answers = client.wait(ids, timeout_s=90)
    assert answers["dl-0"].kind == "dead_letter"
    assert answers["dl-1"].ok


def test_sigterm_drains_and_loses_nothing(start_worker: Any, client: Any) -> None:
    first = start_worker(FAULTY_SLOW_S="0.2", ASYNCINFER_MAX_BATCH_SIZE="8")
    ids = submit_many(client, [b"slow"] * 120, "term")
    deadline = time.monotonic() + 60
    while len(client.results()) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(client.results()) >= 10, worker_log(first)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert "worker stopped" in worker_log(first)
    assert len(client.results()) < 120, "the worker finished everything before the signal; the test proves nothing"
    start_worker(FAULTY_SLOW_S="0.01")
    answers = client.wait(ids, timeout_s=150)
    assert len(answers) == 120
    assert all(a.ok for a in answers.values())


def test_sigkill_redelivers_and_loses_nothing(start_worker: Any, client: Any) -> None:
    first = start_worker(FAULTY_SLOW_S="0.2", ASYNCINFER_MAX_BATCH_SIZE="8")
    ids = submit_many(client, [b"slow"] * 120, "kill")
    deadline = time.monotonic() + 60
    while len(client.results()) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert len(client.results()) < 120
    start_worker(FAULTY_SLOW_S="0.01")
    answers = client.wait(ids, timeout_s=150)
    assert len(answers) == 120
    assert all(a.ok for a in answers.values())

