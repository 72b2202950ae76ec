"""The answer thread: one publish call for two batches while the model runs the next one, none
when it is idle; Pub/Sub's per-call limits respected whatever a publish carries."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch

from asyncinfer.core.worker_settings import WorkerSettings
from asyncinfer.tools.bench import StandInHandler
from asyncinfer.worker import runtime
from asyncinfer.worker.rpc import MAX_MESSAGES_PER_PUBLISH, publish_chunks
from asyncinfer.worker.runtime import MAX_PUBLISH_WAIT_S, FinishedBatch, HeldItem, ReadRequest, Worker
from asyncinfer.worker.transport import Delivery
from tests.support.waiting import eventually

#: A wait bound far above the scheduling delays of a loaded test machine (the suite runs in parallel
#: on 2 cores), so the tests about whether the answer thread waits do not hinge on 25 ms.
LONG_WAIT_S = 2.0


class RecordingTransport:
    """Stands in for PubSubTransport where the runtime publishes and settles."""

    def __init__(self) -> None:
        self.publishes: list[list[tuple[bytes, dict[str, str]]]] = []
        self.acked: list[str] = []
        self.published = threading.Event()

    def publish_batch(self, messages: list[tuple[bytes, dict[str, str]]]) -> None:
        self.publishes.append(messages)
        self.published.set()

    def settle_many(self, ack_ids: list[str], ack: bool) -> None:
        assert ack
        self.acked += ack_ids


def _worker(transport: RecordingTransport) -> Worker:
    settings = WorkerSettings(
        subscription="s", results_topic="t", handler="asyncinfer.tools.bench:build_standin_handler", health_port=0
    )
    return Worker(settings, StandInHandler(0.0), transport)  # type: ignore[arg-type]


def _finished(transport: Any, name: str, size: int = 4) -> FinishedBatch:
    now = time.monotonic()
    tensor = torch.zeros(1, 64, 64, dtype=torch.uint8)
    items = [
        HeldItem(Delivery(b"", {}, f"{name}-m{i}", 1, f"{name}-ack{i}", transport, now), ReadRequest(f"{name}-{i}"),
                 tensor, now, time.time())
        for i in range(size)
    ]
    outputs: list[Any] = StandInHandler(0.0).predict(torch.zeros(size))
    return FinishedBatch(name, items, outputs, now, 10.0)


def test_two_batches_share_a_publish_call_while_the_model_runs_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "MAX_PUBLISH_WAIT_S", LONG_WAIT_S)
    transport = RecordingTransport()
    worker = _worker(transport)
    worker._model_busy_since = time.monotonic()  # the model is running batch b
    worker._finished.put(_finished(transport, "a"))
    threading.Thread(target=worker._answer_loop, daemon=True).start()
    time.sleep(0.2)
    assert transport.publishes == [], "batch a's results should wait for batch b's"
    worker._finished.put(_finished(transport, "b"))
    assert eventually(lambda: len(transport.acked) == 8)
    assert len(transport.publishes) == 1 and len(transport.publishes[0]) == 8
    assert [a["request_id"] for _, a in transport.publishes[0]] == [f"{n}-{i}" for n in "ab" for i in range(4)]


def test_a_lone_batch_is_published_once_the_wait_runs_out() -> None:
    transport = RecordingTransport()
    worker = _worker(transport)
    worker._model_busy_since = time.monotonic()  # a model call that never hands a batch over
    started = time.monotonic()
    worker._finished.put(_finished(transport, "a"))
    threading.Thread(target=worker._answer_loop, daemon=True).start()
    assert transport.published.wait(5)
    assert MAX_PUBLISH_WAIT_S * 0.8 <= time.monotonic() - started < MAX_PUBLISH_WAIT_S + 1.0
    assert len(transport.publishes[0]) == 4


def test_an_idle_model_means_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "MAX_PUBLISH_WAIT_S", LONG_WAIT_S)
    transport = RecordingTransport()
    worker = _worker(transport)
    assert worker._model_busy_since is None
    started = time.monotonic()
    worker._finished.put(_finished(transport, "a"))
    threading.Thread(target=worker._answer_loop, daemon=True).start()
    assert transport.published.wait(5)
    assert time.monotonic() - started < LONG_WAIT_S / 2
    worker._finished.put(_finished(transport, "b"))
    assert eventually(lambda: len(transport.acked) == 8)
    assert [len(p) for p in transport.publishes] == [4, 4]


def test_publishes_are_split_at_pubsubs_limits_in_order() -> None:
    small = [(b"x" * 100, {"request_id": f"r-{i}"}) for i in range(2 * MAX_MESSAGES_PER_PUBLISH + 500)]
    chunks = publish_chunks(small)
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert [m for c in chunks for m in c] == small
    large = [(b"y" * 3_000_000, {"request_id": f"big-{i}"}) for i in range(7)]
    chunks = publish_chunks(large, max_bytes=9_500_000)
    assert [len(c) for c in chunks] == [3, 3, 1]
    lone = publish_chunks([(b"z" * 12_000_000, {})], max_bytes=9_500_000)
    assert [len(c) for c in lone] == [1]  # too large for any call: sent alone, Pub/Sub says why
