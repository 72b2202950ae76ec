"""The worker's lane batcher: batches cut like MicroBatcher's, chosen in core.lanes order."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from asyncinfer.core.lanes import Waiting
from asyncinfer.worker.lane_batcher import LaneBatcher


@dataclass(frozen=True)
class Item:
    name: str
    priority: int
    published_at: float
    goal_s: float = 600.0


def _batcher(max_size: int = 4, max_wait_s: float = 0.05, now: float = 1000.0) -> LaneBatcher[Item]:
    return LaneBatcher(
        max_size, max_wait_s, lambda i: Waiting(i.priority, i.goal_s, i.published_at), clock=lambda: now
    )


def test_a_full_batch_takes_the_higher_lane_first_and_leaves_the_rest() -> None:
    batcher = _batcher(max_size=3)
    for n in range(4):
        batcher.put(Item(f"bulk{n}", 0, 990.0 + n))
    batcher.put(Item("interactive0", 1, 999.0, 420))
    batch = batcher.next_batch(threading.Event())
    assert [i.name for i in batch] == ["interactive0", "bulk0", "bulk1"]
    assert len(batcher) == 2
    assert [i.name for i in batcher.drain_nowait()] == ["bulk2", "bulk3"]


def test_an_old_bulk_item_is_boosted_ahead_of_fresh_interactive_work() -> None:
    batcher = _batcher(max_size=2)
    for n in range(3):
        batcher.put(Item(f"interactive{n}", 1, 999.0, 420))
    batcher.put(Item("old-bulk", 0, 1000.0 - 400))  # 400 s of a 600 s goal
    assert [i.name for i in batcher.next_batch(threading.Event())] == ["old-bulk", "interactive0"]


def test_a_partial_batch_waits_max_wait_from_its_first_item() -> None:
    batcher = _batcher(max_size=8, max_wait_s=0.2)
    batcher.put(Item("a", 0, 1.0))
    started = time.monotonic()
    batch = batcher.next_batch(threading.Event())
    assert [i.name for i in batch] == ["a"]
    assert 0.15 < time.monotonic() - started < 2.0


def test_an_item_arriving_while_gathering_joins_the_batch() -> None:
    batcher = _batcher(max_size=2, max_wait_s=2.0)
    batcher.put(Item("a", 0, 999.0))
    threading.Timer(0.05, lambda: batcher.put(Item("b", 1, 999.5, 420))).start()
    started = time.monotonic()
    assert [i.name for i in batcher.next_batch(threading.Event())] == ["b", "a"]
    assert time.monotonic() - started < 1.5


def test_stop_returns_at_once() -> None:
    batcher = _batcher()
    stop = threading.Event()
    stop.set()
    assert batcher.next_batch(stop) == []
    batcher.put(Item("a", 0, 1.0))
    assert [i.name for i in batcher.next_batch(stop)] == ["a"]


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError):
        _batcher(max_size=0)
