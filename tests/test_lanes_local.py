"""The local stack with lanes and a fallback pool: the mechanism behind `python -m
asyncinfer.tools.lanes_local`, at a smaller size (2,000 bulk requests instead of 20,000)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.lanes import LaneSet
from asyncinfer.tools.lanes_local import measure
from asyncinfer.tools.local.stack import LocalStack, LocalStackConfig, read_state

pytestmark = pytest.mark.emulator
PROJECT = "asyncinfer-test"


def test_interactive_requests_overtake_2000_queued_bulk_requests_and_all_are_answered(
    emulator_host: str, tmp_path: Path
) -> None:
    config = LocalStackConfig(
        project=PROJECT, queue=f"lanes-{uuid.uuid4().hex[:6]}", min_workers=1, max_workers=1,
        lanes=LaneSet.defaults(), state_dir=tmp_path / "stack",
    )
    figures = measure(config, bulk=2000, rate=5.0, idle_s=10.0, loaded_s=10.0, timeout_s=300.0)
    assert figures.bulk_answered == 2000 and figures.bulk_ok == 2000, figures
    assert figures.interactive_answered == figures.loaded_interactive == 50, figures
    assert figures.dead_lettered == 0, figures
    # The bulk backlog was still there while the interactive requests came (otherwise this proves nothing).
    assert figures.bulk_drain_s > 10.0, figures
    # Behind the backlog in one FIFO queue they would wait for most of it (seconds); with lanes they
    # wait for a batch or two. The timing bound itself (2 x idle p95 + one batch) is a benchmark's
    # job on a quiet machine: `python -m asyncinfer.tools.lanes_local` prints it and fails when missed.
    assert figures.loaded_p95_ms < 2000.0, figures
    assert figures.loaded_p95_ms < figures.bulk_drain_s * 1000 / 5, figures


def test_a_spot_stockout_holds_the_pool_at_zero_and_the_fallback_pool_answers(
    emulator_host: str, tmp_path: Path
) -> None:
    config = LocalStackConfig(
        project=PROJECT, queue=f"stockout-{uuid.uuid4().hex[:6]}", handler="tests.support.faulty_handler:build_handler",
        max_workers=2, fallback_max_workers=1, spot_stockout=True, state_dir=tmp_path / "stack",
    )
    with LocalStack(config) as stack:
        status = read_state(config.state_dir)
        assert status["spot_held_at_zero"] is True
        assert status["fallback"]["max_workers"] == 1
        assert [lane["name"] for lane in status["lanes"]] == ["interactive", "bulk"]
        with AsyncInferClient.from_status(status) as client:
            ids = [f"s-{i}" for i in range(30)]
            for i, request_id in enumerate(ids):
                client.submit(InferenceRequest.inline(request_id, "faulty", b"ok", priority=i % 2))
            answers = client.wait(ids, timeout_s=120)
        assert len(answers) == 30 and all(a.ok for a in answers.values())
        assert stack.controller is not None and stack.fallback is not None
        assert stack.controller.stats.peak_workers == 0  # the Spot pool never got a worker
        assert stack.fallback.stats.peak_workers == 1
        assert read_state(config.state_dir)["fallback"]["peak_workers"] == 1
