"""The health endpoint for MIG autohealing, and the local stack's controller, on real processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.core.contract import InferenceRequest
from asyncinfer.tools.local.emulator import free_port
from tests.conftest import PROJECT
from tests.support.health import probe_health

pytestmark = pytest.mark.emulator


def probe_until(port: int, status: int, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, body = probe_health(port)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.2)


def health_env(port: int) -> dict[str, str]:
    return {"ASYNCINFER_HEALTH_PORT": str(port), "ASYNCINFER_HEALTH_HOST": "127.0.0.1"}


def test_health_is_ok_while_serving(start_worker: Any, client: Any) -> None:
    port = free_port()
    start_worker(**health_env(port))
    probe_until(port, 200)
    client.submit(InferenceRequest.inline("h-1", "faulty", b"ok"))
    assert client.wait(["h-1"], timeout_s=30)["h-1"].ok
    assert probe_health(port)[0] == 200


def test_health_reports_a_model_that_failed_to_load(start_worker: Any) -> None:
    port = free_port()
    process = start_worker(
        handler="tests.support.faulty_handler:build_broken_handler",
        ASYNCINFER_LOAD_FAILURE_EXIT_S="3",
        **health_env(port),
    )
    body = probe_until(port, 503)
    assert any("model failed to load" in p and "corrupt" in p for p in body["problems"])
    assert process.wait(timeout=30) == 1


def test_health_reports_a_subscription_it_cannot_pull(start_worker: Any) -> None:
    port = free_port()
    process = start_worker(ASYNCINFER_SUBSCRIPTION="no-such-subscription", **health_env(port))
    # The first 503 may still say "model not loaded yet"; the pull failures come after the load.
    deadline = time.monotonic() + 30
    while True:
        body = probe_until(port, 503, timeout_s=30)
        if any("pulling" in p for p in body["problems"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any("pulling" in p for p in body["problems"]), body
    process.kill()


def test_local_stack_scales_from_zero_answers_everything_and_scales_back(
    emulator_host: str, tmp_path: Path
) -> None:
    from asyncinfer.client.client import AsyncInferClient
    from asyncinfer.tools.local.stack import LocalStack, LocalStackConfig, read_state

    # Slow batches of 4 (0.5 s each): 60 requests keep the backlog above 2 x 20 for several seconds
    # after the first worker serves, so the controller's scale-out to 2 does not depend on how fast
    # this machine happens to start processes or run batches.
    config = LocalStackConfig(
        project=PROJECT, queue="stacktest", handler="tests.support.faulty_handler:build_handler",
        max_workers=2, backlog_per_worker=20, scale_in_stabilization_s=2.0, state_dir=tmp_path / "stack",
        max_batch_size=4, extra_worker_env={"FAULTY_SLOW_S": "0.5"},
    )
    with LocalStack(config) as stack:
        status = read_state(config.state_dir)
        for key in ("emulator_host", "project", "requests_topic", "requests_subscription", "results_topic",
                    "dead_letter_topic", "dead_letter_subscription", "workers"):
            assert key in status, key
        assert status["workers"] == []  # starts at zero
        assert status["emulator_host"] == emulator_host
        with AsyncInferClient.from_status(status) as client:
            ids = [f"s-{i}" for i in range(60)]
            for request_id in ids:
                client.submit(InferenceRequest.inline(request_id, "faulty", b"slow"))
            answers = client.wait(ids, timeout_s=120)
        assert len(answers) == 60 and all(a.ok for a in answers.values())
        assert stack.controller is not None
        assert stack.controller.stats.peak_workers == 2
        deadline = time.monotonic() + 40
        while read_state(config.state_dir)["workers"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert read_state(config.state_dir)["workers"] == []  # back to zero once idle
        assert stack.controller.stats.exits.get(0, 0) == 2  # both drained cleanly on scale-in
    assert not (config.state_dir / "stack.json").exists()
