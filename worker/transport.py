"""Pub/Sub for the worker: the only worker module that imports google-cloud-pubsub.

Streaming pull with flow control in, batched publishing out. The runtime sees `Delivery` objects and
futures, so the same runtime could be driven by any other queue.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.types import BatchSettings, FlowControl


@dataclass(frozen=True)
class Delivery:
    """One delivery of one message. `ack` and `nack` are safe from any thread, before and after the
    stream is closed."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    delivery_attempt: int
    publish_time: dt.datetime
    _message: Message
    _transport: PubSubTransport

    def ack(self) -> None:
        self._transport.settle(self._message, ack=True)

    def nack(self) -> None:
        # Immediate redelivery to another worker (subject to the subscription's retry backoff).
        self._transport.settle(self._message, ack=False)


class PubSubTransport:
    def __init__(
        self,
        subscription_path: str,
        results_topic_path: str,
        max_messages: int,
        max_lease_s: float,
    ) -> None:
        self._subscription_path = subscription_path
        self._results_topic_path = results_topic_path
        self._flow_control = FlowControl(
            max_messages=max_messages,
            max_bytes=max(max_messages * 1_000_000, 100_000_000),
            max_lease_duration=max_lease_s,
        )
        self._subscriber = pubsub_v1.SubscriberClient()
        # Results leave in small batches: a few ms of latency buys far fewer RPCs under load.
        self._publisher = pubsub_v1.PublisherClient(
            batch_settings=BatchSettings(max_messages=100, max_bytes=5_000_000, max_latency=0.005)
        )
        self._stream: Any = None
        self._stream_error: BaseException | None = None
        self._stream_done = threading.Event()
        self._pull_stopped = threading.Event()

    def start(self, on_delivery: Callable[[Delivery], None]) -> None:
        def callback(message: Message) -> None:
            on_delivery(
                Delivery(
                    data=message.data,
                    attributes=dict(message.attributes),
                    message_id=message.message_id,
                    # None until a dead-letter policy exists; the first delivery is attempt 1.
                    delivery_attempt=message.delivery_attempt or 1,
                    publish_time=message.publish_time,
                    _message=message,
                    _transport=self,
                )
            )

        self._stream = self._subscriber.subscribe(
            self._subscription_path,
            callback=callback,
            flow_control=self._flow_control,
            await_callbacks_on_shutdown=True,
        )
        self._stream.add_done_callback(self._on_stream_done)

    def _on_stream_done(self, future: Any) -> None:
        try:
            future.result()
        except BaseException as exc:  # the stream's own failure, reported through health
            self._stream_error = exc
        self._stream_done.set()

    @property
    def stream_alive(self) -> bool:
        return self._stream is not None and not self._stream_done.is_set()

    @property
    def stream_error(self) -> BaseException | None:
        return self._stream_error

    def publish(self, data: bytes, attributes: dict[str, str]) -> Future[str]:
        future: Future[str] = self._publisher.publish(self._results_topic_path, data, **attributes)
        return future

    def settle(self, message: Message, ack: bool) -> None:
        if not self._pull_stopped.is_set():
            message.ack() if ack else message.nack()
            return
        # Once the stream is closed its dispatcher is gone and Message.ack() would be dropped
        # silently; the unary RPCs work whatever the stream's state.
        if ack:
            self._subscriber.acknowledge(subscription=self._subscription_path, ack_ids=[message.ack_id])
        else:
            self._subscriber.modify_ack_deadline(
                subscription=self._subscription_path, ack_ids=[message.ack_id], ack_deadline_seconds=0
            )

    def stop_pulling(self, timeout_s: float) -> None:
        """Close the stream so nothing new arrives. Messages the client had not handed out yet are
        nacked by it; acks and nacks already issued are still sent (its dispatcher drains first)."""
        if self._stream is not None and not self._pull_stopped.is_set():
            self._stream.cancel()
            self._stream_done.wait(timeout=timeout_s)
        self._pull_stopped.set()

    def close(self) -> None:
        """Flush results still being published, then release the clients."""
        self._publisher.stop()
        self._subscriber.close()
