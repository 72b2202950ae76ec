"""Several lanes' subscriptions behind the one transport interface the runtime uses.

Each lane has its own PubSubTransport (its own puller, leases, acks and flow control), so what the
worker holds stays bounded per lane: a bulk backlog can never take the room an interactive message
needs. Every delivery remembers which lane's subscription it came from, so the runtime can order
its batches by lane and refuse a message whose `lane` attribute names another lane.
Results are published through the default lane's transport (one results topic for all lanes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from asyncinfer.core.lanes import Lane, LaneSet
from asyncinfer.worker.transport import Delivery, PubSubTransport


class LaneTransports:
    def __init__(self, lanes: LaneSet, transports: Mapping[str, PubSubTransport]) -> None:
        missing = sorted(set(lanes.names) - set(transports))
        if missing:
            raise ValueError(f"no transport for lane(s) {', '.join(missing)}.")
        self.lanes = lanes
        # Pullers start highest priority first: the first messages taken are the most urgent.
        self._transports = {name: transports[name] for name in lanes.names}
        self._lane_of: dict[str, Lane] = {}
        self._lock = threading.Lock()

    def take_lane(self, delivery: Delivery) -> Lane:
        """The lane whose subscription delivered this message; asked once per delivery, first thing."""
        with self._lock:
            return self._lane_of.pop(delivery.ack_id)

    def start(self, on_delivery: Callable[[Delivery], None], on_pull: Callable[[list[Delivery]], None]) -> None:
        """As PubSubTransport.start with `on_pull`, for every lane: each pull response goes to `on_pull`
        whole, its deliveries' lane noted first (`take_lane`). `on_delivery` is never called (the lane
        worker reads every lane's pulls in its intake pool); it is here for the runtime's interface."""
        for name, transport in self._transports.items():
            transport.start(on_delivery, self._tagging_pull(self.lanes.get(name), on_pull))

    def _tagging_pull(
        self, lane: Lane, on_pull: Callable[[list[Delivery]], None]
    ) -> Callable[[list[Delivery]], None]:
        def tagged(deliveries: list[Delivery]) -> None:
            with self._lock:
                for delivery in deliveries:
                    self._lane_of[delivery.ack_id] = lane
            on_pull(deliveries)

        return tagged

    @property
    def puller_alive(self) -> bool:
        return all(t.puller_alive for t in self._transports.values())

    @property
    def pull_failing(self) -> bool:
        return any(t.pull_failing for t in self._transports.values())

    @property
    def last_pull_error(self) -> BaseException | None:
        return next((t.last_pull_error for t in self._transports.values() if t.last_pull_error), None)

    def stop_pulling(self, timeout_s: float) -> None:
        # Every lane stops asking first (in parallel), so none keeps filling while another drains.
        threads = [
            threading.Thread(target=t.stop_pulling, args=(timeout_s,), daemon=True) for t in self._transports.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()

    @property
    def _results(self) -> PubSubTransport:
        return self._transports[self.lanes.default]

    def publish_batch(self, messages: list[tuple[bytes, dict[str, str]]]) -> None:
        self._results.publish_batch(messages)

    def publish(self, data: bytes, attributes: dict[str, str]) -> Future[str]:
        return self._results.publish(data, attributes)
