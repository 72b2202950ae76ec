"""The worker with priority lanes: every lane's subscription pulled, batches chosen by lane.

Everything the runtime guarantees stays as it is (nothing acked before its result is published,
SIGTERM drain, bad-item isolation, the lease bound), and intake runs in the same intake processes
(each lane's pull responses are read as chunks there); two things change:
- held items wait in a LaneBatcher instead of a FIFO queue, so a batch is chosen in core.lanes
  order (priority first, age boost) and may mix lanes; what is held stays bounded, because every
  lane's transport has its own flow control;
- a message whose `lane` attribute names another lane than the subscription it came from gets an
  error result (`wrong_lane`): it was published to the wrong topic, and serving it there would
  give it another lane's priority and goal.
"""

from __future__ import annotations

import time

import torch

from asyncinfer.core.lanes import LANE_ATTRIBUTE, Lane, Waiting
from asyncinfer.core.worker_settings import WorkerSettings
from asyncinfer.worker.handler import ModelHandler
from asyncinfer.worker.intake_pool import READY, Outcome, ReadChunk
from asyncinfer.worker.lane_batcher import LaneBatcher
from asyncinfer.worker.lane_transport import LaneTransports
from asyncinfer.worker.runtime import HeldItem, Worker
from asyncinfer.worker.transport import Delivery


class _LaneIntake:
    """Where the runtime's intake puts a ready item: the lane batcher, remembering the item's lane."""

    def __init__(self, worker: LaneWorker) -> None:
        self._worker = worker

    def put(self, item: HeldItem) -> None:
        ack_id = item.delivery.ack_id
        self._worker._held_lanes[ack_id] = self._worker._arriving[ack_id]
        self._worker._lane_batcher.put(item)

    def put_many(self, items: list[HeldItem]) -> None:
        for item in items:
            self.put(item)

    def __len__(self) -> int:
        """Items waiting for a batch (the run loop hands a finished batch over at once when fewer
        than a batch wait)."""
        return len(self._worker._lane_batcher)


class LaneWorker(Worker):
    def __init__(self, settings: WorkerSettings, handler: ModelHandler, transport: LaneTransports) -> None:
        super().__init__(settings, handler, transport)  # type: ignore[arg-type]
        self.lane_transports = transport
        # Ack id -> the lane whose subscription delivered it: while its intake runs, then while held.
        # Dict operations on distinct keys from several threads are atomic in CPython.
        self._arriving: dict[str, Lane] = {}
        self._held_lanes: dict[str, Lane] = {}
        self._lane_batcher: LaneBatcher[HeldItem] = LaneBatcher(
            settings.max_batch_size, settings.max_wait_ms / 1000, self._waiting
        )
        self._batcher = self._lane_batcher  # type: ignore[assignment]
        self._ready = _LaneIntake(self)  # type: ignore[assignment]
        # No staging ahead: a batch cut while the model runs would miss higher-priority work that
        # arrives before the model is free; lanes choose each batch at the last moment.
        self._stager = None
        # Every lane's pull responses go to the intake processes, as the plain worker's do.
        self._pooled = True

    def _waiting(self, item: HeldItem) -> Waiting:
        lane = self._held_lanes[item.delivery.ack_id]
        # Age counts from the client's submit time when it gave one (the time spent in Pub/Sub
        # counts against the goal), else from when this worker received the message.
        if item.submitted_s is not None:
            published = item.submitted_s
        else:
            published = time.time() - (time.monotonic() - item.received_at)
        return Waiting(lane.priority, lane.latency_goal_s, published)

    def _on_pull(self, deliveries: list[Delivery]) -> None:
        lanes = [self.lane_transports.take_lane(d) for d in deliveries]
        if not self._stopping.is_set():  # else the runtime hands them all back at once
            for delivery, lane in zip(deliveries, lanes, strict=True):
                self._arriving[delivery.ack_id] = lane
        super()._on_pull(deliveries)

    def _on_chunk(self, deliveries: list[Delivery], chunk: ReadChunk | BaseException) -> None:
        """A chunk read by intake: what does not belong to its lane gets an error result, the rest
        goes on as in the plain worker."""
        try:
            if isinstance(chunk, BaseException):
                super()._on_chunk(deliveries, chunk)
                return
            kept: list[Delivery] = []
            kept_outcomes: list[Outcome] = []
            for delivery, outcome in zip(deliveries, chunk.outcomes, strict=True):
                priority = outcome[4] if outcome[0] == READY else None
                problem = self._lane_problem(delivery.attributes, priority, self._arriving[delivery.ack_id])
                if problem is None:
                    kept.append(delivery)
                    kept_outcomes.append(outcome)
                else:
                    request_id = outcome[1] if isinstance(outcome[1], str) else None
                    self._answer_error(delivery, request_id, *problem)
            if kept:
                # The outcomes keep their indices into the chunk's tensors.
                super()._on_chunk(kept, ReadChunk(kept_outcomes, chunk.tensors))
        finally:
            for delivery in deliveries:
                self._arriving.pop(delivery.ack_id, None)

    def _lane_problem(self, attributes: dict[str, str], priority: int | None, lane: Lane) -> tuple[str, str] | None:
        """Why this message does not belong to the lane whose subscription delivered it, or None.

        Its `lane` attribute, and the `priority` in its body when it has one, must name this lane:
        a message published to another lane's topic would get that lane's priority and goal."""
        lanes = self.lane_transports.lanes
        claimed = attributes.get(LANE_ATTRIBUTE)
        if claimed is not None and claimed != lane.name:
            return "wrong_lane", (
                f"the message says lane {claimed!r} but came from lane {lane.name!r}'s subscription; publish it "
                f"to its lane's topic (the lanes are {lanes.describe()})."
            )
        if priority is not None and priority != lane.priority:
            named = next((x for x in lanes.lanes if x.priority == priority), None)
            if named is None:
                return "unknown_priority", f"no lane has priority {priority}; the lanes are {lanes.describe()}."
            return "wrong_lane", (
                f"priority {priority} is lane {named.name!r}, but the message came from lane {lane.name!r}'s "
                f"subscription; publish it to its lane's topic (the lanes are {lanes.describe()})."
            )
        return None

    def _process_batch(self, batch: list[HeldItem], stacked: torch.Tensor | None = None) -> None:
        try:
            super()._process_batch(batch, stacked)
        finally:
            for item in batch:
                self._held_lanes.pop(item.delivery.ack_id, None)
