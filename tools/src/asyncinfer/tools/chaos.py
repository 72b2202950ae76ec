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

from asyncinfer.client.pubsub import subscriber_client
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
    #: How many requests had an answer when this kill was sent.
    at_answered: int
    pid: int
    signal: str


class WorkerKiller:
    """Sends SIGKILL and SIGTERM to live workers as the run's answers come in.

    Kills are due at seeded, jittered points of progress (answer counts spread over 10-70 % of the
    requests), not at wall-clock times, and submission waits (`holds`) while a kill is overdue by more
    than `lead` requests: answers cannot run ahead of the kills, so every planned kill lands on a
    worker that holds messages however slow or fast this machine is, or however long a replacement
    takes to start. The signals are shuffled with the seed, so a run is repeatable in what it does. Only
    workers that have served for `min_serving_s` are candidates: killing a process that is still
    importing torch tests the controller's restart, not the queue's redelivery. A worker is signalled
    at most once, because one that got SIGTERM keeps running while it drains.
    """

    def __init__(
        self,
        victims: Callable[[], list[Victim]],
        *,
        sigkills: int,
        sigterms: int,
        seed: int,
        total: int,
        first_fraction: float = 0.1,
        last_fraction: float = 0.7,
        lead: int = 64,
        min_serving_s: float = 1.0,
        send: Callable[[int, int], None] = os.kill,
    ) -> None:
        self._victims = victims
        self._rng = random.Random(seed)
        plan = [signal.SIGKILL] * sigkills + [signal.SIGTERM] * sigterms
        self._rng.shuffle(plan)
        self._plan: list[signal.Signals] = plan
        self.due_at_answered = _progress_points(len(plan), total, first_fraction, last_fraction, self._rng)
        self._lead = lead
        self._min_serving_s = min_serving_s
        self._send = send
        self._started = time.monotonic()
        self._signalled: set[int] = set()
        self._lock = threading.Lock()
        self.kills: list[KillEvent] = []

    @property
    def planned(self) -> int:
        return len(self._plan) + len(self.kills)

    @property
    def done(self) -> bool:
        return not self._plan

    def holds(self, index: int) -> bool:
        """Whether request `index` must wait: the next kill is due and has not happened yet."""
        with self._lock:
            return bool(self._plan) and index >= self.due_at_answered[len(self.kills)] + self._lead

    def tick(self, answered: int) -> None:
        """Kill one worker if one is due at this many answers; cheap enough to call every 50 ms."""
        with self._lock:
            if not self._plan or answered < self.due_at_answered[len(self.kills)]:
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
            at_s = round(time.monotonic() - self._started, 2)
            self.kills.append(KillEvent(at_s, answered, victim.pid, sig.name))
            log.warning("killed a worker", pid=victim.pid, signal=sig.name, at_s=at_s, answered=answered)

    def counts(self) -> dict[str, int]:
        return dict(Counter(k.signal for k in self.kills))


def _progress_points(kills: int, total: int, first: float, last: float, rng: random.Random) -> list[int]:
    """`kills` answer counts evenly spread over [first, last] of `total`, each jittered by up to a
    quarter of the spacing so kills do not line up with batch boundaries."""
    if kills == 0:
        return []
    spacing = (last - first) / max(1, kills - 1) if kills > 1 else 0.0
    points = []
    for k in range(kills):
        centre = first + spacing * k if kills > 1 else (first + last) / 2
        points.append(max(1, round(total * (centre + spacing * rng.uniform(-0.25, 0.25)))))
    return sorted(points)


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
    #: Every result the audit's own subscription received, this run's or not.
    results: int = 0
    #: Results whose request id is one of this run's.
    results_this_run: int = 0
    #: This run's request ids with at least one result: must reach every id answered by a result.
    ids_seen: int = 0
    #: Results that were not a JSON object with a request id (counted, never silently dropped).
    unparseable: int = 0
    #: Failed pulls of the audit's subscription (each one is logged).
    pull_errors: int = 0
    #: Results of a delivery after the first (the message came back: a kill, a nack, a lapsed lease).
    redelivered: int = 0
    #: Results answered from a worker's cache without a second inference.
    replayed: int = 0
    #: Request ids answered more than once where no answer says why (attempt 1, not replayed): the
    #: "processed twice silently" case the design must avoid.
    unmarked_duplicate_ids: int = 0
    #: Ok results of this run (duplicates included) and how many name the drawing's true class.
    ok_results: int = 0
    correct_results: int = 0

    @property
    def accuracy(self) -> float | None:
        return round(self.correct_results / self.ok_results, 4) if self.ok_results else None


