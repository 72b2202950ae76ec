"""The worker loop: deliveries in, one final answer per message out.

Threads and their jobs:
- the transport's puller asks Pub/Sub for at most as many messages as flow control leaves room for
  and hands each pull response, as one chunk, to the intake pool;
- intake processes (asyncinfer.worker.intake_pool) read, validate and decode a chunk's bodies off
  this interpreter, so decode uses the machine's other cores and overlaps with inference; a reader
  thread per process puts the chunk's ready items into the ready queue in one step and answers
  what can never succeed at once;
- the main thread gathers micro-batches from that queue and runs the model; under load the stager
  (asyncinfer.worker.staging) has already cut and stacked the next full batch while the model ran;
- the answer thread builds the batch's results while the model runs the next batch, and publishes
  them in one call, then settles their acks in one step; under load one call carries two batches'
  results (`_answer_loop`). Each message is acked only after its result is published, so a crash
  between inference and publish means a redelivery, never a lost answer.

Per-request work in this interpreter is kept to what must be here: no per-message thread hand-off,
no per-message lock round trips (leases, acks, counters and the result cache are touched once per
chunk or batch), results built without re-validating what the worker itself produced.

Until the intake processes have imported the handler, chunks are read in threads of this interpreter,
so the worker answers as soon as its model is loaded. Transports that only deliver one message at a
time get the per-delivery path: `_on_delivery` -> `_intake` on the transport's intake threads.

Shutdown (SIGTERM from a preemption or a scale-in): stop pulling, finish what is held while the drain
bound allows and nack the rest, wait for results in flight, send the last acks, log the counts.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import queue
import threading
import time
import uuid
from collections import Counter, OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import structlog
import torch

from asyncinfer.core.contract import (
    CLIENT_ATTRIBUTE,
    ErrorInfo,
    InferenceRequest,
    InferenceResult,
    Timings,
    carried_from_request,
    utcnow,
)
from asyncinfer.core.worker_settings import WorkerSettings
from asyncinfer.worker.answers import BatchAnswers, attributes_for, encode_output, timings_fields, wire
from asyncinfer.worker.batcher import MicroBatcher, ReadyQueue
from asyncinfer.worker.blobs import write_blob
from asyncinfer.worker.cost import CostMeter
from asyncinfer.worker.errors import InvalidInputError, TransientError
from asyncinfer.worker.handler import ModelHandler
from asyncinfer.worker.intake import Rejection, load_input, read_request
from asyncinfer.worker.intake_pool import FAILED, READY, REJECTED, IntakePool, ReadChunk
from asyncinfer.worker.staging import BatchStager
from asyncinfer.worker.transport import Delivery, PubSubTransport

log = structlog.get_logger("asyncinfer.worker")

#: Under load, one publish call carries the results of this many batches: each publish RPC costs the
#: worker and Pub/Sub a fixed amount of CPU on top of its messages.
BATCHES_PER_PUBLISH = 2
#: The longest a finished batch's results wait for the next batch's to share their publish call.
MAX_PUBLISH_WAIT_S = 0.025


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """What the runtime keeps of a request once intake has read it (its submit time is on HeldItem)."""

    request_id: str


@dataclass(slots=True)
class HeldItem:
    """A delivery that passed intake and waits for the model."""

    delivery: Delivery
    request: InferenceRequest | ReadRequest
    tensor: torch.Tensor
    received_at: float = field(default_factory=time.monotonic)
    #: The client's submit time, epoch seconds (None when it gave none): what queued_ms and total_ms
    #: count from. A float, as intake sends it: no datetime made per request only to be read back.
    submitted_s: float | None = None


@dataclass
class FinishedBatch:
    """A batch the model is done with, waiting for its results to be published."""

    batch_id: str
    items: list[HeldItem]
    outputs: list[dict[str, Any] | Exception]
    started: float
    inference_ms: float
    #: CPU time of the thread that called the model, inside its calls: the model's own CPU where
    #: torch runs on that thread (torch threads 1; a CUDA call's launches and synchronisation).
    model_cpu_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One answer of a batch, ready for the wire."""

    item: HeldItem
    body: bytes
    attributes: dict[str, str]
    status: str


