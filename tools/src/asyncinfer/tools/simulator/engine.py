"""Discrete-event model of one asyncinfer pool on GCE: Pub/Sub subscription, autoscaler, MIG, VMs.

The decisions are the shared policy's (recommended_workers, ScaleInStabilizer, the compiled
schedules through active_floor); this module models only what happens around them on GCE:
- num_undelivered_messages is sampled every metric_period_s and reaches the autoscaler
  metric_lag_s later (up to 2 min per the docs);
- scale-in: the shared policy's stabilizer, then GCE's scale-in control as the components deploy
  it (at most scale_in_max_vms below the highest target of the trailing scale_in_window_s);
- the autoscaler sets the MIG's target size; the MIG creates VMs (each creation may hit a stockout
  and be retried later) and recreates preempted ones; scale-in takes booting VMs first, then idle
  ones, then busy ones, which hand back their batch like a preempted worker does;
- a VM is ready ready_after_s after it is requested (baked image or not);
- a Spot VM is preempted after an exponential lifetime; with 30 s of notice its worker finishes the
  batch if it can, otherwise nacks it (redelivered after the subscription's retry backoff);
- a ready worker pulls up to max_batch waiting requests the moment it is idle (streaming pull; the
  batcher's max_wait of milliseconds is negligible against minutes of queueing);
- billing runs from the request for a VM until it is gone, per second, one-minute minimum; a Spot
  VM preempted within its first minute is not billed;
- optional faster wake: a waker raises the floor to 1 for hold_s, delay_s after a message reaches an
  empty pool; a standby pool of stopped VMs is started (standby.start_s) instead of creating VMs,
  and each one used is replaced by a VM that boots and stops (billed for its boot).

Events are kept in a heap; a week of ~300k requests is a few hundred thousand events.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from asyncinfer.core.policy import ScaleInStabilizer, recommended_workers
from asyncinfer.tools.simulator import assumptions as assumed
from asyncinfer.tools.simulator.config import AsyncConfig
from asyncinfer.tools.simulator.floors import FloorSchedule, floor_schedule
from asyncinfer.tools.simulator.prices import billed_seconds
from asyncinfer.tools.simulator.results import RunResult, Timeline
from asyncinfer.tools.simulator.traces import Trace

BOOTING, IDLE, BUSY, DRAINING, GONE = range(5)


class GroupVm(Protocol):
    """What reconciling a group needs to know of one of its VMs."""

    state: int
    requested_at: float
    done_at: float


VmT = TypeVar("VmT", bound=GroupVm)


@dataclass(frozen=True)
class GroupChange(Generic[VmT]):
    """How a MIG moves to its target size: VMs to create, pending re-creations to drop, VMs to delete."""

    create: int = 0
    cancel_retries: int = 0
    delete: tuple[VmT, ...] = ()


def reconcile_group(counted: Sequence[VmT], pending_retries: int, target: int) -> GroupChange[VmT]:
    """GCE's resize of a group: `counted` are its VMs not already chosen for deletion, `pending_retries`
    the re-creations it still owes (after a stockout). A surplus first drops owed re-creations, then
    deletes the VMs it loses least by."""
    have = len(counted) + pending_retries
    if target > have:
        return GroupChange(create=target - have)
    surplus = have - target
    cancelled = min(surplus, pending_retries)
    surplus -= cancelled
    if surplus <= 0:
        return GroupChange(cancel_retries=cancelled)
    # Booting VMs serve nobody yet, idle ones hold nothing; busy ones last, soonest done first.
    order = {BOOTING: 0, IDLE: 1, BUSY: 2}
    candidates = sorted(
        (vm for vm in counted if vm.state in order),
        key=lambda vm: (order[vm.state], -vm.requested_at if vm.state == BOOTING else vm.done_at),
    )
    return GroupChange(cancel_retries=cancelled, delete=tuple(candidates[:surplus]))

# Event kinds double as the order of events at one instant: work finishes and VMs come up before
# the metric is sampled, and a sample is taken before the autoscaler acts on it.
EV_DONE, EV_READY, EV_GONE, EV_PREEMPT, EV_RETRY, EV_WAKE, EV_SAMPLE, EV_DECIDE, EV_WAKER_CHECK, EV_WAKER_ACT, \
    EV_REPLENISH = range(11)

#: Pub/Sub's minimum retry backoff in the queue topology: a nacked message is redelivered this late.
REDELIVERY_BACKOFF_S = assumed.REDELIVERY_BACKOFF_S.value


class ScaleInControl:
    """GCE's scale-in control: the target may not drop more than `max_vms` below the highest
    target of the trailing window, so VMs leave at most `max_vms` per window (the Compute API's
    AutoscalingPolicyScaleInControl: 'VMs that can be deducted from the peak recommendation
    during the window'). It acts after the stabilization period; scale-out is never held back."""

    def __init__(self, max_vms: int | None, window_s: float) -> None:
        self._max_vms = max_vms
        self._window_s = window_s
        self._history: deque[tuple[float, int]] = deque()

    def limit(self, now_s: float, target: int) -> int:
        if self._max_vms is None:
            return target
        while self._history and self._history[0][0] < now_s - self._window_s:
            self._history.popleft()
        peak = max((size for _, size in self._history), default=0)
        applied = max(target, peak - self._max_vms)
        self._history.append((now_s, applied))
        return applied


class _Vm:
    __slots__ = ("deleting", "done_at", "extra", "id", "n", "requested_at", "slot", "state", "version")

    def __init__(self, vm_id: int, requested_at: float) -> None:
        self.id = vm_id
        self.requested_at = requested_at
        self.state = BOOTING
        #: Bumped whenever pending READY/DONE events of this VM must be ignored.
        self.version = 0
        #: The autoscaler chose it for scale-in: it no longer counts towards the target size.
        self.deleting = False
        self.slot = -1
        self.extra: np.ndarray | None = None
        self.n = 0
        self.done_at = 0.0


@dataclass(frozen=True)
class StopRule:
    """Stop a run as soon as it provably fails a goal (a search needs no more of it).

    A request is a sure miss once it was answered after the goal, dead-lettered, or is still waiting
    unpulled after the goal has passed. The run stops when sure misses reach `misses`, or at the
    first dead letter with `errors`. A stopped run's unanswered requests count as errors, so its
    summary fails the goal too; everything up to the stop is exactly the full run's.
    """

    misses: int
    errors: bool = False


class _AsyncRun:
    def __init__(self, config: AsyncConfig, trace: Trace, stop: StopRule | None = None) -> None:
        self.cfg = config
        self.stop = stop
        self.stopped_at: float | None = None
        self.late_done = 0
        # Rounding must not count a request that is exactly on time: the count stays a lower bound.
        self.late_cut_s = config.latency_goal_s + 1e-6
        self.policy = config.policy()
        self.stabilizer = ScaleInStabilizer(config.stabilization_s)
        self.scale_in = ScaleInControl(config.scale_in_max_vms, config.scale_in_window_s)
        self.waker_until = -1.0
        self.waker_armed = False
        self.standby_free = config.standby.size if config.standby is not None else 0
        self.floors: FloorSchedule = floor_schedule(
            config.calendar, config.min_vms, trace.start, trace.duration_s + config.drain_limit_s
        )
        self.rng = np.random.default_rng(config.seed)
        self.arrivals = trace.arrivals
        self.arr: list[float] = trace.arrivals.tolist()
        self.n = len(self.arr)
        self.horizon = trace.duration_s
        self.max_batch = config.batch.max_batch
        self.fixed_s = config.batch.fixed_s
        self.per_item_s = config.batch.per_item_s
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0

        self.arrived = 0  # requests published so far
        self.pulled = 0  # requests delivered at least once, in arrival order
        self.acked = 0
        self.dead = 0
        self.last_resolved_at = 0.0
        self.last_gone_at = 0.0
        self.redeliver: deque[tuple[float, np.ndarray]] = deque()
        self.failed_deliveries = np.zeros(self.n, dtype=np.int16)
        # Batches taken from the head of the queue: contiguous ranges in order, completion time each.
        self.range_start: list[int] = []
        self.range_len: list[int] = []
        self.range_time: list[float] = []
        self.extras_done: list[tuple[np.ndarray, float]] = []

        self.vms: dict[int, _Vm] = {}
        self.idle: list[_Vm] = []
        self.next_vm_id = 0
        self.target = 0
        self.peak_recommended = 0
        self.pending_retries = 0
        self.ignored_retries = 0
        self.wake_at = float("inf")
        self.vm_seconds = 0.0
        self.peak_vms = 0
        self.counters = {"vms_created": 0, "preemptions": 0, "stockouts": 0, "redelivered": 0,
                         "standby_starts": 0, "waker_wakes": 0}

        self.samples: list[int] = []
        self.tl_t: list[float] = []
        self.tl_backlog: list[int] = []
        self.tl_vms: list[int] = []
        self.tl_ready: list[int] = []
        self.tl_floor: list[int] = []

    # --- plumbing -----------------------------------------------------------------------------

    def push(self, t: float, kind: int, ref: int = -1, version: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, ref, version))

    def advance_arrivals(self, t: float) -> None:
        arr, i, n = self.arr, self.arrived, self.n
        while i < n and arr[i] <= t:
            i += 1
        self.arrived = i

    # --- workers ------------------------------------------------------------------------------

    def dispatch(self, t: float) -> None:
        """Idle workers pull what is waiting; if some stay idle, wake them at the next arrival."""
        self.advance_arrivals(t)
        max_batch, fixed_s, per_item_s = self.max_batch, self.fixed_s, self.per_item_s
        redeliver = self.redeliver
        while self.idle:
            ready_redelivery = bool(redeliver) and redeliver[0][0] <= t
            if self.arrived == self.pulled and not ready_redelivery:
                break
            vm = self.idle.pop()
            room = max_batch
            parts: list[np.ndarray] = []
            while room and redeliver and redeliver[0][0] <= t:
                at, idx = redeliver[0]
                if idx.size <= room:
                    redeliver.popleft()
                    parts.append(idx)
                    room -= idx.size
                else:
                    parts.append(idx[:room])
                    redeliver[0] = (at, idx[room:])
                    room = 0
            take = min(room, self.arrived - self.pulled)
            vm.slot = -1
            if take:
                vm.slot = len(self.range_len)
                self.range_start.append(self.pulled)
                self.range_len.append(take)
                self.range_time.append(float("nan"))
                self.pulled += take
            vm.extra = np.concatenate(parts) if parts else None
            vm.n = take + (vm.extra.size if vm.extra is not None else 0)
            vm.state = BUSY
            vm.done_at = t + fixed_s + vm.n * per_item_s  # BatchTiming.duration_s, inlined: hot path
            self.push(vm.done_at, EV_DONE, vm.id, vm.version)
        if self.idle:
            upcoming = self.arr[self.arrived] if self.arrived < self.n else float("inf")
            if redeliver:
                upcoming = min(upcoming, redeliver[0][0])
            if upcoming < self.wake_at:
                self.wake_at = upcoming
                self.push(upcoming, EV_WAKE)

    def on_done(self, vm: _Vm, t: float) -> None:
        if vm.slot >= 0:
            self.range_time[vm.slot] = t
            if self.stop is not None:
                start = self.range_start[vm.slot]
                end = start + self.range_len[vm.slot]
                self.late_done += bisect_left(self.arr, t - self.late_cut_s, start, end) - start
        if vm.extra is not None:
            self.extras_done.append((vm.extra, t))
            if self.stop is not None:
                self.late_done += int(np.count_nonzero(t - self.arrivals[vm.extra] > self.late_cut_s))
        self.acked += vm.n
        self.last_resolved_at = t
        vm.n, vm.slot, vm.extra = 0, -1, None
        if vm.state == BUSY:
            vm.state = IDLE
            self.idle.append(vm)
            self.dispatch(t)
        # A draining VM finished its batch within its notice; its GONE event is already queued.

    def hand_back(self, vm: _Vm, t: float) -> None:
        """The worker nacks its batch: redelivered after the backoff, or dead-lettered."""
        parts = []
        if vm.slot >= 0:
            start = self.range_start[vm.slot]
            parts.append(np.arange(start, start + self.range_len[vm.slot]))
        if vm.extra is not None:
            parts.append(vm.extra)
        idx = np.concatenate(parts)
        self.failed_deliveries[idx] += 1
        dead = self.failed_deliveries[idx] >= self.cfg.max_delivery_attempts
        if dead.any():
            self.dead += int(dead.sum())
            self.last_resolved_at = t
            idx = idx[~dead]
        if idx.size:
            self.counters["redelivered"] += int(idx.size)
            self.redeliver.append((t + REDELIVERY_BACKOFF_S, idx))
            self.push(t + REDELIVERY_BACKOFF_S, EV_WAKE)
        vm.n, vm.slot, vm.extra = 0, -1, None
        vm.version += 1  # its DONE event must not complete what was handed back

    # --- the MIG ------------------------------------------------------------------------------

    def create_vm(self, t: float) -> None:
        if self.cfg.stockout_probability and self.rng.random() < self.cfg.stockout_probability:
            self.counters["stockouts"] += 1
            self.pending_retries += 1
            self.push(t + self.cfg.stockout_retry_s, EV_RETRY)
            return
        vm = _Vm(self.next_vm_id, t)
        self.next_vm_id += 1
        self.vms[vm.id] = vm
        self.counters["vms_created"] += 1
        self.peak_vms = max(self.peak_vms, len(self.vms))
        ready_after = self.cfg.ready_after_s
        if self.standby_free:
            # Started from the standby pool; the MIG replenishes it with a VM that boots and stops.
            assert self.cfg.standby is not None
            self.standby_free -= 1
            self.counters["standby_starts"] += 1
            ready_after = self.cfg.standby.start_s
            self.vm_seconds += billed_seconds(self.cfg.ready_after_s)
            self.push(t + self.cfg.ready_after_s, EV_REPLENISH)
        self.push(t + ready_after, EV_READY, vm.id, vm.version)
        if self.cfg.spot and self.cfg.preemptions_per_vm_hour > 0:
            lifetime = self.rng.exponential(3600.0 / self.cfg.preemptions_per_vm_hour)
            self.push(t + lifetime, EV_PREEMPT, vm.id)

    def counted(self) -> list[_Vm]:
        return [vm for vm in self.vms.values() if not vm.deleting]

    def reconcile(self, t: float) -> None:
        """Bring the MIG to its target size: create, or delete the cheapest VMs to lose."""
        plan = reconcile_group(self.counted(), self.pending_retries, self.target)
        for _ in range(plan.create):
            self.create_vm(t)
        self.pending_retries -= plan.cancel_retries
        self.ignored_retries += plan.cancel_retries
        for vm in plan.delete:
            vm.deleting = True
            self.terminate(vm, t, preempted=False)

    def terminate(self, vm: _Vm, t: float, preempted: bool) -> None:
        """SIGTERM: the worker stops pulling and finishes its batch within the notice, or nacks it."""
        if vm.state in (DRAINING, GONE):
            return
        notice = self.cfg.preemption_notice_s
        gone_at = t + notice if preempted else t
        if vm.state == IDLE:
            self.idle.remove(vm)
        elif vm.state == BUSY:
            if vm.done_at <= t + notice:
                # It finishes within the notice; a deleted VM goes once done, a preempted one at
                # the end of its notice either way.
                gone_at = gone_at if preempted else vm.done_at
            else:
                self.hand_back(vm, t)
        else:  # BOOTING: its READY event must be ignored
            vm.version += 1
        vm.state = DRAINING
        self.push(gone_at, EV_GONE, vm.id)

    def on_gone(self, vm: _Vm, t: float, preempted_at: float | None) -> None:
        if vm.n:  # a batch still held when the VM is stopped goes back to the queue
            self.hand_back(vm, t)
        vm.state = GONE
        del self.vms[vm.id]
        self.last_gone_at = t
        lifetime = t - vm.requested_at
        if preempted_at is None:
            lifetime += self.cfg.billing_tail_s
        if not (preempted_at is not None and preempted_at - vm.requested_at < assumed.BILLING_MINIMUM_S.value):
            self.vm_seconds += billed_seconds(lifetime)
        self.reconcile(t)
        self.arm_waker(t)  # the MIG recreates a preempted VM while its target still asks for it

    # --- the autoscaler -----------------------------------------------------------------------

    def on_sample(self, t: float) -> None:
        self.advance_arrivals(t)
        backlog = self.arrived - self.acked - self.dead  # unacked, in-flight batches included
        index = len(self.samples)
        self.samples.append(backlog)
        self.tl_t.append(t)
        self.tl_backlog.append(backlog)
        self.tl_vms.append(len(self.vms))
        self.tl_ready.append(sum(1 for vm in self.vms.values() if vm.state in (IDLE, BUSY)))
        self.tl_floor.append(self.floors.at(t))
        self.push(t + self.cfg.metric_lag_s, EV_DECIDE, index)
        self.push(t + self.cfg.metric_period_s, EV_SAMPLE)

    def fails_goal(self, t: float) -> bool:
        """Whether the stop rule's limit is reached: the run can no longer meet the goal."""
        rule = self.stop
        if rule is None:
            return False
        if rule.errors and self.dead:
            return True
        overdue = max(0, bisect_left(self.arr, t - self.late_cut_s) - self.pulled)
        return self.late_done + overdue + self.dead >= rule.misses

    # --- the waker --------------------------------------------------------------------------------

    def arm_waker(self, t: float) -> None:
        """An empty pool: the next message to arrive wakes it (the waker sees every message)."""
        if self.cfg.waker is None or self.waker_armed or self.counted() or self.pending_retries:
            return
        nxt = bisect_left(self.arr, t)
        if nxt < self.n:
            self.waker_armed = True
            self.push(max(t, self.arr[nxt]), EV_WAKER_CHECK)

    def on_waker_check(self, t: float) -> None:
        self.waker_armed = False
        if self.counted() or self.pending_retries:
            return  # the autoscaler got there first
        assert self.cfg.waker is not None
        self.push(t + self.cfg.waker.delay_s, EV_WAKER_ACT)

    def on_waker_act(self, t: float) -> None:
        """min_replicas is 1 until hold_s from now: the autoscaler recommends at least 1 at once."""
        assert self.cfg.waker is not None
        self.counters["waker_wakes"] += 1
        self.waker_until = t + self.cfg.waker.hold_s
        floor = self.floor_at(t)
        wanted = max(floor, recommended_workers(0, self.policy, floor))
        target = max(self.target, self.stabilizer.target(t, wanted))
        self.target = self.scale_in.limit(t, target)
        self.reconcile(t)
        self.arm_waker(t)

    def floor_at(self, t: float) -> int:
        floor = self.floors.at(t)
        return max(floor, 1) if t < self.waker_until else floor

    def on_decide(self, t: float, sample_index: int) -> None:
        floor = self.floor_at(t)
        wanted = recommended_workers(self.samples[sample_index], self.policy, floor)
        self.peak_recommended = max(self.peak_recommended, wanted)
        target = self.stabilizer.target(t, wanted)
        if target < self.target and any(
            t - vm.requested_at < self.cfg.initialization_s for vm in self.counted()
        ):
            # Within the initialization period GCE does not act on a scale-in; it waits for the
            # new VMs to settle, which is why the period should match the real boot time.
            target = self.target
        self.target = self.scale_in.limit(t, target)
        self.reconcile(t)

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.push(0.0, EV_SAMPLE)
        self.arm_waker(0.0)
        hard_end = self.horizon + self.cfg.drain_limit_s
        preempted_at: dict[int, float] = {}
        end = hard_end
        while self.heap:
            t, kind, _, ref, version = heapq.heappop(self.heap)
            if (
                t >= self.horizon
                and self.acked + self.dead == self.n
                and len(self.vms) <= self.floors.at(t)
            ):
                # All answered and the pool is back at its floor: what follows costs the same in
                # every design (nothing, or the floor), so the bill stops here.
                end = max(self.horizon, self.last_resolved_at, self.last_gone_at)
                break
            if t > hard_end:
                break
            if kind == EV_DONE:
                vm = self.vms.get(ref)
                if vm is not None and vm.version == version and vm.n:
                    self.on_done(vm, t)
            elif kind == EV_WAKE:
                if t >= self.wake_at:
                    self.wake_at = float("inf")
                self.dispatch(t)
            elif kind == EV_READY:
                vm = self.vms.get(ref)
                if vm is not None and vm.version == version and vm.state == BOOTING:
                    vm.state = IDLE
                    self.idle.append(vm)
                    self.dispatch(t)
            elif kind == EV_SAMPLE:
                self.on_sample(t)
                if self.fails_goal(t):
                    self.stopped_at = end = t
                    break
            elif kind == EV_DECIDE:
                self.on_decide(t, ref)
            elif kind == EV_GONE:
                vm = self.vms.get(ref)
                if vm is not None:
                    self.on_gone(vm, t, preempted_at.pop(ref, None))
            elif kind == EV_PREEMPT:
                vm = self.vms.get(ref)
                if vm is not None and vm.state not in (DRAINING, GONE):
                    self.counters["preemptions"] += 1
                    preempted_at[ref] = t
                    self.terminate(vm, t, preempted=True)
            elif kind == EV_WAKER_CHECK:
                self.on_waker_check(t)
            elif kind == EV_WAKER_ACT:
                self.on_waker_act(t)
            elif kind == EV_REPLENISH:
                self.standby_free += 1
            elif kind == EV_RETRY:
                if self.ignored_retries:
                    self.ignored_retries -= 1
                else:
                    self.pending_retries -= 1
                    self.reconcile(t)
        for vm in self.vms.values():
            self.vm_seconds += billed_seconds(end - vm.requested_at)
        return self.result(end)

    def result(self, end: float) -> RunResult:
        completion = np.full(self.n, np.nan)
        if self.range_len:
            completion[: self.pulled] = np.repeat(
                np.asarray(self.range_time), np.asarray(self.range_len, dtype=np.int64)
            )
        for idx, t in self.extras_done:
            completion[idx] = t
        latency = completion - self.arrivals
        # Requests that found no ready worker at the last metric sample before them: cold starts.
        ready = np.asarray(self.tl_ready)
        sample = np.minimum((self.arrivals // self.cfg.metric_period_s).astype(np.int64), ready.size - 1)
        cold = latency[ready[sample] == 0] if ready.size else latency[:0]
        cold_done = cold[~np.isnan(cold)]
        unanswered = self.n - self.acked - self.dead
        timeline = Timeline(
            t_s=np.asarray(self.tl_t),
            backlog=np.asarray(self.tl_backlog),
            vms=np.asarray(self.tl_vms),
            ready_vms=np.asarray(self.tl_ready),
            floor=np.asarray(self.tl_floor),
        )
        hours = end / 3600.0
        fixed = self.cfg.overhead_usd_per_hour * hours
        if self.cfg.waker is not None:
            fixed += self.n * self.cfg.waker.usd_per_million / 1e6
        if self.cfg.standby is not None:
            fixed += self.cfg.standby.usd_per_hour * hours
        return RunResult(
            name=self.cfg.name,
            kind="async",
            arrivals=self.arrivals,
            latency_s=latency,
            latency_goal_s=self.cfg.latency_goal_s,
            errors=self.dead + unanswered,
            error_breakdown={"dead_lettered": self.dead, "unanswered_at_end": unanswered},
            vm_seconds=self.vm_seconds,
            usd_per_vm_hour=self.cfg.hourly_price,
            peak_vms=self.peak_vms,
            timeline=timeline,
            end_s=end,
            fixed_usd=fixed,
            extra={
                **self.counters,
                "peak_recommended": self.peak_recommended,
                "cold_requests": int(cold.size),
                "cold_latency_p50_s": float(np.median(cold_done)) if cold_done.size else None,
                "single_instance_assignment": self.policy.assignment,
                "ready_after_s": self.cfg.ready_after_s,
                "spot": self.cfg.spot,
                "baked": self.cfg.baked,
                "reaction_s": self.cfg.reaction_s,
                "stopped_at_s": self.stopped_at,
            },
        )


def simulate_async(config: AsyncConfig, trace: Trace, stop: StopRule | None = None) -> RunResult:
    """Run one asyncinfer pool over a trace; with `stop`, only until it provably fails the goal."""
    return _AsyncRun(config, trace, stop).run()
