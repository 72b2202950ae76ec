"""Backlog without Cloud Monitoring: arrivals seen on a tap of the requests topic minus the answers
seen on taps of the results and dead-letter topics.

Counting distinct message ids keeps redeliveries and duplicate answers from skewing the figure.
"""

from __future__ import annotations

import threading
from typing import Any

from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message

from asyncinfer.topology import QueueTopology
from worker.local.topology_admin import tap_subscription


class BacklogMeter:
    def __init__(self, project: str, topology: QueueTopology) -> None:
        self._project = project
        self._topology = topology
        self._lock = threading.Lock()
        self._arrived: set[str] = set()
        self._answered: set[str] = set()
        self._dead_letters = 0
        self._subscriber = pubsub_v1.SubscriberClient()
        self._streams: list[Any] = []

    def start(self) -> None:
        path = self._subscriber.subscription_path
        handlers = {
            "requests": self._on_request,
            "results": self._on_result,
            "dead-letter": self._on_dead_letter,
        }
        for tap, callback in handlers.items():
            self._streams.append(
                self._subscriber.subscribe(path(self._project, tap_subscription(self._topology, tap)), callback)
            )

    def _on_request(self, message: Message) -> None:
        with self._lock:
            self._arrived.add(message.message_id)
        message.ack()

    def _on_result(self, message: Message) -> None:
        # Workers put the request's message id in an attribute, so no JSON is parsed here.
        with self._lock:
            self._answered.add(message.attributes.get("message_id", message.message_id))
        message.ack()

    def _on_dead_letter(self, message: Message) -> None:
        with self._lock:
            self._dead_letters += 1
        message.ack()

    def backlog(self) -> int:
        with self._lock:
            answered = len(self._answered & self._arrived) if self._answered else 0
            return max(0, len(self._arrived) - answered - self._dead_letters)

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {
                "arrived": len(self._arrived),
                "answered": len(self._answered),
                "dead_lettered": self._dead_letters,
            }

    def stop(self) -> None:
        for stream in self._streams:
            stream.cancel()
        for stream in self._streams:
            try:
                stream.result(timeout=5)
            except Exception:  # a cancelled stream reports its cancellation here
                pass
        self._subscriber.close()
