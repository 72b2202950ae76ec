"""Backlog without Cloud Monitoring: arrivals seen on a tap of the requests topic minus the answers
seen on taps of the results and dead-letter topics.

Counting distinct message ids keeps redeliveries and duplicate answers from skewing the figure. With
lanes, every lane's requests topic has its own tap, so the backlog is known per lane: the same
per-lane signal the cloud autoscaler gets from each lane's subscription.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from asyncinfer.client.tap import PubsubMessage, SubscriptionTap
from asyncinfer.core.lanes import LANE_ATTRIBUTE, LaneSet
from asyncinfer.core.topology import QueueTopology
from asyncinfer.tools.local.topology_admin import lane_tap_subscription, tap_subscription

#: The lane name used for the whole queue when it has no lanes.
SINGLE_LANE = "requests"


class BacklogMeter:
    def __init__(self, project: str, topology: QueueTopology, lanes: LaneSet | None = None) -> None:
        self._project = project
        self._topology = topology
        self._lanes = lanes
        self._default = lanes.default if lanes is not None else SINGLE_LANE
        self._lock = threading.Lock()
        names = lanes.names if lanes is not None else (SINGLE_LANE,)
        self._arrived: dict[str, set[str]] = {name: set() for name in names}
        self._answered: set[str] = set()
        self._dead_letters: dict[str, int] = dict.fromkeys(names, 0)
        self._taps: list[SubscriptionTap] = []

    def start(self) -> None:
        subscriptions: dict[str, Callable[[list[PubsubMessage], float], None]] = {
            tap_subscription(self._topology, "requests"): self._arrivals(self._default),
            tap_subscription(self._topology, "results"): self._on_results,
            tap_subscription(self._topology, "dead-letter"): self._on_dead_letters,
        }
        if self._lanes is not None:
            for lane in self._lanes.names:
                if lane != self._lanes.default:
                    subscriptions[lane_tap_subscription(self._topology, lane)] = self._arrivals(lane)
        for subscription, callback in subscriptions.items():
            self._taps.append(SubscriptionTap(self._project, subscription, callback).start())

    def _arrivals(self, lane: str) -> Callable[[list[PubsubMessage], float], None]:
        def on_requests(messages: list[PubsubMessage], _: float) -> None:
            with self._lock:
                self._arrived[lane].update(m.message_id for m in messages)

        return on_requests

    def _on_results(self, messages: list[PubsubMessage], _: float) -> None:
        # Workers put the request's message id in an attribute, so no JSON is parsed here.
        with self._lock:
            self._answered.update(m.attributes.get("message_id", m.message_id) for m in messages)

    def _on_dead_letters(self, messages: list[PubsubMessage], _: float) -> None:
        with self._lock:
            for message in messages:
                lane = message.attributes.get(LANE_ATTRIBUTE, self._default)
                lane = lane if lane in self._dead_letters else self._default
                self._dead_letters[lane] += 1

    def backlogs(self) -> dict[str, int]:
        """Unanswered requests per lane (the queue's only lane is called 'requests' without lanes)."""
        with self._lock:
            return {
                lane: max(0, len(arrived) - len(self._answered & arrived) - self._dead_letters[lane])
                for lane, arrived in self._arrived.items()
            }

    def backlog(self) -> int:
        return sum(self.backlogs().values())

    def stop(self) -> None:
        for tap in self._taps:
            tap.close()
