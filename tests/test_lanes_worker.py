"""A worker pulling several lanes, against the real Pub/Sub emulator, in real processes."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.client.pubsub import publisher_client
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.lanes import LaneSet
from asyncinfer.core.topology import QueueTopology
from asyncinfer.core.worker_settings import LaneSubscription, worker_environment
from asyncinfer.tools.local.topology_admin import ensure_topology
from asyncinfer.tools.local.worker_process import spawn_worker

pytestmark = pytest.mark.emulator
PROJECT = "asyncinfer-test"
REPO = Path(__file__).resolve().parent.parent
LANES = LaneSet.defaults()


@pytest.fixture
def lane_topology(emulator_host: str) -> QueueTopology:
    topology = QueueTopology(
        name=f"w{uuid.uuid4().hex[:10]}", ack_deadline_s=10, min_retry_backoff_s=0, max_retry_backoff_s=1
    )
    ensure_topology(PROJECT, topology, with_taps=False, lanes=LANES)
    return topology


@pytest.fixture
def lane_client(lane_topology: QueueTopology) -> Iterator[AsyncInferClient]:
    topics = {name: LANES.requests_topic(lane_topology, name) for name in LANES.names}
    with AsyncInferClient(
        PROJECT, lane_topology.requests_topic, lane_topology.results_topic, lane_topology.dead_letter_topic,
        lanes=LANES, lane_topics=topics,
    ) as client:
        yield client


@pytest.fixture
def start_lane_worker(emulator_host: str, lane_topology: QueueTopology, tmp_path: Path) -> Iterator[Any]:
    processes: list[Any] = []

    def start(**env: str) -> Any:
        lanes = [
            LaneSubscription(name=lane.name, priority=lane.priority, latency_goal_s=lane.latency_goal_s,
                             subscription=LANES.requests_subscription(lane_topology, lane.name))
            for lane in LANES.lanes
        ]
        full_env = {
            **os.environ,
            "PUBSUB_EMULATOR_HOST": emulator_host,
            **worker_environment(
                project=PROJECT,
                subscription=lane_topology.requests_subscription,
                results_topic=lane_topology.results_topic,
                handler="tests.support.faulty_handler:build_handler",
                health_port=0,
                torch_threads=1,
                file_root=tmp_path / "blobs",
                lanes=lanes,
            ),
            **env,
        }
        process = spawn_worker(full_env, tmp_path / f"worker-{len(processes)}.log", cwd=REPO)
        process.log_path = tmp_path / f"worker-{len(processes)}.log"
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()


def _submit(client: AsyncInferClient, prefix: str, payloads: list[bytes], priority: int) -> list[str]:
    ids = []
    for i, payload in enumerate(payloads):
        request_id = f"{prefix}-{i}"
        client.submit(InferenceRequest.inline(request_id, "faulty", payload, priority=priority))
        ids.append(request_id)
    return ids


def test_interactive_requests_overtake_a_bulk_backlog_and_every_bulk_request_is_answered(
    start_lane_worker: Any, lane_client: AsyncInferClient
) -> None:
    # 0.2 s a batch of 8: 400 bulk requests take about 10 s; interactive ones must not wait for them.
    worker = start_lane_worker(FAULTY_SLOW_S="0.2", ASYNCINFER_MAX_BATCH_SIZE="8")
    warm = _submit(lane_client, "warm", [b"ok"], priority=1)
    assert lane_client.wait(warm, timeout_s=60), worker.log_path.read_text()
    bulk = _submit(lane_client, "bulk", [b"slow"] * 400, priority=0)
    deadline = time.monotonic() + 30
    while lane_client.count_answered(bulk) < 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    interactive = _submit(lane_client, "interactive", [b"ok"] * 9 + [b"boom"], priority=1)
    answers = lane_client.wait(interactive, timeout_s=30)
    bulk_done_when_interactive_done = lane_client.count_answered(bulk)
    assert len(answers) == 10
    latencies = [answers[r].received_at - lane_client.submitted_at[r] for r in interactive]
    assert max(latencies) < 3.0, latencies
    assert bulk_done_when_interactive_done < 300, "the bulk backlog was gone: the test proves nothing"
    # One bad item fails alone, whatever lane its batch-mates came from.
    assert [r for r in interactive if not answers[r].ok] == ["interactive-9"]
    assert answers["interactive-9"].result is not None
    assert answers["interactive-9"].result.error is not None
    assert answers["interactive-9"].result.error.code == "handler_error"
    every = lane_client.wait(bulk, timeout_s=120)
    assert len(every) == 400 and all(a.ok for a in every.values())
    time.sleep(1)
    assert sum(lane_client.duplicate_answers.values()) == 0


def test_a_message_whose_lane_attribute_names_another_lane_gets_an_error_result(
    start_lane_worker: Any, lane_client: AsyncInferClient, lane_topology: QueueTopology
) -> None:
    start_lane_worker()
    publisher = publisher_client()
    topic = publisher.topic_path(PROJECT, lane_topology.requests_topic)  # the bulk lane's topic
    request = InferenceRequest.inline("misrouted", "faulty", b"ok", priority=1)
    with lane_client._lock:
        lane_client.submitted_at["misrouted"] = time.monotonic()
    publisher.publish(topic, request.model_dump_json().encode(), lane="interactive").result(timeout=10)
    # Raw publishers (gcloud, other languages): the body's priority must name the topic's lane.
    for request_id, priority in (("no-such-priority", 7), ("interactive-priority", 1), ("bulk-priority", 0)):
        body = InferenceRequest.inline(request_id, "faulty", b"ok", priority=priority).model_dump_json()
        with lane_client._lock:
            lane_client.submitted_at[request_id] = time.monotonic()
        publisher.publish(topic, body.encode()).result(timeout=10)
    ids = ["misrouted", "no-such-priority", "interactive-priority", "bulk-priority"]
    answers = lane_client.wait(ids, timeout_s=60)
    codes = {r: (a.result.error.code if a.result and a.result.error else "ok") for r, a in answers.items()}
    assert codes == {"misrouted": "wrong_lane", "no-such-priority": "unknown_priority",
                     "interactive-priority": "wrong_lane", "bulk-priority": "ok"}
    for request_id in ("misrouted", "no-such-priority"):
        message = answers[request_id].result.error.message  # type: ignore[union-attr]
        assert "interactive (priority 1), bulk (priority 0, default)" in message


def test_sigterm_drains_every_lane_and_loses_nothing(start_lane_worker: Any, lane_client: AsyncInferClient) -> None:
    first = start_lane_worker(FAULTY_SLOW_S="0.2", ASYNCINFER_MAX_BATCH_SIZE="8")
    ids = _submit(lane_client, "term-bulk", [b"slow"] * 100, 0) + _submit(lane_client, "term-i", [b"slow"] * 40, 1)
    deadline = time.monotonic() + 60
    while len(lane_client.results()) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert "worker stopped" in first.log_path.read_text()
    assert len(lane_client.results()) < len(ids), "everything was done before the signal; the test proves nothing"
    start_lane_worker(FAULTY_SLOW_S="0.01")
    answers = lane_client.wait(ids, timeout_s=150)
    assert len(answers) == len(ids)
    assert all(a.ok for a in answers.values())


def test_the_lane_worker_reads_requests_in_intake_processes(
    start_lane_worker: Any, lane_client: AsyncInferClient
) -> None:
    """Every lane's pull responses are read (parsed, decoded) in the worker's intake process, off its
    main interpreter, as the plain worker's are."""
    worker = start_lane_worker(ASYNCINFER_INTAKE_PROCESSES="1")
    ids = _submit(lane_client, "bulk-via-intake", [b"ok"] * 3, priority=0)
    ids += _submit(lane_client, "interactive-via-intake", [b"ok"] * 3, priority=1)
    answers = lane_client.wait(ids, timeout_s=60)
    assert all(a.result is not None and a.result.ok for a in answers.values()) and len(answers) == 6
    children = psutil.Process(worker.pid).children(recursive=True)
    assert any("child_entry" in " ".join(c.cmdline()) for c in children), [c.cmdline() for c in children]
    log = worker.log_path.read_text()
    assert "intake failed" not in log
