"""The next full batch, cut and stacked while the model runs the current one.

Why: under load the model waits between two calls for the main thread to cut the next batch from
the ready queue and stack its tensors. That is little CPU, but torch's stack lets go of the GIL, and
taking it back behind the worker's other threads (intake reader, puller, answer thread) took about
0.1 ms per batch in place: 1 % of a 10 ms GPU call spent idle, on top of the cut itself (measured
with timestamps in the worker; docs/PERFORMANCE.md). The stager does both while the model is busy,
when the GIL is free (a CUDA call, like the stand-in's sleep, releases it), so the main thread
finds the next batch ready and calls the model again at once.

Only full batches are staged: a batch that would still be filling when the model is free is cut by
the run loop as before, so batches are never smaller than without staging, and an idle worker's
latency is unchanged (nothing is staged while the model is idle). Items are taken in the queue's
order, so a staged batch is the batch the run loop would have cut next.

One lock, the ready queue's, guards both the queue and the stage, so an item is always in exactly
one place: the queue, the stager's hands, the stage, or a batch the main thread took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from asyncinfer.worker.batcher import ReadyQueue

log = structlog.get_logger("asyncinfer.staging")

T = TypeVar("T")
S = TypeVar("S")


class BatchStager(Generic[T, S]):
    """Cuts a full batch of `batch_size` from `ready` and applies `stack` to it, on its own thread,
    whenever the model is busy and no staged batch is waiting. The main thread calls
    `model_started`/`model_finished` around each model call and `take` before cutting a batch."""

    def __init__(self, ready: ReadyQueue[T], batch_size: int, stack: Callable[[list[T]], S]) -> None:
        self._ready = ready
        self._batch_size = batch_size
        self._stack = stack
        self._lock = ready.changed
        self._busy = False
        self._stacking = False
        self._closed = False
        self._staged: tuple[list[T], S | None] | None = None
        self._thread = threading.Thread(target=self._run, name="stager", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def model_started(self) -> None:
        with self._lock:
            self._busy = True
            self._lock.notify_all()

    def model_finished(self) -> None:
        with self._lock:
            self._busy = False

    def take(self, timeout_s: float | None = None) -> tuple[list[T], S | None] | None:
        """The staged batch and its stacked tensors (None when stacking failed: the caller stacks
        them itself and meets the error there), or None when nothing is staged. Waits for a batch
        being stacked (its items are no longer in the queue), up to `timeout_s` if given."""
        with self._lock:
            if not self._lock.wait_for(lambda: not self._stacking, timeout_s):
                return None
            staged, self._staged = self._staged, None
            return staged

    def close(self, timeout_s: float = 5.0) -> tuple[list[T], S | None] | None:
        """Stop staging; returns what was staged and not taken, for the drain to finish or hand back.
        A stack that hangs past `timeout_s` keeps its items: their leases lapse and Pub/Sub
        redelivers them."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        staged = self.take(timeout_s=0.0 if self._thread.is_alive() else None)
        if staged is None and self._thread.is_alive():
            log.warning("a batch was still being stacked at the stop; its messages will be redelivered")
        return staged

    def _should_stage(self) -> bool:
        return self._busy and self._staged is None and len(self._ready) >= self._batch_size

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or self._should_stage())
                if self._closed:
                    return
                items = self._ready.take_locked(self._batch_size)
                self._stacking = True
            stacked: S | None = None
            try:
                stacked = self._stack(items)
            except Exception:  # the main thread stacks them again and handles the error per item
                log.exception("stacking a staged batch failed; the run loop stacks it instead")
            finally:
                with self._lock:
                    self._staged = (items, stacked)
                    self._stacking = False
                    self._lock.notify_all()
