"""The worker's hot Pub/Sub RPCs (pull, acknowledge, modifyAckDeadline, publish) on the raw gRPC channel.

The generated client wraps every call in proto-plus conversion, a retry and a timeout wrapper, error
remapping and a logging interceptor. Without them a call costs about half the CPU (pull, acknowledge)
to two thirds (publish of a batch): `python -m asyncinfer.tools.hotpath_bench` measures both ways
against the emulator. The worker makes these calls all the time and needs none of the wrapping: it
builds raw protobufs and decides on retries itself (a failed pull is retried by the pull loop; a
failed publish is tried again here a few times, then its batch is handed back for redelivery).

The channel is the client's own, so credentials, endpoint and the emulator's message size limit are
exactly what `asyncinfer.client.pubsub` set up, and every call carries the routing header
(`x-goog-request-params: subscription=...` or `topic=...`) the generated client sends.

Errors come out as google.api_core exceptions, as from the client, so callers catch the same types.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import structlog
from google.api_core import exceptions as gexc
from google.api_core.gapic_v1 import routing_header
from google.cloud import pubsub_v1
from google.protobuf import empty_pb2
from google.pubsub_v1.types import pubsub as pubsub_types

#: The raw protobuf classes under the client's proto-plus wrappers.
PULL_REQUEST: Any = pubsub_types.PullRequest.pb()
PULL_RESPONSE: Any = pubsub_types.PullResponse.pb()
ACK_REQUEST: Any = pubsub_types.AcknowledgeRequest.pb()
MODIFY_REQUEST: Any = pubsub_types.ModifyAckDeadlineRequest.pb()
PUBLISH_REQUEST: Any = pubsub_types.PublishRequest.pb()
PUBLISH_RESPONSE: Any = pubsub_types.PublishResponse.pb()
PUBSUB_MESSAGE: Any = pubsub_types.PubsubMessage.pb()

#: Pub/Sub's limits on one publish call: 1,000 messages and 10 MB; the byte limit is kept with
#: room for the request's own framing.
MAX_MESSAGES_PER_PUBLISH = 1000
MAX_BYTES_PER_PUBLISH = 9_500_000
#: Pauses before the second, third and fourth publish attempt.
PUBLISH_BACKOFF_S = (0.1, 0.4, 1.6)
_RETRYABLE = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.Aborted, gexc.InternalServerError)

log = structlog.get_logger("asyncinfer.rpc")

_SUBSCRIBER = "/google.pubsub.v1.Subscriber/"
_PUBLISHER = "/google.pubsub.v1.Publisher/"


@contextmanager
def _as_api_errors() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as exc:
        raise gexc.from_grpc_error(exc) from exc


class SubscriberRpc:
    """Pull, acknowledge and modifyAckDeadline for one subscription."""

    def __init__(self, client: pubsub_v1.SubscriberClient, subscription_path: str) -> None:
        channel: grpc.Channel = client.transport.grpc_channel
        self._subscription = subscription_path
        self._metadata = (routing_header.to_grpc_metadata((("subscription", subscription_path),)),)
        self._pull: Callable[..., Any] = channel.unary_unary(
            _SUBSCRIBER + "Pull",
            request_serializer=PULL_REQUEST.SerializeToString,
            response_deserializer=PULL_RESPONSE.FromString,
        )
        self._ack: Callable[..., Any] = channel.unary_unary(
            _SUBSCRIBER + "Acknowledge",
            request_serializer=ACK_REQUEST.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )
        self._modify: Callable[..., Any] = channel.unary_unary(
            _SUBSCRIBER + "ModifyAckDeadline",
            request_serializer=MODIFY_REQUEST.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )

    def pull(self, max_messages: int, timeout_s: float) -> list[Any]:
        """The received messages (raw protobufs: ack_id, message, delivery_attempt)."""
        with _as_api_errors():
            response = self._pull(
                PULL_REQUEST(subscription=self._subscription, max_messages=max_messages), timeout=timeout_s,
                metadata=self._metadata,
            )
        return list(response.received_messages)

    def acknowledge(self, ack_ids: list[str], timeout_s: float = 60) -> None:
        with _as_api_errors():
            self._ack(
                ACK_REQUEST(subscription=self._subscription, ack_ids=ack_ids), timeout=timeout_s,
                metadata=self._metadata,
            )

    def modify_ack_deadline(self, ack_ids: list[str], seconds: int, timeout_s: float = 60) -> None:
        with _as_api_errors():
            self._modify(
                MODIFY_REQUEST(subscription=self._subscription, ack_ids=ack_ids, ack_deadline_seconds=seconds),
                timeout=timeout_s, metadata=self._metadata,
            )


def publish_chunks(
    messages: list[tuple[bytes, dict[str, str]]],
    max_messages: int = MAX_MESSAGES_PER_PUBLISH,
    max_bytes: int = MAX_BYTES_PER_PUBLISH,
) -> list[list[tuple[bytes, dict[str, str]]]]:
    """`messages` in order, split so that no call carries more than Pub/Sub takes. A message counts
    its data, its attributes and a few bytes of framing each."""
    chunks: list[list[tuple[bytes, dict[str, str]]]] = []
    current: list[tuple[bytes, dict[str, str]]] = []
    size = 0
    for message in messages:
        data, attributes = message
        message_bytes = len(data) + sum(len(k) + len(v) + 8 for k, v in attributes.items()) + 16
        if current and (len(current) >= max_messages or size + message_bytes > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(message)
        size += message_bytes
    if current:
        chunks.append(current)
    return chunks


class PublisherRpc:
    """Publish to one topic, several messages per call."""

    def __init__(
        self, client: pubsub_v1.PublisherClient, topic_path: str, max_bytes_per_call: int = MAX_BYTES_PER_PUBLISH
    ) -> None:
        channel: grpc.Channel = client.transport.grpc_channel
        self._topic = topic_path
        #: Below Pub/Sub's 10 MB; a caller under a smaller gRPC limit (the emulator's) passes less.
        self._max_bytes_per_call = max_bytes_per_call
        self._metadata = (routing_header.to_grpc_metadata((("topic", topic_path),)),)
        self._publish: Callable[..., Any] = channel.unary_unary(
            _PUBLISHER + "Publish",
            request_serializer=PUBLISH_REQUEST.SerializeToString,
            response_deserializer=PUBLISH_RESPONSE.FromString,
        )

    def publish(self, messages: list[tuple[bytes, dict[str, str]]], timeout_s: float = 30) -> list[str]:
        """Publish and return the message ids once Pub/Sub has them all (raises otherwise), in as
        few calls as Pub/Sub's limits per call allow (1,000 messages, 10 MB). A call that failed on
        the way (unavailable, deadline, aborted, internal) is tried again, a few times: each failure
        would otherwise hand the whole batch back for redelivery."""
        ids: list[str] = []
        for chunk in publish_chunks(messages, max_bytes=self._max_bytes_per_call):
            ids += self._publish_chunk(chunk, timeout_s)
        return ids

    def _publish_chunk(self, messages: list[tuple[bytes, dict[str, str]]], timeout_s: float) -> list[str]:
        request = PUBLISH_REQUEST(
            topic=self._topic,
            messages=[PUBSUB_MESSAGE(data=data, attributes=attributes) for data, attributes in messages],
        )
        for attempt, pause_s in enumerate((*PUBLISH_BACKOFF_S, None)):
            try:
                with _as_api_errors():
                    response = self._publish(request, timeout=timeout_s, metadata=self._metadata)
                return list(response.message_ids)
            except _RETRYABLE as exc:
                if pause_s is None:
                    raise
                log.warning("publish failed; trying again", error=repr(exc), attempt=attempt + 1)
                time.sleep(pause_s)
        raise AssertionError("unreachable")