@dataclass(frozen=True)
class _Seen:
    attempt: int
    replayed: bool
    status: str
    label: str | None


class ResultAudit:
    """Its own subscription on the results topic, so every result is seen, not only the first per id
    (the client keeps the first answer and merely counts the rest). `summary(labels)` checks each of
    this run's results against the drawing's true class, and says how much the audit saw: an audit
    that saw nothing must not read as "no duplicates"."""

    def __init__(self, project: str, results_topic: str) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[_Seen]] = {}
        self._results = 0
        self._unparseable = 0
        self._tap = SubscriptionTap.on_topic(project, results_topic, "audit", self._on_results).start()

    def _on_results(self, messages: list[PubsubMessage], _: float) -> None:
        for message in messages:
            try:
                raw = pydantic_core.from_json(message.data)
            except ValueError:
                raw = None
            request_id = raw.get("request_id") if isinstance(raw, dict) else None
            with self._lock:
                self._results += 1
                if not isinstance(raw, dict) or not isinstance(request_id, str):
                    self._unparseable += 1
                    log.warning("audit: a result without a readable request id",
                                message_id=message.message_id, size=len(message.data))
                    continue
                output = raw.get("output")
                label = output.get("label") if isinstance(output, dict) else None
                self._by_id.setdefault(request_id, []).append(_Seen(
                    attempt=int(raw.get("delivery_attempt", 1)),
                    replayed=bool(raw.get("replayed", False)),
                    status=str(raw.get("status")),
                    label=label if isinstance(label, str) else None,
                ))

    def summary(self, labels: dict[str, str]) -> AuditCounts:
        """What the audit saw of the run whose request ids and true classes are `labels`."""
        with self._lock:
            mine = {r: seen for r, seen in self._by_id.items() if r in labels}
            all_seen = [(r, s) for r, seen in mine.items() for s in seen]
            return AuditCounts(
                results=self._results,
                results_this_run=len(all_seen),
                ids_seen=len(mine),
                unparseable=self._unparseable,
                pull_errors=self._tap.pull_errors,
                redelivered=sum(1 for _, s in all_seen if s.attempt > 1),
                replayed=sum(1 for _, s in all_seen if s.replayed),
                unmarked_duplicate_ids=sum(1 for seen in mine.values() if _silent_duplicate(seen)),
                ok_results=sum(1 for _, s in all_seen if s.status == "ok"),
                correct_results=sum(1 for r, s in all_seen if s.status == "ok" and s.label == labels[r]),
            )

    def close(self) -> None:
        self._tap.close()


def _silent_duplicate(seen: list[_Seen]) -> bool:
    return len(seen) > 1 and all(s.attempt == 1 and not s.replayed for s in seen)


def still_queued(project: str, subscription: str, wanted: set[str], window_s: float) -> set[str]:
    """Which of `wanted` request ids are still in the subscription: pulled and handed straight back.

    Tells "late" from "lost": an unanswered request that is still queued will be answered; one that
    is neither answered nor queued is gone. Leases held by killed workers lapse only after their last
    extension (30 s), so `window_s` must outlast that for the sweep to see those messages.
    """
    subscriber = subscriber_client()
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
    #: The queue this run used (fresh per run unless --queue was given) and the nonce in its ids.
    queue: str = ""
    run_id: str = ""
    #: First answers that name the drawing's true class, among ok ones; the threshold the run must meet.
    accuracy: float | None = None
    min_accuracy: float = 0.0
    #: What the audit's own subscription saw (every result, duplicates included).
    audit: dict[str, Any] = field(default_factory=dict)
    #: Why the run failed, in words; empty when it passed.
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def audit_failures(audit: AuditCounts, answered_by_results: int, min_accuracy: float) -> list[str]:
    """Why an audit does not vouch for a run: it saw less than it should, or what it saw is wrong."""
    found = []
    if audit.ids_seen < answered_by_results:
        found.append(
            f"the audit saw results for only {audit.ids_seen} of the {answered_by_results} requests the client "
            f"has results for ({audit.pull_errors} failed pulls): its duplicate counts cannot be trusted"
        )
    if audit.unparseable:
        found.append(f"{audit.unparseable} results had no readable request id")
    if audit.unmarked_duplicate_ids:
        found.append(f"{audit.unmarked_duplicate_ids} request ids were answered twice without saying why")
    if audit.accuracy is not None and audit.accuracy < min_accuracy:
        found.append(f"accuracy over every ok result {audit.accuracy:.2%} is below {min_accuracy:.0%}")
    return found


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
