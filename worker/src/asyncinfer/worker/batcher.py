"""Micro-batching: gather up to max_size items, waiting at most max_wait after the first one.

Pure (a queue in, lists out) so it is unit-tested with plain items and no Pub/Sub.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    def __init__(self, source: queue.Queue[T], max_size: int, max_wait_s: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._source = source
        self._max_size = max_size
        self._max_wait_s = max_wait_s

    def next_batch(self, stop: threading.Event, idle_poll_s: float = 0.1) -> list[T]:
        """Block until at least one item arrives (or `stop` is set: then return what is there, maybe
        nothing), then keep gathering until the batch is full or max_wait has passed since the
        first item. Waiting from the first item, not from the call, keeps an idle worker's latency
        at max_wait instead of adding a poll interval."""
        batch: list[T] = []
        while not batch:
            if stop.is_set():
                return self.drain_nowait(self._max_size)
            try:
                batch.append(self._source.get(timeout=idle_poll_s))
            except queue.Empty:
                continue
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._max_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._source.get(timeout=remaining) if remaining > 0 else self._source.get_nowait())
            except queue.Empty:
                break
        return batch

    def drain_nowait(self, limit: int | None = None) -> list[T]:
        items: list[T] = []
        while limit is None or len(items) < limit:
            try:
                items.append(self._source.get_nowait())
            except queue.Empty:
                break
        return items