class Worker:
    def __init__(self, settings: WorkerSettings, handler: ModelHandler, transport: PubSubTransport) -> None:
        self.settings = settings
        self.handler = handler
        self.transport = transport
        self.counts: Counter[str] = Counter()
        # Intake threads, the main thread, the answer thread and publish callbacks all count:
        # `Counter[key] += 1` is a read-modify-write, so it takes a lock.
        self._counts_lock = threading.Lock()
        self.model_loaded = False
        self.load_error: str | None = None
        # A PubSubTransport hands over whole pull responses, read in the intake pool (the lane worker
        # sets this too); other transports deliver message by message to _on_delivery.
        self._pooled = isinstance(transport, PubSubTransport)
        self._intake_pool = IntakePool(
            settings.handler,
            processes=intake_processes(settings.intake_processes),
            threads=4,
            file_root=settings.file_root,
            max_inline_bytes=settings.max_inline_bytes,
            handler=handler,
            niceness=settings.intake_niceness,
        )
        self._ready: ReadyQueue[HeldItem] = ReadyQueue()
        self._finished: queue.Queue[FinishedBatch] = queue.Queue()
        # The last batch the model finished, not yet handed to the answer thread (main thread only):
        # see `_hand_over`.
        self._unhanded: FinishedBatch | None = None
        # time.monotonic() when the model call now running began; None while the model is idle.
        self._model_busy_since: float | None = None
        # CPU seconds the main thread spent inside model calls for the batch being processed.
        self._model_cpu_s = 0.0
        self._answer_thread = threading.Thread(target=self._answer_loop, name="answer", daemon=True)
        self._batcher = MicroBatcher(self._ready, settings.max_batch_size, settings.max_wait_ms / 1000)
        # Cuts and stacks the next full batch while the model runs (asyncinfer.worker.staging); the
        # lane worker, whose batches are chosen by priority at the last moment, has none.
        self._stager: BatchStager[HeldItem, torch.Tensor] | None = (
            BatchStager(self._ready, settings.max_batch_size, self._stack_items) if settings.stage_next_batch else None
        )
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._unanswered = 0  # deliveries taken and neither acked nor nacked yet
        self._all_answered = threading.Condition(self._lock)
        # request id -> the body of its ok result (answers a redelivery without a second inference).
        self._answered: OrderedDict[str, bytes] = OrderedDict()
        self._last_loop_at = time.monotonic()
        self._batch_prefix = uuid.uuid4().hex[:8]
        self._batch_numbers = itertools.count(1)
        self._device = torch.device("cpu")
        self._cost = CostMeter(settings.price_per_hour_usd, settings.price_basis, settings.usage_log_interval_s)

    # --- lifecycle -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Safe to call from a signal handler: only sets a flag."""
        self._stopping.set()

    def load_model(self) -> None:
        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        wanted = self.settings.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(wanted)
        started = time.monotonic()
        self.handler.load(self._device)
        self.model_loaded = True
        log.info(
            "model loaded",
            model=self.handler.name,
            model_version=self.handler.version,
            device=str(self._device),
            load_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def run(self) -> int:
        """Serve until request_stop(); returns the process exit code."""
        if self._pooled:
            # The intake processes import the handler's module while the model loads here.
            self._intake_pool.launch()
        try:
            self.load_model()
        except Exception as exc:
            self.load_error = repr(exc)
            log.exception("model failed to load")
            # Stay up, unhealthy, long enough for the health check to see why (MIG autohealing
            # then replaces the VM), then exit non-zero so a supervisor restarts the process.
            self._stopping.wait(self.settings.load_failure_exit_s)
            return 1
        if self._pooled:
            # Intake reads in threads here until its processes have imported the handler: the first
            # answers need not wait for them.
            self._intake_pool.serve_while_starting()
        self._answer_thread.start()
        if self._stager is not None:
            self._stager.start()
        self._cost.start(self._stopping)
        if self._pooled:
            self.transport.start(self._on_delivery, on_pull=self._on_pull)
        else:
            self.transport.start(self._on_delivery)
        log.info(
            "worker started",
            subscription=self.settings.subscription_path(),
            max_batch_size=self.settings.max_batch_size,
            max_wait_ms=self.settings.max_wait_ms,
        )
        while not self._stopping.is_set():
            self._last_loop_at = time.monotonic()
            if not self.transport.puller_alive:
                log.error("pulling failed for too long; exiting", error=repr(self.transport.last_pull_error))
                self._drain()
                return 1
            staged = self._stager.take() if self._stager is not None else None
            if staged is not None:
                self._process_batch(*staged)
                continue
            if len(self._ready) < self.settings.max_batch_size:
                # The next batch may have to wait for items: answer the last one now, not after.
                self._hand_over()
            batch = self._batcher.next_batch(self._stopping)
            if batch:
                self._process_batch(batch)
        return self._drain()

    def problems(self) -> list[str]:
        """What the health endpoint reports; empty means healthy."""
        found = []
        if self.load_error is not None:
            found.append(f"model failed to load: {self.load_error}")
        elif not self.model_loaded:
            found.append("model not loaded yet")
        elif self.transport.pull_failing and not self._stopping.is_set():
            found.append(f"pulling from the subscription fails: {self.transport.last_pull_error!r}")
        if time.monotonic() - self._last_loop_at > self.settings.max_lease_s:
            found.append("processing loop stalled longer than the lease")
        return found

    def _drain(self) -> int:
        started = time.monotonic()
        deadline = started + self.settings.drain_timeout_s
        self._stopping.set()
        # Stop pulling first: a stream left open would keep delivering messages only to be nacked.
        self.transport.stop_pulling(timeout_s=min(5.0, self.settings.drain_timeout_s))
        # Chunks still being read land in the ready queue (or are answered) before the drain decides.
        self._intake_pool.wait_idle(timeout_s=max(0.1, min(5.0, deadline - time.monotonic())))
        finished = nacked = 0
        last_batch_s = 0.0
        # A batch staged before the stop is the oldest held: it goes first.
        staged = self._stager.close() if self._stager is not None else None
        while True:
            # Finish a held batch only if it should end before the drain bound; nack the rest so
            # another worker takes it at once instead of after the ack deadline.
            if time.monotonic() + 2 * last_batch_s + 0.05 >= deadline:
                break
            if staged is not None:
                (batch, stacked), staged = staged, None
            else:
                batch, stacked = self._batcher.drain_nowait(self.settings.max_batch_size), None
            if not batch:
                break
            t0 = time.monotonic()
            self._process_batch(batch, stacked)
            last_batch_s = time.monotonic() - t0
            finished += len(batch)
        self._hand_over()
        for item in [*(staged[0] if staged is not None else []), *self._batcher.drain_nowait()]:
            self._nack(item.delivery, "draining")
            nacked += 1
        with self._all_answered:
            self._all_answered.wait_for(lambda: self._unanswered == 0, timeout=max(0.1, deadline - time.monotonic()))
            unanswered = self._unanswered
        self.transport.close()
        self._intake_pool.close()
        log.info(
            "worker stopped",
            drained_in_ms=round((time.monotonic() - started) * 1000, 1),
            finished_while_draining=finished,
            nacked_while_draining=nacked,
            left_to_lease_expiry=unanswered,
            usage=self._cost.snapshot(),
            **self.count_snapshot(),
        )
        return 0

    # --- intake (client callback threads) -------------------------------------------------------------

    def _on_pull(self, deliveries: list[Delivery]) -> None:
        """One pull response (on the puller thread): counted once, read as one chunk."""
        with self._lock:
            self._unanswered += len(deliveries)
        self._count("received", len(deliveries))
        if self._stopping.is_set():
            self._nack_many(deliveries, "arrived_while_stopping")
            return
        self._intake_pool.submit([d.data for d in deliveries], lambda chunk: self._on_chunk(deliveries, chunk))

    def _on_chunk(self, deliveries: list[Delivery], chunk: ReadChunk | BaseException) -> None:
        """A chunk read by intake (on its reader thread): ready items go to the batcher in one step."""
        if isinstance(chunk, BaseException):
            # The intake process died under this chunk: hand every message back for redelivery; a
            # body that kills the decoder every time is dead-lettered after the subscription's attempts.
            self._nack_many(deliveries, "intake_lost", error=repr(chunk))
            return
        ready: list[HeldItem] = []
        transient: list[Delivery] = []
        cached_ids: list[tuple[Delivery, bytes]] = []
        with self._lock:
            answered = self._answered
            for delivery, outcome in zip(deliveries, chunk.outcomes, strict=True):
                if outcome[0] == READY:
                    cached_body = answered.get(outcome[1])
                    if cached_body is not None:
                        cached_ids.append((delivery, cached_body))
                        continue
                    ready.append(HeldItem(
                        delivery, ReadRequest(outcome[1]), chunk.tensors[outcome[3]], delivery.received_at, outcome[2]
                    ))
        if ready:
            self._ready.put_many(ready)
        for delivery, body in cached_ids:
            self._publish_replay(delivery, body)
        for delivery, outcome in zip(deliveries, chunk.outcomes, strict=True):
            kind = outcome[0]
            if kind == REJECTED:
                self._answer_error(delivery, outcome[1], outcome[2], outcome[3])
            elif kind == FAILED:
                log.error("intake failed", message_id=delivery.message_id, error=outcome[2])
                self._answer_error(delivery, outcome[1], "internal_error", outcome[2])
            elif kind != READY:
                transient.append(delivery)
                log.info("nacked", reason="transient_input_error", message_id=delivery.message_id, error=outcome[2])
        if transient:
            self._nack_many(transient, "transient_input_error", quiet=True)

    def _on_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._unanswered += 1
        self._count("received")
        if self._stopping.is_set():
            # Delivered while the stream was closing: hand it straight back.
            self._nack(delivery, "arrived_while_stopping")
            return
        try:
            self._intake(delivery)
        except TransientError as exc:
            self._nack(delivery, "transient_input_error", error=str(exc))
        except Exception as exc:  # intake must never kill a client thread and strand the message
            log.exception("intake failed", message_id=delivery.message_id)
            self._answer_error(delivery, None, "internal_error", f"intake failed: {exc!r}")

    def _intake(self, delivery: Delivery) -> None:
        parsed = read_request(delivery.data)
        if isinstance(parsed, Rejection):
            self._answer_error(delivery, parsed.request_id, parsed.code, parsed.message)
            return
        request = parsed
        if request.model != self.handler.name:
            self._answer_error(
                delivery,
                request.request_id,
                "unknown_model",
                f"model {request.model!r} is not served here; this queue serves {self.handler.name!r}",
            )
            return
        cached = self._cached_result(request.request_id)
        if cached is not None:
            self._publish_replay(delivery, cached)
            return
        if request.deadline is not None and request.deadline <= utcnow():
            self._answer_error(
                delivery,
                request.request_id,
                "deadline_exceeded",
                f"the deadline {request.deadline.isoformat()} passed before the request was taken",
            )
            return
        try:
            payload = load_input(
                request, file_root=self.settings.file_root, max_inline_bytes=self.settings.max_inline_bytes
            )
            tensor = self.handler.decode(payload)
        except InvalidInputError as exc:
            self._answer_error(delivery, request.request_id, exc.code, exc.message)
            return
        submitted_s = request.submitted_at.timestamp() if request.submitted_at is not None else None
        self._ready.put(HeldItem(delivery, request, tensor, delivery.received_at, submitted_s))

    # --- inference (main thread) ----------------------------------------------------------------

    def _process_batch(self, batch: list[HeldItem], stacked: torch.Tensor | None = None) -> None:
        # A counter under a per-process random prefix, not uuid4 per batch: uuid4 reads os.urandom,
        # a system call that lets go of the GIL, and taking it back behind the answer or puller
        # thread cost the model 0.26 ms per batch on average here (p95 1.5 ms; 10 ms batches).
        batch_id = f"{self._batch_prefix}-{next(self._batch_numbers)}"
        structlog.contextvars.bind_contextvars(batch_id=batch_id)
        try:
            started = time.monotonic()
            self._model_cpu_s = 0.0
            try:
                outputs: list[dict[str, Any] | Exception] = list(
                    self._predict([i.tensor for i in batch]) if stacked is None else self._predict_stacked(stacked)
                )
            except Exception as exc:
                # One bad item must not fail its batch-mates: retry each alone, so only the item that
                # fails again is nacked (transient) or answered with an error. A batch too big for
                # the GPU's memory also gets through this way, one item at a time.
                log.warning("batch failed; retrying its items one by one", size=len(batch), error=repr(exc))
                outputs = [self._predict_alone(item.tensor) for item in batch]
            inference_ms = (time.monotonic() - started) * 1000
            self._cost.add_batch(inference_ms)
            self._hand_over()  # normally done already, just before the model call
            self._unhanded = FinishedBatch(batch_id, batch, outputs, started, inference_ms, self._model_cpu_s * 1000)
        finally:
            structlog.contextvars.unbind_contextvars("batch_id")

    def _answer_loop(self) -> None:
        """Build each finished batch's results as it comes; publish them in one call with the next
        batch's when the model is already running that one (under load), else at once.

        Every publish RPC costs the worker and Pub/Sub a fixed amount of CPU; two batches per call
        halve it, for at most one batch time more (MAX_PUBLISH_WAIT_S at the most) before the first
        batch's results leave, and only under load: an idle model means no wait."""
        while True:
            outgoing = self._answer_one(self._finished.get())
            for _ in range(BATCHES_PER_PUBLISH - 1):
                busy_since = self._model_busy_since
                if busy_since is None:
                    break  # nothing is being inferred: no reason to wait
                try:
                    finished = self._finished.get(timeout=max(0.0, busy_since + MAX_PUBLISH_WAIT_S - time.monotonic()))
                except queue.Empty:
                    break
                outgoing += self._answer_one(finished)
            try:
                self._publish_batch_then_ack(outgoing)
            except Exception:  # never let the answer thread die: the messages come back
                log.exception("publishing answers failed; their messages will be redelivered")
                self._nack_many([answer.item.delivery for answer in outgoing], "answer_failed")

    def _answer_one(self, finished: FinishedBatch) -> list[Outgoing]:
        structlog.contextvars.bind_contextvars(batch_id=finished.batch_id)
        try:
            return self._answer_batch(finished)
        except Exception:  # never let the answer thread die: the batch's messages come back
            log.exception("answering a batch failed; its messages will be redelivered")
            self._nack_many([i.delivery for i in finished.items], "answer_failed")
            return []
        finally:
            structlog.contextvars.unbind_contextvars("batch_id")

    def _answer_batch(self, finished: FinishedBatch) -> list[Outgoing]:
        """The batch's answers, ready to publish (the ok ones remembered for redeliveries)."""
        outgoing: list[Outgoing] = []
        # Once per batch, not per item: the clock, the cost share, the fields every ok result shares.
        now = time.monotonic()
        wall_now = time.time()
        completed_at = dt.datetime.fromtimestamp(wall_now, dt.UTC)
        cost = self._cost.share(finished.inference_ms, len(finished.items))
        shared = BatchAnswers.for_batch(
            self.settings.worker_id, self.handler.name, self.handler.version, completed_at, cost
        )
        if now - min(i.received_at for i in finished.items) > self.settings.max_lease_s:
            self._warn_lease_expired(finished.items, now)
        for item, output in zip(finished.items, finished.outputs, strict=True):
            try:
                answer = self._answer_for(item, output, finished, shared, now, wall_now)
            except Exception as exc:  # never strand a message: answer it with the reason
                log.exception("answering failed", request_id=item.request.request_id)
                error = self._error_result(item.delivery, item.request.request_id, "internal_error", repr(exc))
                answer = Outgoing(item, *wire(error), "error")
            if answer is not None:
                outgoing.append(answer)
        self._remember_many([(a.item.request.request_id, a.body) for a in outgoing if a.status == "ok"])
        log.info(
            "batch done",
            size=len(finished.items),
            inference_ms=round(finished.inference_ms, 2),
            model_cpu_ms=round(finished.model_cpu_ms, 3),
            request_ids=[i.request.request_id for i in finished.items[:8]],
        )
        return outgoing

    def _warn_lease_expired(self, items: list[HeldItem], now: float) -> None:
        # The lease may have lapsed and another worker may hold a redelivery: answer anyway,
        # under the same request id, and say so, so the duplicate is visible and not silent.
        for item in items:
            if now - item.received_at > self.settings.max_lease_s:
                self._count("lease_expired")
                log.warning("lease may have expired; a duplicate answer is possible",
                            request_id=item.request.request_id)

    def _hand_over(self) -> None:
        """Give the last finished batch to the answer thread.

        The hand-over waits until just before the next model call, so the answer thread's Python
        (building, serialising, publishing results) runs while the model works: handed over earlier,
        it would take the GIL the moment this thread let go of it to stack the next batch (torch
        releases the GIL in its ops), and the model's next call would wait behind it. The run loop
        hands over at once when the next batch is not already there, so answers never wait for a
        batch to fill."""
        finished, self._unhanded = self._unhanded, None
        if finished is not None:
            self._finished.put(finished)

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        if self._device.type == "cuda":
            # Stack straight into pinned host memory: the handler's host-to-device copy can then be
            # asynchronous (DMA) without a second host copy into a pinned staging buffer.
            first = tensors[0]
            pinned = torch.empty((len(tensors), *first.shape), dtype=first.dtype, pin_memory=True)
            return torch.stack(tensors, out=pinned)
        return torch.stack(tensors)

    def _stack_items(self, items: list[HeldItem]) -> torch.Tensor:
        return self._stack([i.tensor for i in items])

    def _predict(self, tensors: list[torch.Tensor]) -> list[dict[str, Any]]:
        return self._predict_stacked(self._stack(tensors))

    def _predict_stacked(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        self._model_busy_since = time.monotonic()
        if self._stager is not None:
            self._stager.model_started()
        self._hand_over()
        cpu_started = time.thread_time()
        try:
            outputs = self.handler.predict(batch)
        finally:
            self._model_cpu_s += time.thread_time() - cpu_started
            self._model_busy_since = None
            if self._stager is not None:
                self._stager.model_finished()
        if len(outputs) != len(batch):
            raise RuntimeError(f"handler returned {len(outputs)} outputs for {len(batch)} inputs")
        return outputs

    def _predict_alone(self, tensor: torch.Tensor) -> dict[str, Any] | Exception:
        try:
            return self._predict([tensor])[0]
        except Exception as exc:
            return exc

    def _answer_for(
        self, item: HeldItem, output: dict[str, Any] | Exception, finished: FinishedBatch, shared: BatchAnswers,
        now: float, wall_now: float,
    ) -> Outgoing | None:
        """The answer to one batch item, or None when it was handed back (nacked) instead."""
        request, delivery = item.request, item.delivery
        timings = timings_fields(
            item.received_at, item.submitted_s, finished.started, finished.inference_ms, now, wall_now
        )
        if isinstance(output, TransientError):
            self._nack(delivery, "transient_model_error", error=str(output))
            return None
        if isinstance(output, Exception):
            log.warning("handler failed on one item", request_id=request.request_id, error=repr(output))
            error = self._error_result(
                delivery, request.request_id, "handler_error", f"the model failed on this input: {output!r}",
                timings=Timings.model_validate(timings),
            )
            return Outgoing(item, *wire(error), "error")
        encoded, problem = encode_output(output)
        if problem is not None:
            error = self._error_result(
                delivery, request.request_id, "invalid_output", problem, timings=Timings.model_validate(timings)
            )
            return Outgoing(item, *wire(error), "error")
        output_uri = None
        if len(encoded) > self.settings.max_inline_output_bytes:
            # Too large for a message: the output goes to storage and the result carries its URI.
            output_uri = write_blob(
                self.settings.results_uri_prefix, f"{request.request_id}-{delivery.message_id}.json", encoded
            )
        body = shared.ok_body(
            request.request_id, delivery.message_id, delivery.delivery_attempt, delivery.attributes, timings,
            None if output_uri is not None else encoded, output_uri,
        )
        client = delivery.attributes.get(CLIENT_ATTRIBUTE)
        return Outgoing(item, body, attributes_for("ok", delivery.message_id, request.request_id, client), "ok")

    # --- answers ----------------------------------------------------------------------------------

    def _new_result(
        self, delivery: Delivery, request_id: str | None, status: str, timings: Timings | None = None,
        completed_at: dt.datetime | None = None,
    ) -> InferenceResult:
        # model_construct: the fields come from the worker itself and from a request intake already
        # validated, so validating them again would only cost CPU per result. Unset fields get their
        # defaults as with the constructor.
        return InferenceResult.model_construct(
            request_id=request_id,
            message_id=delivery.message_id,
            message_attributes=dict(delivery.attributes) if request_id is None else {},
            status=status,
            timings=timings or Timings(),
            delivery_attempt=delivery.delivery_attempt,
            worker_id=self.settings.worker_id,
            model=self.handler.name,
            model_version=self.handler.version,
            completed_at=completed_at or utcnow(),
            **carried_from_request(delivery.attributes),
        )

    def _answer_error(
        self, delivery: Delivery, request_id: str | None, code: str, message: str, timings: Timings | None = None
    ) -> None:
        self._publish_then_ack(delivery, self._error_result(delivery, request_id, code, message, timings))

    def _error_result(
        self, delivery: Delivery, request_id: str | None, code: str, message: str, timings: Timings | None = None
    ) -> InferenceResult:
        self._count(f"error_{code}")
        log.warning("request rejected", code=code, reason=message, request_id=request_id,
                    message_id=delivery.message_id)
        result = self._new_result(delivery, request_id, "error", timings)
        result.error = ErrorInfo(code=code, message=message, retryable=False)
        return result

    def _publish_replay(self, delivery: Delivery, cached_body: bytes) -> None:
        self._count("replayed")
        replay = InferenceResult.model_validate_json(cached_body).model_copy(
            update={
                "message_id": delivery.message_id,
                "delivery_attempt": delivery.delivery_attempt,
                "replayed": True,
                "completed_at": utcnow(),
                **carried_from_request(delivery.attributes),
            }
        )
        self._publish_then_ack(delivery, replay)

    def _publish_batch_then_ack(self, answers: list[Outgoing]) -> None:
        """A batch's results in one publish call (one RPC, no per-message futures), then its acks in
        one step. Each result carries `worker_ms`: its message's time in this worker, from the pull
        response to this publish call, so latency can be split between broker and worker."""
        if not answers:
            return
        now = time.monotonic()
        for answer in answers:
            answer.attributes["worker_ms"] = f"{(now - answer.item.received_at) * 1000:.2f}"
        deliveries = [answer.item.delivery for answer in answers]
        try:
            self.transport.publish_batch([(answer.body, answer.attributes) for answer in answers])
        except Exception as exc:
            # Without published answers the messages must come back: nack, never ack.
            self._nack_many(deliveries, "publish_failed", error=repr(exc))
            return
        statuses = Counter(f"answered_{answer.status}" for answer in answers)
        with self._counts_lock:
            self.counts.update(statuses)
        _settle_many(deliveries, ack=True)
        self._settled(len(deliveries))

    def _publish_then_ack(self, delivery: Delivery, result: InferenceResult) -> None:
        future = self.transport.publish(*wire(result))

        def settle(done: Future[str]) -> None:
            if done.exception() is None:
                self._count(f"answered_{result.status}")
                delivery.ack()
                self._settled()
            else:
                # Without a published answer the message must come back: nack, never ack.
                self._nack(delivery, "publish_failed", error=repr(done.exception()))

        future.add_done_callback(settle)

    def _nack(self, delivery: Delivery, reason: str, **fields: Any) -> None:
        self._nack_many([delivery], reason, **fields)

    def _nack_many(self, deliveries: list[Delivery], reason: str, quiet: bool = False, **fields: Any) -> None:
        if not deliveries:
            return
        self._count(f"nacked_{reason}", len(deliveries))
        if not quiet:
            for delivery in deliveries:
                log.info("nacked", reason=reason, message_id=delivery.message_id, **fields)
        _settle_many(deliveries, ack=False)
        self._settled(len(deliveries))

    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[key] += n

    def count_snapshot(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self.counts)

    def _settled(self, n: int = 1) -> None:
        with self._all_answered:
            self._unanswered -= n
            if self._unanswered == 0:
                self._all_answered.notify_all()

    def _remember_many(self, answers: list[tuple[str, bytes]]) -> None:
        """Keep the latest ok answers (request id, body), so a redelivery is answered without a second
        inference."""
        if self.settings.result_cache_size == 0 or not answers:
            return
        with self._lock:
            answered = self._answered
            for request_id, body in answers:
                answered[request_id] = body
                answered.move_to_end(request_id)
            while len(answered) > self.settings.result_cache_size:
                answered.popitem(last=False)

    def _cached_result(self, request_id: str) -> bytes | None:
        with self._lock:
            return self._answered.get(request_id)


def intake_processes(setting: int) -> int:
    """-1 (auto): one intake process per core beyond the first, at most 4 and at least 1."""
    if setting >= 0:
        return setting
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def _settle_many(deliveries: list[Delivery], ack: bool) -> None:
    """Ack or nack in one step per transport (a lane worker's deliveries come from several)."""
    by_transport: dict[int, list[Delivery]] = {}
    for delivery in deliveries:
        by_transport.setdefault(id(delivery.transport), []).append(delivery)
    for group in by_transport.values():
        group[0].transport.settle_many([d.ack_id for d in group], ack=ack)
