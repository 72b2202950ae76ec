"""Micro-batching: gather up to max_size items, waiting at most max_wait after the first one.

Pure (a ready queue in, lists out) so it is unit-tested with plain items and no Pub/Sub.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadyQueue(Generic[T]):
    """A FIFO that takes a whole chunk of items in one step and gives a batch in one step: one lock
    round trip per chunk and per batch instead of one per item (queue.Queue's get/put each)."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._changed = threading.Condition()

    @property
    def changed(self) -> threading.Condition:
        """The queue's lock and condition: notified whenever items arrive. A BatchStager shares it."""
        return self._changed

    def put(self, item: T) -> None:
        with self._changed:
            self._items.append(item)
            # All waiters: the run loop and, when there is one, the stager wait here side by side.
            self._changed.notify_all()

    def put_many(self, items: Iterable[T]) -> None:
        with self._changed:
            self._items.extend(items)
            self._changed.notify_all()

    def take_locked(self, count: int) -> list[T]:
        """Up to `count` items, the caller holding `changed`."""
        items = self._items
        return [items.popleft() for _ in range(min(count, len(items)))]

    def take(self, limit: int | None, timeout_s: float) -> list[T]:
        """Up to `limit` items; waits up to `timeout_s` for the first one (0: no wait)."""
        with self._changed:
            if not self._items and timeout_s > 0:
                self._changed.wait_for(lambda: bool(self._items), timeout_s)
            return self.take_locked(len(self._items) if limit is None else limit)

    def __len__(self) -> int:
        return len(self._items)


class MicroBatcher(Generic[T]):
    def __init__(self, source: ReadyQueue[T], max_size: int, max_wait_s: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._source = source
        self._max_size = max_size
        self._max_wait_s = max_wait_s

    def next_batch(self, stop: threading.Event, idle_poll_s: float = 0.1) -> list[T]:
        """Block until at least one item arrives (or `stop` is set: then return what is there, maybe
        nothing), then keep gathering until the batch is full or max_wait has passed since the
        first item. Waiting from the first item, not from the call, keeps an idle worker's latency
        at max_wait instead of adding a poll interval. Items are taken as many at a time as are
        there (a whole chunk from intake in one step)."""
        batch: list[T] = []
        while not batch:
            if stop.is_set():
                return self.drain_nowait(self._max_size)
            batch = self._source.take(self._max_size, idle_poll_s)
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._max_size:
            remaining = deadline - time.monotonic()
            more = self._source.take(self._max_size - len(batch), max(0.0, remaining))
            if not more:
                break
            batch += more
        return batch

    def drain_nowait(self, limit: int | None = None) -> list[T]:
        return self._source.take(limit, 0)
