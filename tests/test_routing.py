"""Results routed to their sender, on the real emulator: two named clients share one queue and each
receives only its own results; an unfiltered (audit) subscription still sees them all."""

from __future__ import annotations

import time
from typing import Any

import pytest

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.client.routing import check_client_name, results_filter
from asyncinfer.core import lanes
from asyncinfer.core.contract import CLIENT_ATTRIBUTE, LANE_ATTRIBUTE, InferenceRequest, InferenceResult
from asyncinfer.core.topology import QueueTopology
from tests.conftest import PROJECT

pytestmark = pytest.mark.emulator


def test_client_names_are_checked_before_they_reach_a_filter() -> None:
    assert results_filter("billing-team.eu_1") == 'attributes.client = "billing-team.eu_1"'
    for bad in ("", 'a" OR attributes.x = "y', "with space", "x" * 65):
        with pytest.raises(ValueError, match="client name"):
            check_client_name(bad)
    assert LANE_ATTRIBUTE == lanes.LANE_ATTRIBUTE


def test_the_emulator_stores_filters_but_does_not_apply_them(emulator_host: str, topology: QueueTopology) -> None:
    """The fact the client's own check rests on. If a newer emulator applies filters, this fails:
    then the check is merely redundant, and docs/OPERATIONS.md should say so."""
    subscriber = subscriber_client()
    path = f"projects/{PROJECT}/subscriptions/{topology.name}-filtered"
    subscriber.create_subscription(request={
        "name": path, "topic": f"projects/{PROJECT}/topics/{topology.results_topic}", "filter": results_filter("a"),
    })
    assert subscriber.get_subscription(subscription=path).filter == results_filter("a")
    publisher = publisher_client()
    publisher.publish(f"projects/{PROJECT}/topics/{topology.results_topic}", b"x", client="b").result(timeout=30)
    response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=10)
    assert [dict(r.message.attributes) for r in response.received_messages] == [{"client": "b"}]
    subscriber.close()
    publisher.stop()


def test_two_clients_on_one_queue_each_get_only_their_own(
    emulator_host: str, topology: QueueTopology, start_worker: Any
) -> None:
    subscriber = subscriber_client()
    audit = f"projects/{PROJECT}/subscriptions/{topology.name}-audit"
    subscriber.create_subscription(name=audit, topic=f"projects/{PROJECT}/topics/{topology.results_topic}")
    start_worker()
    names = ("alpha", "beta")
    clients = {
        name: AsyncInferClient(PROJECT, topology.requests_topic, topology.results_topic, client_name=name)
        for name in names
    }
    try:
        for name, client in clients.items():
            tap_path = client._taps[0].path  # the client's own results subscription
            assert subscriber.get_subscription(subscription=tap_path).filter == results_filter(name)
        ids = {name: [f"{name}-{i}" for i in range(5)] for name in names}
        for name, client in clients.items():
            for request_id in ids[name]:
                client.submit(InferenceRequest.inline(request_id, "faulty", b"ok")).result(timeout=30)
        for name, client in clients.items():
            answers = client.wait(ids[name], timeout_s=60)
            assert set(answers) == set(ids[name])
            assert all(a.result is not None and a.result.ok and a.result.client == name for a in answers.values())
        time.sleep(1)  # let any stray result arrive before checking that none did
        for name, client in clients.items():
            assert set(client.results()) == set(ids[name]), f"{name} recorded another client's result"
            # On the emulator the other client's five results reach the subscription and are dropped
            # by the client; on Pub/Sub the filter keeps them away (0).
            assert client.foreign_results == 5
        seen: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 10 and time.monotonic() < deadline:
            response = subscriber.pull(request={"subscription": audit, "max_messages": 100}, timeout=5)
            for item in response.received_messages:
                result = InferenceResult.model_validate_json(item.message.data)
                seen[result.request_id or ""] = item.message.attributes[CLIENT_ATTRIBUTE]
        assert seen == {request_id: name for name in names for request_id in ids[name]}, "the audit sees all"
    finally:
        for client in clients.values():
            client.close()
        subscriber.close()
