"""The one place that builds Pub/Sub publisher and subscriber clients.

Why: with PUBSUB_EMULATOR_HOST set, google-cloud-pubsub builds a bare `grpc.insecure_channel`, which
keeps gRPC's default 4 MiB receive limit. Pub/Sub accepts messages up to 10 MB, so one pull whose
response holds a 5 MB message fails with ResourceExhausted, and every message pulled with it comes
back with it, again and again. Against the real service the library's own channel has no size limit;
here the emulator gets the same, so the local stack behaves like the cloud one.

Every client the project builds (worker transport, AsyncInferClient, taps, local topology admin,
benchmark, chaos audit) comes from these two functions.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
#: Pub/Sub's largest message (10 MB) and request. A pull response may hold several such messages.
PUBSUB_MAX_MESSAGE_BYTES = 10_000_000
#: -1 is gRPC's "no limit": what google-cloud-pubsub itself uses for the real service. A fixed limit
#: (say 10 MiB plus overhead) would still fail a pull that returns two 9 MB messages together.
UNLIMITED = -1


def channel_options(max_message_bytes: int = UNLIMITED) -> list[tuple[str, int]]:
    """The gRPC options for an emulator channel; `max_message_bytes` is for tests that need a
    small limit to show what happens when a message cannot be received at all."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def emulator_host() -> str | None:
    return os.environ.get(EMULATOR_ENV) or None


def subscriber_client(max_message_bytes: int = UNLIMITED, **kwargs: Any) -> pubsub_v1.SubscriberClient:
    """A SubscriberClient; under the emulator, on a channel that takes messages up to Pub/Sub's limit."""
    host = emulator_host()
    if host is None:
        return pubsub_v1.SubscriberClient(**kwargs)
    channel = grpc.insecure_channel(host, options=channel_options(max_message_bytes))
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel, host=host), **kwargs)


def publisher_client(max_message_bytes: int = UNLIMITED, **kwargs: Any) -> pubsub_v1.PublisherClient:
    """A PublisherClient; under the emulator, on a channel that sends messages up to Pub/Sub's limit."""
    host = emulator_host()
    if host is None:
        return pubsub_v1.PublisherClient(**kwargs)
    channel = grpc.insecure_channel(host, options=channel_options(max_message_bytes))
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel, host=host), **kwargs)
