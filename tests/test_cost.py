"""Cost per request on the real emulator: every result carries its share of its batch's inference
cost at the worker's price, the worker logs its idle time and cost apart, and `asyncinfer cost`
sums results per model, lane and day."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.core.contract import InferenceRequest
from asyncinfer.tools import cli

pytestmark = pytest.mark.emulator

PRICE = 0.28  # the table's assumed L4 Spot price; any positive number shows the arithmetic


def test_results_carry_their_cost_and_the_worker_reports_idle(
    start_worker: Any, client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = start_worker(
        ASYNCINFER_PRICE_PER_HOUR_USD=str(PRICE), ASYNCINFER_PRICE_BASIS="spot, assumed list price",
        ASYNCINFER_USAGE_LOG_INTERVAL_S="1", FAULTY_SLOW_S="0.2",
    )
    ids = [f"c-{i}" for i in range(12)]
    for i, request_id in enumerate(ids):
        payload = b"slow" if i % 4 == 0 else b"ok"
        client.submit(InferenceRequest.inline(request_id, "faulty", payload)).result(timeout=30)
    answers = client.wait(ids, timeout_s=60)
    assert set(answers) == set(ids)
    for answer in answers.values():
        result = answer.result
        assert result is not None and result.ok and result.cost is not None
        cost = result.cost
        assert cost.price_per_hour_usd == PRICE and cost.price_basis == "spot, assumed list price"
        assert 0 < cost.inference_share_ms <= (result.timings.inference_ms or 0) + 0.01
        assert cost.usd == pytest.approx(cost.inference_share_ms * PRICE / 3_600_000, rel=1e-3)
    # The slow batches cost more per request than the quick ones.
    slow = min(answers[r].result.cost.inference_share_ms for r in ids[::4])  # type: ignore[union-attr]
    assert slow >= 200 / 32

    time.sleep(2.5)
    usage = [json.loads(line) for line in worker.log_path.read_text().splitlines()
             if line.startswith("{") and '"message": "usage"' in line]
    assert usage, "no periodic usage line in the worker's log"
    last = usage[-1]
    assert last["idle_s"] > 0 and 0 < last["idle_share"] <= 1 and last["idle_cost_usd"] > 0
    assert last["inference_cost_usd"] == pytest.approx(last["inference_s"] * PRICE / 3600, rel=0.01, abs=1e-9)

    jsonl = tmp_path / "results.jsonl"
    lines = [answers[r].result.model_dump_json() for r in ids]  # type: ignore[union-attr]
    jsonl.write_text("\n".join([*lines, lines[0], "not a result"]) + "\n")
    code = cli.main(["cost", str(jsonl), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["skipped_lines"] == 1
    (row,) = report["rows"]
    assert row["model"] == "faulty" and row["lane"] == "-" and row["requests"] == 13
    expected = sum(answers[r].result.cost.usd for r in ids) + answers[ids[0]].result.cost.usd  # type: ignore[union-attr]
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-6)
