"""Pub/Sub for the worker: the only worker module that imports google-cloud-pubsub.

Pull with flow control in, batched publishing out. The runtime sees `Delivery` objects, one pull
response at a time (or one message at a time on intake threads, for callers that want that), and
settles them in bulk.

Why unary pull and not the client library's streaming pull: a worker must know exactly what it holds.
Streaming pull lets the server push more than flow control admits; the library buffers the excess
where the worker cannot see it, and on close those messages stay leased until the stream's ack
deadline. Measured on the official emulator: after a graceful close, 68 of 120 buffered messages
were still not redelivered to a new streaming subscriber 150 s later. With unary pull the worker
asks for at most `max_messages - held` messages, extends the leases of exactly those, and on
SIGTERM simply stops asking, so a drain is bounded and nothing is held out of sight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.types import BatchSettings

from asyncinfer.client.pubsub import UNLIMITED, publisher_client, subscriber_client
from asyncinfer.worker.rpc import PublisherRpc, SubscriberRpc

log = structlog.get_logger("asyncinfer.transport")

#: A long poll: the server answers as soon as a message arrives, or empty after this long.
PULL_TIMEOUT_S = 2.0
#: How long one lease extension lasts; renewed at a third of it, so a stalled renewal has slack.
LEASE_S = 30
#: The lease loop's tick. A new message is first extended within this, well inside Pub/Sub's
#: smallest ack deadline (10 s).
LEASE_TICK_S = 2.0
#: Pub/Sub accepts at most this many ack ids per acknowledge/modify call.
MAX_IDS_PER_CALL = 1000
#: Acks leave in batches gathered for at most this long: fewer RPCs under load. An ack only has to
#: arrive within the ack deadline (10 s at least) and the result is already published, so the wait
#: costs clients nothing; at full load 20 ms gathers one or two batches' acks per RPC.
ACK_BATCH_S = 0.02



@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of one message. `ack` and `nack` are safe from any thread, once each; the
    runtime settles a batch's deliveries together with `transport.settle_many`."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    delivery_attempt: int
    ack_id: str
    _transport: PubSubTransport
    #: time.monotonic() when the pull response holding it arrived.
    received_at: float = 0.0

    @property
    def transport(self) -> PubSubTransport:
        return self._transport

    def ack(self) -> None:
        self._transport.settle_many([self.ack_id], ack=True)

    def nack(self) -> None:
        # Immediate redelivery to another worker (subject to the subscription's retry backoff).
        self._transport.settle_many([self.ack_id], ack=False)


class PubSubTransport:
    def __init__(
        self,
        subscription_path: str,
        results_topic_path: str,
        max_messages: int,
        max_lease_s: float,
        decode_threads: int = 4,
        max_message_bytes: int = UNLIMITED,
        min_pull_messages: int = 1,
    ) -> None:
        self._subscription_path = subscription_path
        self._results_topic_path = results_topic_path
        self._max_messages = max_messages
        # Under load the puller waits until this much room is free before it pulls again: each pull
        # costs the same few hundred microseconds (here and in the broker) whatever it carries, and
        # refilling one message at a time as answers leave would pay that per handful of messages.
        # An idle worker has all its room free, so this never delays a first message.
        self._min_pull = max(1, min(min_pull_messages, max_messages))
        self._max_lease_s = max_lease_s
        self._subscriber = subscriber_client(max_message_bytes)
        # Pull, ack, lease and a batch's results on the clients' raw channels: see rpc.py.
        self._rpc = SubscriberRpc(self._subscriber, subscription_path)
        # Results leave in small batches. Under load a batch's results are published in one burst
        # (about 1 ms for 32), so a 1 ms window still groups them into one or two RPCs; at idle the
        # window is pure added latency, which is why it is not longer.
        self._publisher = publisher_client(
            max_message_bytes,
            batch_settings=BatchSettings(max_messages=100, max_bytes=5_000_000, max_latency=0.001),
        )
        self._publish_rpc = PublisherRpc(self._publisher, results_topic_path)
        # Intake (parse + decode) runs here, so it overlaps with inference on the main thread.
        self._intake_pool = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="intake")
        # ack id -> when it arrived; leases are extended by the lease loop (see there).
        self._held: dict[str, float] = {}
        self._extended_at: dict[str, float] = {}  # the lease loop's own
        self._held_changed = threading.Condition()
        self._pending_acks: list[str] = []
        self._pending_nacks: list[str] = []
        self._acks_ready = threading.Condition()
        self._stop_pulling = threading.Event()
        self._closed = threading.Event()
        self._pull_error: BaseException | None = None
        self._consecutive_pull_failures = 0
        self._single_pulls_left = 0
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------

    def start(
        self, on_delivery: Callable[[Delivery], None], on_pull: Callable[[list[Delivery]], None] | None = None
    ) -> None:
        """With `on_pull`, each pull response's deliveries go to it together, on the puller thread
        (it must not block: it hands them on); without, each delivery goes to `on_delivery` on an
        intake thread of this transport's own."""
        for name, target in (("puller", lambda: self._pull_loop(on_delivery, on_pull)),
                             ("leaser", self._lease_loop), ("acker", self._ack_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def puller_alive(self) -> bool:
        """False once the puller died or ten pulls in a row failed: the worker then exits to be replaced."""
        return bool(self._threads) and self._threads[0].is_alive() and self._consecutive_pull_failures < 10

    @property
    def pull_failing(self) -> bool:
        """Several pulls in a row failed (a deleted subscription, lost permissions, no network)."""
        return self._consecutive_pull_failures >= 3

    @property
    def last_pull_error(self) -> BaseException | None:
        return self._pull_error

    def stop_pulling(self, timeout_s: float) -> None:
        """Ask for nothing more. A pull already in flight may still return messages: they are
        nacked at once. Leases of what is held keep being extended until close()."""
        self._stop_pulling.set()
        with self._held_changed:
            self._held_changed.notify_all()
        if self._threads:
            self._threads[0].join(timeout=max(timeout_s, PULL_TIMEOUT_S + 1))
        self._intake_pool.shutdown(wait=True)

    def close(self) -> None:
        """Send the last acks and nacks, flush results still being published, release clients."""
        self._stop_pulling.set()
        self._closed.set()
        with self._acks_ready:
            self._acks_ready.notify_all()
        for thread in self._threads[1:]:
            thread.join(timeout=10)
        self._flush_acks()
        self._publisher.stop()
        self._subscriber.close()

    # --- publishing and settling ----------------------------------------------------------------

    def publish_batch(self, messages: list[tuple[bytes, dict[str, str]]]) -> None:
        """Publish several results in one RPC and return when Pub/Sub has them (raises otherwise).
        Built from raw protobufs: the client's per-message batching, futures and proto-plus
        wrappers cost more CPU per result than the model does for a small CNN."""
        self._publish_rpc.publish(messages)

    def publish(self, data: bytes, attributes: dict[str, str]) -> Future[str]:
        future: Future[str] = self._publisher.publish(self._results_topic_path, data, **attributes)
        return future

    def settle(self, ack_id: str, ack: bool) -> None:
        self.settle_many([ack_id], ack)

    def settle_many(self, ack_ids: list[str], ack: bool) -> None:
        """Ack or nack these deliveries: one lock round trip each for the leases and the ack queue,
        whatever the count."""
        with self._held_changed:
            held = self._held
            for ack_id in ack_ids:
                held.pop(ack_id, None)
            self._held_changed.notify_all()
        with self._acks_ready:
            (self._pending_acks if ack else self._pending_nacks).extend(ack_ids)
            self._acks_ready.notify_all()

    # --- threads --------------------------------------------------------------------------------

    def _pull_loop(
        self, on_delivery: Callable[[Delivery], None], on_pull: Callable[[list[Delivery]], None] | None
    ) -> None:
        while not self._stop_pulling.is_set():
            with self._held_changed:
                # Flow control: never hold more than max_messages, so a spike stays on Pub/Sub.
                self._held_changed.wait_for(
                    lambda: self._max_messages - len(self._held) >= self._min_pull or self._stop_pulling.is_set(),
                    timeout=1.0,
                )
                room = self._max_messages - len(self._held)
            if room <= 0 or self._stop_pulling.is_set():
                continue
            if self._single_pulls_left:
                room = 1
                self._single_pulls_left -= 1
            try:
                # The raw call (rpc.py): half the generated client's CPU per pull.
                received = self._rpc.pull(room, PULL_TIMEOUT_S + 5)
                self._consecutive_pull_failures = 0
            except gexc.ResourceExhausted as exc:
                # A response larger than the channel takes: every message in it comes back with the
                # large one. Pull one at a time for a while, so the others get through and only the
                # large one keeps failing, until Pub/Sub dead-letters it after max_delivery_attempts.
                self._single_pulls_left = 2 * self._max_messages
                self._note_pull_failure(exc)
                continue
            except (gexc.DeadlineExceeded, gexc.ServiceUnavailable, gexc.InternalServerError,
                    gexc.Aborted) as exc:
                self._note_pull_failure(exc)
                continue
            except Exception as exc:  # a bad subscription name or permission: keep trying, report
                self._note_pull_failure(exc)
                continue
            now = time.monotonic()
            if self._stop_pulling.is_set():
                # Arrived after SIGTERM: hand back at once rather than hold through the drain.
                self._modify([m.ack_id for m in received], 0)
                break
            if not received:
                continue
            deliveries = [
                Delivery(
                    item.message.data,
                    dict(item.message.attributes),
                    item.message.message_id,
                    # 0 until a dead-letter policy exists; the first delivery is attempt 1.
                    item.delivery_attempt or 1,
                    item.ack_id,
                    self,
                    now,
                )
                for item in received
            ]
            with self._held_changed:
                self._held.update((d.ack_id, now) for d in deliveries)
            if on_pull is not None:
                on_pull(deliveries)
            else:
                for delivery in deliveries:
                    self._intake_pool.submit(on_delivery, delivery)

    def _note_pull_failure(self, exc: BaseException) -> None:
        self._consecutive_pull_failures += 1
        self._pull_error = exc
        log.warning("pull failed; retrying", error=repr(exc), failures=self._consecutive_pull_failures)
        self._stop_pulling.wait(min(10.0, 0.2 * 2 ** min(self._consecutive_pull_failures, 6)))

    def _lease_loop(self) -> None:
        while not self._closed.wait(LEASE_TICK_S):
            now = time.monotonic()
            extend: list[str] = []
            expired: list[str] = []
            extended_at = self._extended_at
            with self._held_changed:
                for ack_id, received_at in self._held.items():
                    age = now - received_at
                    if age >= self._max_lease_s:
                        expired.append(ack_id)
                    # Only what has been held a tick already: most messages are answered within
                    # milliseconds, long before the subscription's ack deadline (10 s at least)
                    # could matter, so they never cost an extension RPC. The first extension
                    # comes at an age of 1-2 ticks (2-4 s), well inside that deadline.
                    elif age >= LEASE_TICK_S and now - extended_at.get(ack_id, -LEASE_S) >= LEASE_S / 3:
                        extended_at[ack_id] = now
                        extend.append(ack_id)
                for ack_id in [a for a in extended_at if a not in self._held]:
                    del extended_at[ack_id]
                for ack_id in expired:
                    # Past max_lease_s the message is let go: Pub/Sub redelivers it, and the
                    # runtime marks any late answer (same request id) so the duplicate is visible.
                    del self._held[ack_id]
                if expired:
                    self._held_changed.notify_all()
            if expired:
                log.warning("leases given up after max_lease_s", count=len(expired))
            try:
                self._modify(extend, LEASE_S)
            except Exception as exc:
                log.warning("lease extension failed", error=repr(exc))

    def _ack_loop(self) -> None:
        while not self._closed.is_set():
            with self._acks_ready:
                self._acks_ready.wait_for(
                    lambda: bool(self._pending_acks or self._pending_nacks) or self._closed.is_set(), timeout=1.0
                )
            # Let a few more gather: one RPC for many acks.
            time.sleep(ACK_BATCH_S)
            self._flush_acks()

    def _flush_acks(self) -> None:
        with self._acks_ready:
            acks, self._pending_acks = self._pending_acks, []
            nacks, self._pending_nacks = self._pending_nacks, []
        for chunk in _chunks(acks):
            self._settle_chunk(chunk, ack=True)
        for chunk in _chunks(nacks):
            self._settle_chunk(chunk, ack=False)

    def _settle_chunk(self, ack_ids: list[str], ack: bool) -> None:
        try:
            self._send_settle(ack_ids, ack)
            return
        except Exception as exc:
            if len(ack_ids) == 1:
                # A failed ack means a redelivery and a second answer under the same request id,
                # never a loss; log it so the duplicate is explained.
                log.warning("ack or nack failed; the message will be redelivered", error=repr(exc), ack=ack)
                return
        # One stale ack id can fail the whole call: settle the rest one by one.
        for ack_id in ack_ids:
            self._settle_chunk([ack_id], ack)

    def _send_settle(self, ack_ids: list[str], ack: bool) -> None:
        if ack:
            self._rpc.acknowledge(ack_ids)
        else:
            self._modify(ack_ids, 0)

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for chunk in _chunks(ack_ids):
            self._rpc.modify_ack_deadline(chunk, seconds)


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + MAX_IDS_PER_CALL] for i in range(0, len(ids), MAX_IDS_PER_CALL)]
