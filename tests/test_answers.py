"""The fast path for ok results (one JSON template per batch) gives the same result as the model."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from asyncinfer.core.contract import Cost, InferenceResult, Timings, carried_from_request
from asyncinfer.worker.answers import BatchAnswers, encode_output, timings_fields, wire

OUTPUT = {"label": "flatness", "confidence": 0.991, "top3": [{"label": "flatness", "score": 0.991}]}
LINEAGE = {
    "pipeline_root": "root-1",
    "pipeline_stage": "classify",
    "pipeline_parent": "page-1",
    "fanout_index": "2",
    "fanout_count": "5",
    "fanout_item": json.dumps({"x": 3, "y": 4}),
}
COMPLETED = dt.datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=dt.UTC)
COST = Cost(usd=1.2e-6, inference_share_ms=0.31, price_per_hour_usd=0.28, price_basis="spot, assumed list price")


def _through_the_model(
    attributes: dict[str, str], timings: dict[str, float], output_uri: str | None, cost: Cost | None,
    model_version: str | None,
) -> InferenceResult:
    result = InferenceResult(
        request_id="req-1",
        message_id="m-9",
        status="ok",
        timings=Timings.model_validate(timings),
        delivery_attempt=3,
        worker_id="w-1",
        model="symbols",
        model_version=model_version,
        completed_at=COMPLETED,
        cost=cost,
        **carried_from_request(attributes),
    )
    if output_uri is None:
        result.output = OUTPUT
    else:
        result.output_uri = output_uri
    return result


@pytest.mark.parametrize(
    ("attributes", "submitted_s", "output_uri", "cost", "model_version"),
    [
        ({}, 1_700_000_000.0, None, COST, "v1"),
        ({"client": "billing", "lane": "interactive"}, None, None, None, None),
        ({"dead_letter_replay": "2", **LINEAGE}, 1_700_000_000.0, None, COST, "v1"),
        ({"client": "c"}, 1_700_000_000.0, "gs://bucket/results/req-1-m-9.json", COST, "v1"),
    ],
)
def test_the_batch_template_gives_the_same_result_as_the_model(
    attributes: dict[str, str], submitted_s: float | None, output_uri: str | None, cost: Cost | None,
    model_version: str | None,
) -> None:
    timings = timings_fields(
        received_at=100.0, submitted_s=submitted_s, started=100.004, inference_ms=3.21, now=100.01,
        wall_now=1_700_000_000.5,
    )
    encoded, problem = encode_output(OUTPUT)
    assert problem is None
    shared = BatchAnswers.for_batch("w-1", "symbols", model_version, COMPLETED, cost)
    fast = shared.ok_body("req-1", "m-9", 3, attributes, timings, None if output_uri else encoded, output_uri)

    slow, _ = wire(_through_the_model(attributes, timings, output_uri, cost, model_version))
    assert json.loads(fast) == json.loads(slow)
    # And it is a valid result a client can read back.
    read_back = InferenceResult.model_validate_json(fast)
    assert read_back.ok and read_back.request_id == "req-1"
    assert (read_back.lineage is not None) == ("pipeline_root" in attributes)


def test_timings_leave_out_what_is_unknown() -> None:
    without = timings_fields(100.0, None, 100.004, 3.2, 100.01, 1_700_000_000.5)
    assert set(without) == {"batch_wait_ms", "inference_ms"}
    with_submitted = timings_fields(100.0, 1_700_000_000.0, 100.004, 3.2, 100.01, 1_700_000_000.5)
    assert with_submitted["total_ms"] == 500.0
    assert with_submitted["queued_ms"] == 490.0  # received 10 ms before now


@pytest.mark.parametrize(
    ("output", "reason"),
    [({"score": float("nan")}, "non-finite"), ({"x": [float("inf")]}, "non-finite"), ({"t": object()}, "object")],
)
def test_outputs_that_are_not_json_are_refused_with_the_reason(output: Any, reason: str) -> None:
    encoded, problem = encode_output(output)
    assert encoded == b""
    assert problem is not None and reason in problem
