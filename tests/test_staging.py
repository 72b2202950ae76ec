"""BatchStager: the next full batch cut and stacked while the model runs, and nothing lost or reordered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from asyncinfer.worker.batcher import MicroBatcher, ReadyQueue
from asyncinfer.worker.staging import BatchStager
from tests.support.waiting import eventually


def _stager(ready: ReadyQueue[int], size: int = 4,
            stack: Callable[[list[int]], tuple[int, ...]] = tuple) -> BatchStager[int, tuple[int, ...]]:
    stager: BatchStager[int, tuple[int, ...]] = BatchStager(ready, size, stack)
    stager.start()
    return stager


@contextmanager
def _staging(ready: ReadyQueue[int], stack: Callable[[list[int]], tuple[int, ...]] = tuple
             ) -> Iterator[BatchStager[int, tuple[int, ...]]]:
    """A started stager of batches of 4, closed at the end."""
    stager = _stager(ready, stack=stack)
    try:
        yield stager
    finally:
        stager.close()


def test_stages_a_full_batch_in_queue_order_only_while_the_model_is_busy() -> None:
    ready: ReadyQueue[int] = ReadyQueue()
    with _staging(ready) as stager:
        ready.put_many(range(6))
        time.sleep(0.05)
        assert stager.take() is None  # the model is idle: the run loop cuts batches itself
        assert len(ready) == 6
        stager.model_started()
        assert eventually(lambda: len(ready) == 2)
        assert stager.take() == ([0, 1, 2, 3], (0, 1, 2, 3))
        assert stager.take() is None
        assert len(ready) == 2  # only one batch ahead: the rest stays in the queue


def test_a_batch_still_filling_is_left_to_the_run_loop() -> None:
    ready: ReadyQueue[int] = ReadyQueue()
    with _staging(ready) as stager:
        stager.model_started()
        ready.put_many(range(3))
        time.sleep(0.05)
        assert stager.take() is None and len(ready) == 3
        ready.put(3)  # now a full batch waits while the model is still busy
        assert eventually(lambda: len(ready) == 0)
        assert stager.take() == ([0, 1, 2, 3], (0, 1, 2, 3))


def test_after_the_model_call_nothing_more_is_staged() -> None:
    ready: ReadyQueue[int] = ReadyQueue()
    with _staging(ready) as stager:
        stager.model_started()
        stager.model_finished()
        ready.put_many(range(8))
        time.sleep(0.05)
        assert stager.take() is None and len(ready) == 8


def test_a_failed_stack_keeps_the_items_for_the_run_loop() -> None:
    def broken(items: list[int]) -> tuple[int, ...]:
        raise RuntimeError("tensors of different shapes")

    ready: ReadyQueue[int] = ReadyQueue()
    with _staging(ready, stack=broken) as stager:
        stager.model_started()
        ready.put_many(range(4))
        assert eventually(lambda: len(ready) == 0)
        assert stager.take() == ([0, 1, 2, 3], None)


def test_close_hands_back_what_was_staged() -> None:
    ready: ReadyQueue[int] = ReadyQueue()
    stager = _stager(ready)
    stager.model_started()
    ready.put_many(range(5))
    assert eventually(lambda: len(ready) == 1)
    assert stager.close() == ([0, 1, 2, 3], (0, 1, 2, 3))
    ready.put_many(range(5, 12))
    time.sleep(0.05)
    assert len(ready) == 8  # closed: it stages nothing more


@pytest.mark.parametrize("size", [1, 4, 32])
def test_every_item_comes_out_once_and_in_order_beside_the_run_loop(size: int) -> None:
    """A producer, the stager and a run loop that alternates model calls with cutting batches
    itself (MicroBatcher) all at once: each item reaches exactly one batch, in order."""
    total = 5_000
    ready: ReadyQueue[int] = ReadyQueue()
    stager = _stager(ready, size=size)
    batcher = MicroBatcher(ready, size, max_wait_s=0.001)
    stop = threading.Event()

    def produce() -> None:
        for first in range(0, total, 7):
            ready.put_many(range(first, min(first + 7, total)))
            if first % 70 == 0:
                time.sleep(0.0005)

    producer = threading.Thread(target=produce)
    producer.start()
    seen: list[int] = []
    staged_batches = 0
    try:
        deadline = time.monotonic() + 30
        while len(seen) < total and time.monotonic() < deadline:
            staged = stager.take()
            if staged is not None:
                batch, stacked = staged
                assert stacked == tuple(batch) and len(batch) == size
                staged_batches += 1
            else:
                batch = batcher.next_batch(stop, idle_poll_s=0.01)
            stager.model_started()
            time.sleep(0.0002)  # the model call
            stager.model_finished()
            seen += batch
    finally:
        producer.join()
        leftover = stager.close()
    if leftover is not None:
        seen += leftover[0]
    seen += ready.take(None, 0)
    assert seen == list(range(total))
    assert staged_batches > 0  # the stager did take part


def test_close_does_not_hang_on_a_stack_that_hangs() -> None:
    release = threading.Event()

    def stuck(items: list[int]) -> tuple[int, ...]:
        release.wait(10)
        return tuple(items)

    ready: ReadyQueue[int] = ReadyQueue()
    stager = _stager(ready, stack=stuck)
    stager.model_started()
    ready.put_many(range(4))
    assert eventually(lambda: len(ready) == 0)  # taken, and stuck in the stack
    started = time.monotonic()
    assert stager.close(timeout_s=0.2) is None
    assert time.monotonic() - started < 2.0
    release.set()
