"""Queues are created and deleted on the real emulator; the bench gives each part of its run a new
queue and deletes the one before, since the emulator keeps every message a subscription has seen
until that subscription is deleted."""

from __future__ import annotations

import uuid

from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.core.topology import QueueTopology
from asyncinfer.tools.bench import Bench, BenchConfig
from asyncinfer.tools.local.topology_admin import delete_topology, ensure_topology, tap_subscription

PROJECT = "asyncinfer-topology-test"


def _names(topology: QueueTopology) -> tuple[set[str], set[str]]:
    """This topology's topics and subscriptions that exist in the emulator now."""
    publisher, subscriber = publisher_client(), subscriber_client()
    try:
        topics = {t.name.rsplit("/", 1)[1] for t in publisher.list_topics(project=f"projects/{PROJECT}")}
        subscriptions = {
            s.name.rsplit("/", 1)[1] for s in subscriber.list_subscriptions(project=f"projects/{PROJECT}")
        }
    finally:
        subscriber.close()
    prefix = topology.name
    return {t for t in topics if t.startswith(prefix)}, {s for s in subscriptions if s.startswith(prefix)}


def _queue() -> QueueTopology:
    return QueueTopology(name=f"q{uuid.uuid4().hex[:10]}", ack_deadline_s=10)


def test_delete_topology_removes_what_ensure_topology_made(emulator_host: str) -> None:
    topology = _queue()
    ensure_topology(PROJECT, topology, with_taps=True)
    topics, subscriptions = _names(topology)
    assert topology.requests_topic in topics and topology.dead_letter_topic in topics
    assert {topology.requests_subscription, tap_subscription(topology, "results")} <= subscriptions

    delete_topology(PROJECT, topology)
    assert _names(topology) == (set(), set())
    delete_topology(PROJECT, topology)  # what is already gone is skipped, not an error


def test_the_bench_deletes_the_last_parts_queue_when_it_makes_the_next(emulator_host: str) -> None:
    bench = Bench(BenchConfig(project=PROJECT))
    try:
        first = bench._topology()
        assert first.requests_subscription in _names(first)[1]
        second = bench._topology()
        assert _names(first) == (set(), set())
        assert second.requests_subscription in _names(second)[1]
    finally:
        bench.close()  # an emulator the bench did not start: the last queue goes too
    assert _names(second) == (set(), set())
