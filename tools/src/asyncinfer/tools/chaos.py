"""Fault injection and auditing for reliability runs: kill workers on a seeded schedule, sample their
memory, tap every result, and find what was never answered.

Used by `asyncinfer chaos` and by the reliability tests. Nothing here knows about the CLI: a killer
picks victims from any callable that lists live workers, so the same code kills the in-process
stack's workers and workers found in another process's `asyncinfer local status --json`.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pydantic_core
import structlog
from google.cloud import pubsub_v1

from asyncinfer.client.tap import PubsubMessage, SubscriptionTap

log = structlog.get_logger("asyncinfer.chaos")


@dataclass(frozen=True)
class Victim:
    """A worker process that may be killed."""

    pid: int
    #: Seconds since the worker started pulling; None when unknown (then any live worker qualifies).
    serving_s: float | None = None


@dataclass(frozen=True)
class KillEvent:
    at_s: float
    pid: int
    signal: str


class WorkerKiller:
    """Sends SIGKILL and SIGTERM to live workers at seeded random intervals.

    The signals are shuffled with the seed, so a run is repeatable in what it does, and the interval
    is jittered (0.5x-1.5x the mean) so kills do not line up with batch boundaries. Only workers that
    have served for `min_serving_s` are candidates: killing a process that is still importing torch
    tests the controller's restart, not the queue's redelivery. A worker is signalled at most once,
    because one that got SIGTERM keeps running while it drains.
    """

    def __init__(
        self,
        victims: Callable[[], list[Victim]],
        *,
        sigkills: int,
        sigterms: int,
        seed: int,
        mean_interval_s: float = 2.0,
        first_after_s: float = 1.0,
        min_serving_s: float = 1.0,
        send: Callable[[int, int], None] = os.kill,
    ) -> None:
        self._victims = victims
        self._rng = random.Random(seed)
        plan = [signal.SIGKILL] * sigkills + [signal.SIGTERM] * sigterms
        self._rng.shuffle(plan)
        self._plan: list[signal.Signals] = plan
        self._mean_interval_s = mean_interval_s
        self._min_serving_s = min_serving_s
        self._send = send
        self._next_at = first_after_s
        self._signalled: set[int] = set()
        self._lock = threading.Lock()
        self.kills: list[KillEvent] = []

    @property
    def planned(self) -> int:
        return len(self._plan) + len(self.kills)

    @property
    def done(self) -> bool:
        return not self._plan

    def tick(self, elapsed_s: float) -> None:
        """Kill one worker if one is due; cheap enough to call every 50 ms."""
        with self._lock:
            if not self._plan or elapsed_s < self._next_at:
                return
            candidates = [
                v for v in self._victims()
                if v.pid not in self._signalled and (v.serving_s is None or v.serving_s >= self._min_serving_s)
            ]
            if not candidates:
                return  # every worker is starting or draining: try again on the next tick
            victim = self._rng.choice(sorted(candidates, key=lambda v: v.pid))
            sig = self._plan.pop()
            try:
                self._send(victim.pid, sig)
            except ProcessLookupError:
                self._plan.append(sig)  # it died on its own between listing and signalling
                return
            self._signalled.add(victim.pid)
            self.kills.append(KillEvent(round(elapsed_s, 2), victim.pid, sig.name))
            log.warning("killed a worker", pid=victim.pid, signal=sig.name, at_s=round(elapsed_s, 2))
            self._next_at = elapsed_s + self._mean_interval_s * self._rng.uniform(0.5, 1.5)

    def counts(self) -> dict[str, int]:
        return dict(Counter(k.signal for k in self.kills))


class RssSampler:
    """Peak resident memory per worker pid, sampled on a thread (psutil, a dev dependency)."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval_s: float = 0.25) -> None:
        import psutil  # imported here so the CLI still works without it (the report then says so)

        self._psutil = psutil
        self._pids = pids
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._last_bytes: dict[int, int] = {}
        self.peak_bytes: dict[int, int] = {}
        #: RSS of each worker serving when mark_baseline() ran: model loaded, nothing held yet.
        self.baseline_bytes: dict[int, int] = {}

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        for pid in list(self._pids()):
            try:
                rss = int(self._psutil.Process(pid).memory_info().rss)
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied, self._psutil.ZombieProcess):
                continue
            self.peak_bytes[pid] = max(rss, self.peak_bytes.get(pid, 0))
            self._last_bytes[pid] = rss

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def mark_baseline(self) -> None:
        """Remember the current RSS of the workers now serving, before the load: growth from there is
        what holding messages costs, which is what flow control must bound."""
        self.sample()
        self.baseline_bytes = dict(self._last_bytes)

    def peak_mb(self) -> dict[str, float]:
        return {str(pid): round(b / 2**20, 1) for pid, b in sorted(self.peak_bytes.items())}

    def max_growth_mb(self) -> float | None:
        """The largest peak-minus-baseline among the workers that had a baseline."""
        growth = [self.peak_bytes[p] - b for p, b in self.baseline_bytes.items() if p in self.peak_bytes]
        return round(max(growth) / 2**20, 1) if growth else None


