"""Create a QueueTopology on a Pub/Sub endpoint (the emulator locally).

The cloud Queue component creates the same topics and subscriptions from the same QueueTopology.
"""

from __future__ import annotations

import contextlib
from typing import Any

from google.api_core import exceptions
from google.protobuf import duration_pb2

from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.core.lanes import LaneSet
from asyncinfer.core.topology import QueueTopology

TAPS = ("requests", "results", "dead-letter")


def tap_subscription(topology: QueueTopology, tap: str) -> str:
    """Local-only subscriptions that see every message, so the controller can measure the backlog
    without Cloud Monitoring (the emulator has none)."""
    return f"{topology.name}-tap-{tap}"


def lane_tap_subscription(topology: QueueTopology, lane: str) -> str:
    """The tap on a lane's requests topic other than the default lane's (that one is the requests tap)."""
    return f"{topology.name}-tap-requests-{lane}"


def ensure_topology(
    project: str, topology: QueueTopology, with_taps: bool = True, lanes: LaneSet | None = None
) -> None:
    """Create the queue; with `lanes`, every lane besides the default one also gets its requests topic
    and worker subscription (same delivery settings, the shared dead-letter topic) and a tap."""
    publisher = publisher_client()
    subscriber = subscriber_client()
    extra = [] if lanes is None else [name for name in lanes.names if name != lanes.default]
    try:
        topics = [topology.requests_topic, topology.results_topic, topology.dead_letter_topic]
        topics += [topology.lane_requests_topic(lane) for lane in extra]
        for topic in topics:
            _create(lambda t=topic: publisher.create_topic(name=publisher.topic_path(project, t)))
        topic_path = publisher.topic_path
        pairs = [(topology.requests_subscription, topology.requests_topic)]
        pairs += [(topology.lane_requests_subscription(lane), topology.lane_requests_topic(lane)) for lane in extra]
        for subscription, topic in pairs:
            _create_worker_subscription(project, topology, subscriber, publisher, subscription, topic)
        _create(
            lambda: subscriber.create_subscription(
                name=subscriber.subscription_path(project, topology.dead_letter_subscription),
                topic=topic_path(project, topology.dead_letter_topic),
            )
        )
        if with_taps:
            taps = dict(zip(TAPS, (topology.requests_topic, topology.results_topic, topology.dead_letter_topic),
                            strict=True))
            subscriptions = {tap_subscription(topology, tap): topic for tap, topic in taps.items()}
            subscriptions |= {
                lane_tap_subscription(topology, lane): topology.lane_requests_topic(lane) for lane in extra
            }
            for name, topic in subscriptions.items():
                _create(
                    lambda name=name, topic=topic: subscriber.create_subscription(
                        name=subscriber.subscription_path(project, name),
                        topic=topic_path(project, topic),
                    )
                )
    finally:
        subscriber.close()


def _create_worker_subscription(
    project: str, topology: QueueTopology, subscriber: Any, publisher: Any, subscription: str, topic: str
) -> None:
    topic_path = publisher.topic_path
    request = {
        "name": subscriber.subscription_path(project, subscription),
        "topic": topic_path(project, topic),
        "ack_deadline_seconds": topology.ack_deadline_s,
        "message_retention_duration": duration_pb2.Duration(seconds=topology.message_retention_s),
        "enable_exactly_once_delivery": topology.exactly_once_delivery,
        "dead_letter_policy": {
            "dead_letter_topic": topic_path(project, topology.dead_letter_topic),
            "max_delivery_attempts": topology.max_delivery_attempts,
        },
        "retry_policy": {
            "minimum_backoff": duration_pb2.Duration(seconds=topology.min_retry_backoff_s),
            "maximum_backoff": duration_pb2.Duration(seconds=topology.max_retry_backoff_s),
        },
    }
    _create(lambda: subscriber.create_subscription(request=request))


def delete_topology(project: str, topology: QueueTopology) -> None:
    """Delete what `ensure_topology` created without lanes (taps included); what is already gone is
    skipped. The emulator keeps every message a subscription has seen, acknowledged or not, until
    that subscription is deleted, so a long local run that is done with a queue gives it back."""
    publisher = publisher_client()
    subscriber = subscriber_client()
    subscriptions = [topology.requests_subscription, topology.dead_letter_subscription]
    subscriptions += [tap_subscription(topology, tap) for tap in TAPS]
    topics = [topology.requests_topic, topology.results_topic, topology.dead_letter_topic]
    try:
        for name in subscriptions:
            with contextlib.suppress(exceptions.NotFound):
                subscriber.delete_subscription(subscription=subscriber.subscription_path(project, name))
        for name in topics:
            with contextlib.suppress(exceptions.NotFound):
                publisher.delete_topic(topic=publisher.topic_path(project, name))
    finally:
        subscriber.close()


def _create(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except exceptions.AlreadyExists:
        pass
