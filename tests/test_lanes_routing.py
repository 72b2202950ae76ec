"""Lanes on the real Pub/Sub emulator: a topic and subscription per lane, so every message lands in
exactly one lane by construction; the client picks the topic and refuses what no lane takes."""

from __future__ import annotations

import time
import uuid

import pytest

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.client.pubsub import subscriber_client
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.lanes import LANE_ATTRIBUTE, LaneSet
from asyncinfer.core.topology import QueueTopology
from asyncinfer.tools.local.topology_admin import ensure_topology

PROJECT = "asyncinfer-test"
LANES = LaneSet.defaults()


def _pull_all(subscription: str, expected: int, timeout_s: float = 20.0) -> list[tuple[str, dict[str, str]]]:
    subscriber = subscriber_client()
    path = subscriber.subscription_path(PROJECT, subscription)
    got: list[tuple[str, dict[str, str]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            response = subscriber.pull(request={"subscription": path, "max_messages": 100}, timeout=5)
            if response.received_messages:
                for item in response.received_messages:
                    try:
                        request_id = InferenceRequest.model_validate_json(item.message.data).request_id
                    except ValueError:
                        request_id = item.message.data.decode(errors="replace")
                    got.append((request_id, dict(item.message.attributes)))
                subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in response.received_messages])
            elif len(got) >= expected:
                break
    finally:
        subscriber.close()
    return got


def test_every_kind_of_request_lands_in_exactly_one_lane(emulator_host: str) -> None:
    topology = QueueTopology(name=f"l{uuid.uuid4().hex[:10]}", ack_deadline_s=10)
    ensure_topology(PROJECT, topology, with_taps=False, lanes=LANES)
    lane_topics = {name: LANES.requests_topic(topology, name) for name in LANES.names}
    assert lane_topics == {"interactive": f"{topology.name}-requests-interactive", "bulk": f"{topology.name}-requests"}
    cases = {
        "no-lane-no-priority": ({}, None, "bulk"),
        "priority-0": ({"priority": 0}, None, "bulk"),
        "priority-1": ({"priority": 1}, None, "interactive"),
        "lane-interactive": ({}, "interactive", "interactive"),
        "lane-bulk": ({}, "bulk", "bulk"),
        "lane-and-priority": ({"priority": 1}, "interactive", "interactive"),
    }
    with AsyncInferClient(
        PROJECT, topology.requests_topic, topology.results_topic, topology.dead_letter_topic,
        lanes=LANES, lane_topics=lane_topics,
    ) as client:
        for request_id, (fields, lane, _) in cases.items():
            client.submit(InferenceRequest.inline(request_id, "symbols", b"x", **fields), lane=lane).result(timeout=10)
        client.submit_raw(b"not json", request_id="raw-default").result(timeout=10)
        # Refused before anything is published, naming the valid lanes.
        for fields, lane, fragment in (({"priority": 7}, None, "no lane has priority 7"),
                                       ({}, "urgent", "unknown lane 'urgent'"),
                                       ({"priority": 0}, "interactive", "not 0")):
            with pytest.raises(ValueError, match=fragment) as caught:
                client.submit(InferenceRequest.inline("refused", "symbols", b"x", **fields), lane=lane)
            assert "interactive (priority 1), bulk (priority 0, default)" in str(caught.value)
    interactive = _pull_all(LANES.requests_subscription(topology, "interactive"), 3)
    bulk = _pull_all(LANES.requests_subscription(topology, "bulk"), 5)
    assert "not json" in {r for r, _ in bulk}  # raw bytes without a lane: the default lane
    bulk_ids = sorted(r for r, _ in bulk if r != "not json")
    expected_interactive = sorted(r for r, (_, _, want) in cases.items() if want == "interactive")
    expected_bulk = sorted(r for r, (_, _, want) in cases.items() if want == "bulk")
    assert sorted(r for r, _ in interactive) == expected_interactive
    assert bulk_ids == expected_bulk
    assert all(attrs[LANE_ATTRIBUTE] == "interactive" for _, attrs in interactive)
    assert all(attrs[LANE_ATTRIBUTE] == "bulk" for r, attrs in bulk if r != "not json")
    assert "refused" not in {r for r, _ in interactive + bulk}