@dataclass
class AuditCounts:
    results: int = 0
    #: Results of a delivery after the first (the message came back: a kill, a nack, a lapsed lease).
    redelivered: int = 0
    #: Results answered from a worker's cache without a second inference.
    replayed: int = 0
    #: Request ids answered more than once where no answer says why (attempt 1, not replayed): the
    #: "processed twice silently" case the design must avoid.
    unmarked_duplicate_ids: int = 0


class ResultAudit:
    """Its own subscription on the results topic, so every result is seen, not only the first per id
    (the client keeps the first answer and merely counts the rest)."""

    def __init__(self, project: str, results_topic: str) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[tuple[int, bool]]] = {}
        self.counts = AuditCounts()
        self._tap = SubscriptionTap.on_topic(project, results_topic, "audit", self._on_results).start()

    def _on_results(self, messages: list[PubsubMessage], _: float) -> None:
        for message in messages:
            try:
                raw = pydantic_core.from_json(message.data)
            except ValueError:
                continue
            attempt = int(raw.get("delivery_attempt", 1)) if isinstance(raw, dict) else 1
            replayed = bool(raw.get("replayed", False)) if isinstance(raw, dict) else False
            key = raw.get("request_id") if isinstance(raw, dict) else None
            key = key if isinstance(key, str) else f"msg-{message.attributes.get('message_id', message.message_id)}"
            with self._lock:
                self.counts.results += 1
                self.counts.redelivered += attempt > 1
                self.counts.replayed += replayed
                self._by_id.setdefault(key, []).append((attempt, replayed))

    def summary(self) -> AuditCounts:
        with self._lock:
            self.counts.unmarked_duplicate_ids = sum(
                1 for seen in self._by_id.values() if len(seen) > 1 and all(a == 1 and not r for a, r in seen)
            )
            return AuditCounts(**asdict(self.counts))

    def close(self) -> None:
        self._tap.close()


def still_queued(project: str, subscription: str, wanted: set[str], window_s: float) -> set[str]:
    """Which of `wanted` request ids are still in the subscription: pulled and handed straight back.

    Tells "late" from "lost": an unanswered request that is still queued will be answered; one that
    is neither answered nor queued is gone. Leases held by killed workers lapse only after the stream
    ack deadline (60 s), so `window_s` must outlast it for the sweep to see those messages.
    """
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    found: set[str] = set()
    deadline = time.monotonic() + window_s
    try:
        while found != wanted and time.monotonic() < deadline:
            response = subscriber.pull(subscription=path, max_messages=500, timeout=5)
            for received in response.received_messages:
                try:
                    raw = pydantic_core.from_json(received.message.data)
                except ValueError:
                    continue
                if isinstance(raw, dict) and raw.get("request_id") in wanted:
                    found.add(raw["request_id"])
            if response.received_messages:
                subscriber.modify_ack_deadline(
                    subscription=path,
                    ack_ids=[r.ack_id for r in response.received_messages],
                    ack_deadline_seconds=0,
                )
            else:
                time.sleep(1.0)
    finally:
        subscriber.close()
    return found


@dataclass
class ChaosReport:
    command: str
    submitted: int
    ok: int
    error: int
    dead_lettered: int
    #: No answer when the run ended, and not found in the queue either.
    lost: int
    #: No answer when the run ended (lost ones included).
    unanswered: int
    duplicate_results: int
    duplicate_result_ids: int
    redelivered_results: int
    replayed_results: int
    unmarked_duplicate_ids: int
    kills_planned: int
    kills: dict[str, int]
    workers_replaced: int
    peak_workers: int
    duration_s: float
    throughput_per_s: float
    latency_ms: dict[str, float]
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    max_rss_mb: float | None = None
    #: Peak minus the RSS a worker had when serving before the load (workers present at the start).
    max_rss_growth_mb: float | None = None
    error_codes: dict[str, int] = field(default_factory=dict)
    kill_log: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stack_victims(workers: Callable[[], list[Any]]) -> Callable[[], list[Victim]]:
    """Victims from a PoolController's `workers()`: live workers whose log says they are pulling.

    The log line is the only outside sign that a worker finished loading its model and opened its
    stream; it is read once per worker (the head of the file) and remembered."""
    serving_since: dict[int, float] = {}

    def victims() -> list[Victim]:
        now = time.monotonic()
        found = []
        for worker in workers():
            if worker.state != "running":
                continue
            if worker.pid not in serving_since:
                if not _says_started(worker.log_path):
                    continue
                serving_since[worker.pid] = now
            found.append(Victim(worker.pid, now - serving_since[worker.pid]))
        return found

    return victims


def _says_started(log_path: Any) -> bool:
    try:
        with open(log_path, "rb") as log_file:
            return b"worker started" in log_file.read(256_000)
    except OSError:
        return False
