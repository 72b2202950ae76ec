"""A subscription read on a thread with unary long-poll pulls and bulk acks.

What the client, the local backlog meter, the fault runs and the benchmark use to watch a topic.
Unary pulls, as the worker's transport uses, because the emulator hands out streaming-pull messages
in ticks of about 50 ms (measured: publish to a streaming subscriber 50 ms p50, to a waiting unary
pull 1.5 ms) and logs an internal error each time a stream is cancelled.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import structlog
from google.api_core import exceptions as gexc
from google.pubsub_v1.types import PullResponse

from asyncinfer.client.pubsub import subscriber_client

log = structlog.get_logger("asyncinfer.tap")

#: A received Pub/Sub message, the raw protobuf: `.data` (bytes), `.attributes` (a str -> str map),
#: `.message_id`, `.publish_time` (a protobuf Timestamp).
PubsubMessage = Any


class SubscriptionTap:
    """Pulls `subscription` until stopped; each batch of messages goes to `on_messages` (with the
    time it arrived), then is acked. Optionally creates the subscription on `topic` first and
    deletes it on close, for watchers that must see every message published after they start."""

    def __init__(
        self,
        project: str,
        subscription: str,
        on_messages: Callable[[list[PubsubMessage], float], None],
        *,
        topic: str | None = None,
        max_messages: int = 1000,
        message_filter: str = "",
    ) -> None:
        self._subscriber = subscriber_client()
        self.path = self._subscriber.subscription_path(project, subscription)
        self._owned = topic is not None
        if topic is not None:
            self._subscriber.create_subscription(
                request={"name": self.path, "topic": f"projects/{project}/topics/{topic}", "filter": message_filter}
            )
        self._on_messages = on_messages
        self._max_messages = max_messages
        self._stop = threading.Event()
        #: Failed pulls (an empty long poll that times out is not one). A watcher that reports what it
        #: saw reports these too: a tap that cannot pull sees nothing, which must not read as "all is well".
        self.pull_errors = 0
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"tap-{subscription}", daemon=True)

    @classmethod
    def on_topic(
        cls,
        project: str,
        topic: str,
        label: str,
        on_messages: Callable[[list[PubsubMessage], float], None],
        message_filter: str = "",
    ) -> SubscriptionTap:
        """A fresh subscription of this tap's own on `topic` (with a Pub/Sub filter, if given), deleted on close."""
        return cls(
            project, f"{topic}-{label}-{uuid.uuid4().hex[:10]}", on_messages, topic=topic, message_filter=message_filter
        )

    def start(self) -> SubscriptionTap:
        self._thread.start()
        return self

    def _loop(self) -> None:
        failures_in_a_row = 0
        while not self._stop.is_set():
            try:
                response = self._subscriber.pull(
                    request={"subscription": self.path, "max_messages": self._max_messages}, timeout=5, retry=None
                )
                failures_in_a_row = 0
            except gexc.DeadlineExceeded:  # how an empty long poll ends on some servers
                continue
            except Exception as exc:
                if self._stop.is_set():
                    break  # closing: the channel may already be going away
                failures_in_a_row += 1
                self.pull_errors += 1
                self.last_error = exc
                log.warning("tap pull failed; retrying", subscription=self.path, error=repr(exc),
                            failures_in_a_row=failures_in_a_row)
                self._stop.wait(min(5.0, 0.05 * 2 ** min(failures_in_a_row, 7)))
                continue
            # The raw protobuf under the client's proto-plus wrapper (no copy): reading a message's
            # fields through proto-plus costs microseconds per field, per message, and watchers read
            # every message they are shown.
            received = list(PullResponse.pb(response).received_messages)
            if not received:
                continue
            arrived = time.monotonic()
            try:
                self._on_messages([r.message for r in received], arrived)
            except Exception:  # a watcher's bug must not turn into redelivering the same batch forever
                log.exception("tap callback failed; acking anyway", subscription=self.path)
            try:
                self._subscriber.acknowledge(subscription=self.path, ack_ids=[r.ack_id for r in received])
            except Exception as exc:  # unacked messages come back once more; watchers count by id
                log.warning("tap ack failed", subscription=self.path, error=repr(exc))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._owned:
            with suppress(Exception):  # best effort: the emulator may be gone already
                self._subscriber.delete_subscription(subscription=self.path)
        self._subscriber.close()
