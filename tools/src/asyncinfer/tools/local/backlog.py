"""Backlog without Cloud Monitoring: arrivals seen on a tap of the requests topic minus the answers
seen on taps of the results and dead-letter topics.

Counting distinct message ids keeps redeliveries and duplicate answers from skewing the figure.
"""

from __future__ import annotations

import threading

from asyncinfer.client.tap import PubsubMessage, SubscriptionTap
from asyncinfer.core.topology import QueueTopology
from asyncinfer.tools.local.topology_admin import tap_subscription


class BacklogMeter:
    def __init__(self, project: str, topology: QueueTopology) -> None:
        self._project = project
        self._topology = topology
        self._lock = threading.Lock()
        self._arrived: set[str] = set()
        self._answered: set[str] = set()
        self._dead_letters = 0
        self._taps: list[SubscriptionTap] = []

    def start(self) -> None:
        handlers = {
            "requests": self._on_requests,
            "results": self._on_results,
            "dead-letter": self._on_dead_letters,
        }
        for tap, callback in handlers.items():
            subscription = tap_subscription(self._topology, tap)
            self._taps.append(SubscriptionTap(self._project, subscription, callback).start())

    def _on_requests(self, messages: list[PubsubMessage], _: float) -> None:
        with self._lock:
            self._arrived.update(m.message_id for m in messages)

    def _on_results(self, messages: list[PubsubMessage], _: float) -> None:
        # Workers put the request's message id in an attribute, so no JSON is parsed here.
        with self._lock:
            self._answered.update(m.attributes.get("message_id", m.message_id) for m in messages)

    def _on_dead_letters(self, messages: list[PubsubMessage], _: float) -> None:
        with self._lock:
            self._dead_letters += len(messages)

    def backlog(self) -> int:
        with self._lock:
            answered = len(self._answered & self._arrived) if self._answered else 0
            return max(0, len(self._arrived) - answered - self._dead_letters)

    def stop(self) -> None:
        for tap in self._taps:
            tap.close()
