"""Create a QueueTopology on a Pub/Sub endpoint (the emulator locally).

The cloud Queue component creates the same topics and subscriptions from the same QueueTopology.
"""

from __future__ import annotations

from google.api_core import exceptions
from google.protobuf import duration_pb2

from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.core.topology import QueueTopology

TAPS = ("requests", "results", "dead-letter")


def tap_subscription(topology: QueueTopology, tap: str) -> str:
    """Local-only subscriptions that see every message, so the controller can measure the backlog
    without Cloud Monitoring (the emulator has none)."""
    return f"{topology.name}-tap-{tap}"


def ensure_topology(project: str, topology: QueueTopology, with_taps: bool = True) -> None:
    publisher = publisher_client()
    subscriber = subscriber_client()
    try:
        for topic in (topology.requests_topic, topology.results_topic, topology.dead_letter_topic):
            _create(lambda t=topic: publisher.create_topic(name=publisher.topic_path(project, t)))
        topic_path = publisher.topic_path
        _create(
            lambda: subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, topology.requests_subscription),
                    "topic": topic_path(project, topology.requests_topic),
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
            )
        )
        _create(
            lambda: subscriber.create_subscription(
                name=subscriber.subscription_path(project, topology.dead_letter_subscription),
                topic=topic_path(project, topology.dead_letter_topic),
            )
        )
        if with_taps:
            topics = dict(zip(TAPS, (topology.requests_topic, topology.results_topic, topology.dead_letter_topic),
                              strict=True))
            for tap, topic in topics.items():
                _create(
                    lambda tap=tap, topic=topic: subscriber.create_subscription(
                        name=subscriber.subscription_path(project, tap_subscription(topology, tap)),
                        topic=topic_path(project, topic),
                    )
                )
    finally:
        subscriber.close()


def _create(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except exceptions.AlreadyExists:
        pass
