"""Micro-batching across priority lanes: gather like MicroBatcher, choose like core.lanes.choose_batch.

Items from every lane the worker pulls wait here together (their number is bounded by each lane's
flow control). A batch is cut as MicroBatcher cuts one (full, or max_wait after its first item),
but its members are chosen in serving order: higher priority first, oldest first within a lane,
and lower-lane items at risk of their goal boosted ahead of fresh higher-lane work (at most half a
batch while such work waits). One batch may mix lanes (docs/CAPACITY.md "One batch may mix lanes").
Pure (no Pub/Sub), so it is unit-tested with plain items.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from asyncinfer.core.lanes import Waiting, choose_batch

T = TypeVar("T")


class LaneBatcher(Generic[T]):
    def __init__(
        self,
        max_size: int,
        max_wait_s: float,
        waiting_of: Callable[[T], Waiting],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._waiting_of = waiting_of
        self._clock = clock
        self._held: list[T] = []
        self._changed = threading.Condition()

    def put(self, item: T) -> None:
        with self._changed:
            self._held.append(item)
            self._changed.notify_all()

    def __len__(self) -> int:
        with self._changed:
            return len(self._held)

    def next_batch(self, stop: threading.Event, idle_poll_s: float = 0.1) -> list[T]:
        """Block until an item arrives (or `stop` is set: then return up to a batch of what is
        there, maybe nothing), then keep gathering until a batch is full or max_wait has passed
        since the first item; return the batch chosen in serving order."""
        with self._changed:
            while not self._held:
                if stop.is_set():
                    return []
                self._changed.wait(idle_poll_s)
            deadline = time.monotonic() + self._max_wait_s
            while len(self._held) < self._max_size and not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._take(self._max_size)

    def drain_nowait(self, limit: int | None = None) -> list[T]:
        with self._changed:
            return self._take(len(self._held) if limit is None else limit)

    def _take(self, limit: int) -> list[T]:
        if limit <= 0 or not self._held:
            return []
        chosen = choose_batch([self._waiting_of(item) for item in self._held], self._clock(), limit)
        batch = [self._held[i] for i in chosen]
        taken = set(chosen)
        self._held = [item for i, item in enumerate(self._held) if i not in taken]
        return batch
