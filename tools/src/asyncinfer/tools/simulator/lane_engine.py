"""Discrete-event model of a pool with priority lanes, Spot stockouts that last, and a fallback pool.

The single-queue engine (engine.py) serves one FIFO backlog; lanes need a serving order, so this
module is a sibling engine over the same model of GCE (the same timing fields of AsyncConfig, the
same billing, the same calendar floors) with three additions:
- requests carry a lane; each lane is its own subscription with its own backlog metric, and every
  autoscaler follows the largest of its lane recommendations (core.lanes.recommended_for_lanes);
- an idle worker fills its batch in the order core.lanes.choose_batch gives (priority first, age
  boost), from the heads of the lanes' queues;
- several pools (a Spot pool, a fallback on-demand pool) watch the same lane metrics, each with its
  own assignments, bounds and autoscaler; stockout windows stop Spot creations in a zone or the
  whole region for hours and reclaim the Spot VMs that ran there.
Everything else is as engine.py describes: metric period and lag, initialization period, scale-in
stabilization and order, Spot preemptions with a notice, redelivery after a nack, per-second
billing with a one-minute minimum.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from asyncinfer.core.lanes import LaneSet, Waiting, choose_batch, lane_policies, recommended_for_lanes
from asyncinfer.core.policy import ScaleInStabilizer, ScalingPolicy
from asyncinfer.tools.simulator.config import AsyncConfig
from asyncinfer.tools.simulator.engine import (
    BOOTING,
    BUSY,
    DRAINING,
    GONE,
    IDLE,
    REDELIVERY_BACKOFF_S,
    reconcile_group,
)
from asyncinfer.tools.simulator.floors import floor_schedule
from asyncinfer.tools.simulator.prices import billed_seconds
from asyncinfer.tools.simulator.traces import Trace

EV_DONE, EV_READY, EV_GONE, EV_PREEMPT, EV_STOCKOUT, EV_RETRY, EV_WAKE, EV_SAMPLE, EV_DECIDE = range(9)


@dataclass(frozen=True)
class Stockout:
    """Spot capacity gone for a while: in one zone of the region, or in all of them.

    A regional MIG creates its VMs in zones that have capacity (target shape ANY), so a zone
    stockout only costs the VMs reclaimed there; a regional one stops every Spot creation (each
    failed creation is retried after AsyncConfig.stockout_retry_s) until it ends. reclaim: GCE takes
    back the Spot VMs running where capacity ran out, at the start (the worst case; each gets the
    usual preemption notice).
    """

    start_s: float
    duration_s: float
    scope: Literal["region", "zone"] = "region"
    zones: int = 3
    reclaim: bool = True

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class PoolDesign:
    """One MIG and its autoscaler: Spot or on-demand, its bounds, its per-lane assignments."""

    name: str
    spot: bool
    max_vms: int
    price_per_hour: float
    assignments: Mapping[str, float]
    min_vms: int = 0
    #: The business calendar's floor applies to this pool (the fallback pool has none).
    calendar_floor: bool = True


@dataclass(frozen=True)
class LaneDesign:
    name: str
    #: Batch timing, boot, metric timing, stabilization, preemptions, calendar: as the simulator knows them.
    base: AsyncConfig
    lanes: LaneSet
    pools: tuple[PoolDesign, ...]
    stockouts: tuple[Stockout, ...] = ()


class _Vm:
    __slots__ = ("batch", "deleting", "done_at", "id", "pool", "requested_at", "state", "version", "zone")

    def __init__(self, vm_id: int, pool: int, requested_at: float, zone: int) -> None:
        self.id = vm_id
        self.pool = pool
        self.requested_at = requested_at
        self.zone = zone
        self.state = BOOTING
        self.version = 0
        self.deleting = False
        self.batch: np.ndarray | None = None
        self.done_at = 0.0


class _Pool:
    def __init__(self, design: PoolDesign, policies: dict[str, ScalingPolicy], stabilization_s: float) -> None:
        self.design = design
        self.policies = policies
        self.stabilizer = ScaleInStabilizer(stabilization_s)
        self.vms: dict[int, _Vm] = {}
        self.idle: list[_Vm] = []
        self.target = 0
        self.pending_retries = 0
        self.ignored_retries = 0
        self.vm_seconds = 0.0
        self.peak_vms = 0
        self.created = 0
        self.failed_creations = 0
        self.preempted = 0
        self.vms_by_minute: list[int] = []


class _LaneRun:
    def __init__(self, design: LaneDesign, trace: Trace, lane_of: np.ndarray) -> None:
        cfg = design.base
        self.design = design
        self.cfg = cfg
        self.lanes = design.lanes.lanes
        self.rng = np.random.default_rng(cfg.seed)
        self.arr = trace.arrivals
        self.n = self.arr.size
        self.lane_of = lane_of
        self.horizon = trace.duration_s
        self.floors = floor_schedule(cfg.calendar, cfg.min_vms, trace.start, trace.duration_s + cfg.drain_limit_s)
        self.lane_idx = [np.flatnonzero(lane_of == k) for k in range(len(self.lanes))]
        self.lane_times = [self.arr[idx].tolist() for idx in self.lane_idx]
        self.arrived = [0] * len(self.lanes)
        self.pulled = [0] * len(self.lanes)
        self.acked = [0] * len(self.lanes)
        self.dead = [0] * len(self.lanes)
        self.redeliver: list[deque[tuple[float, list[int]]]] = [deque() for _ in self.lanes]
        self.completion = np.full(self.n, np.nan)
        self.failed = np.zeros(self.n, dtype=np.int16)
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.wake_at = float("inf")
        self.next_vm_id = 0
        self.samples: list[list[int]] = []
        self.stocked_out_region = 0
        self.stocked_out_zones: dict[int, int] = {}
        self.last_resolved_at = 0.0
        self.last_gone_at = 0.0
        self.priorities = [lane.priority for lane in self.lanes]
        self.goals = [lane.latency_goal_s for lane in self.lanes]
        self.pools = [
            _Pool(p, lane_policies(self._base_policy(p), dict(p.assignments)), cfg.stabilization_s)
            for p in design.pools
        ]

    def _base_policy(self, pool: PoolDesign) -> ScalingPolicy:
        return ScalingPolicy(
            min_replicas=pool.min_vms,
            max_replicas=pool.max_vms,
            throughput_per_replica=self.cfg.throughput_per_vm or self.cfg.batch.full_batch_throughput,
            latency_goal_s=max(self.goals),
            scale_in_stabilization_s=self.cfg.stabilization_s,
            single_instance_assignment=min(pool.assignments.values()),
            reaction_s=self.cfg.reaction_s,
        )

    # --- plumbing -----------------------------------------------------------------------------

    def push(self, t: float, kind: int, ref: int = -1, version: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, ref, version))

    def advance(self, t: float) -> None:
        for k, times in enumerate(self.lane_times):
            i, n = self.arrived[k], len(times)
            while i < n and times[i] <= t:
                i += 1
            self.arrived[k] = i

    # --- workers ------------------------------------------------------------------------------

    def candidates(self, k: int, t: float, limit: int) -> list[int]:
        """The oldest `limit` requests waiting in lane k: ready redeliveries, then new arrivals.
        Within a lane, what was pulled before is older than what was not (FIFO pulls)."""
        out: list[int] = []
        for ready_at, items in self.redeliver[k]:
            if ready_at > t or len(out) >= limit:
                break
            out.extend(items[: limit - len(out)])
        if len(out) < limit:
            start = self.pulled[k]
            end = min(self.arrived[k], start + limit - len(out))
            out.extend(self.lane_idx[k][start:end].tolist())
        return out

    def take(self, k: int, count: int, t: float) -> None:
        """Remove the `count` oldest waiting requests of lane k (what candidates() listed first)."""
        queue = self.redeliver[k]
        while count and queue and queue[0][0] <= t:
            ready_at, items = queue[0]
            if len(items) <= count:
                queue.popleft()
                count -= len(items)
            else:
                queue[0] = (ready_at, items[count:])
                count = 0
        self.pulled[k] += count

    def waiting(self, t: float) -> bool:
        for k in range(len(self.lanes)):
            if self.arrived[k] > self.pulled[k] or (self.redeliver[k] and self.redeliver[k][0][0] <= t):
                return True
        return False

    def dispatch(self, t: float) -> None:
        self.advance(t)
        max_batch = self.cfg.batch.max_batch
        for pool in self.pools:
            while pool.idle and self.waiting(t):
                per_lane = [self.candidates(k, t, max_batch) for k in range(len(self.lanes))]
                flat = [(k, g) for k, items in enumerate(per_lane) for g in items]
                held = [Waiting(self.priorities[k], self.goals[k], float(self.arr[g])) for k, g in flat]
                chosen = choose_batch(held, t, max_batch)
                counts = [0] * len(self.lanes)
                for i in chosen:
                    counts[flat[i][0]] += 1
                for k, c in enumerate(counts):
                    # choose_batch takes a prefix of every lane (oldest first within a lane).
                    self.take(k, c, t)
                vm = pool.idle.pop()
                vm.batch = np.fromiter((flat[i][1] for i in chosen), dtype=np.int64, count=len(chosen))
                vm.state = BUSY
                vm.done_at = t + self.cfg.batch.duration_s(len(chosen))
                self.push(vm.done_at, EV_DONE, vm.id, vm.version)
        if any(pool.idle for pool in self.pools):
            upcoming = min(
                (self.lane_times[k][self.arrived[k]] for k in range(len(self.lanes))
                 if self.arrived[k] < len(self.lane_times[k])),
                default=float("inf"),
            )
            for queue in self.redeliver:
                if queue:
                    upcoming = min(upcoming, queue[0][0])
            if upcoming < self.wake_at:
                self.wake_at = upcoming
                self.push(upcoming, EV_WAKE)

    def resolve(self, batch: np.ndarray, t: float) -> None:
        self.completion[batch] = t
        for k, c in enumerate(np.bincount(self.lane_of[batch], minlength=len(self.lanes))):
            self.acked[k] += int(c)
        self.last_resolved_at = t

    def on_done(self, vm: _Vm, t: float) -> None:
        assert vm.batch is not None
        self.resolve(vm.batch, t)
        vm.batch = None
        if vm.state == BUSY:
            vm.state = IDLE
            self.pools[vm.pool].idle.append(vm)
            self.dispatch(t)

    def hand_back(self, vm: _Vm, t: float) -> None:
        assert vm.batch is not None
        idx = vm.batch
        self.failed[idx] += 1
        dead = self.failed[idx] >= self.cfg.max_delivery_attempts
        for g in idx[dead]:
            self.dead[int(self.lane_of[g])] += 1
        idx = idx[~dead]
        for k in range(len(self.lanes)):
            items = idx[self.lane_of[idx] == k]
            if items.size:
                self.redeliver[k].append((t + REDELIVERY_BACKOFF_S, sorted(items.tolist())))
        if idx.size:
            self.push(t + REDELIVERY_BACKOFF_S, EV_WAKE)
        vm.batch = None
        vm.version += 1

    # --- the MIGs -----------------------------------------------------------------------------

    def spot_blocked(self, zone: int) -> bool:
        return self.stocked_out_region > 0 or self.stocked_out_zones.get(zone, 0) > 0

    def create_vm(self, p: int, t: float) -> None:
        pool = self.pools[p]
        zone = self.next_vm_id % 3
        if pool.design.spot:
            free = [z for z in range(3) if not self.spot_blocked(z)]
            if not free:
                pool.failed_creations += 1
                pool.pending_retries += 1
                self.push(t + self.cfg.stockout_retry_s, EV_RETRY, p)
                return
            zone = free[self.next_vm_id % len(free)]
        vm = _Vm(self.next_vm_id, p, t, zone)
        self.next_vm_id += 1
        pool.vms[vm.id] = vm
        pool.created += 1
        pool.peak_vms = max(pool.peak_vms, len(pool.vms))
        self.push(t + self.cfg.ready_after_s, EV_READY, vm.id, vm.version)
        if pool.design.spot and self.cfg.preemptions_per_vm_hour > 0:
            self.push(t + self.rng.exponential(3600.0 / self.cfg.preemptions_per_vm_hour), EV_PREEMPT, vm.id)

    def find(self, vm_id: int) -> _Vm | None:
        for pool in self.pools:
            vm = pool.vms.get(vm_id)
            if vm is not None:
                return vm
        return None

    def reconcile(self, p: int, t: float) -> None:
        pool = self.pools[p]
        counted = [vm for vm in pool.vms.values() if not vm.deleting]
        plan = reconcile_group(counted, pool.pending_retries, pool.target)
        for _ in range(plan.create):
            self.create_vm(p, t)
        pool.pending_retries -= plan.cancel_retries
        pool.ignored_retries += plan.cancel_retries
        for vm in plan.delete:
            vm.deleting = True
            self.terminate(vm, t, preempted=False)

    def terminate(self, vm: _Vm, t: float, preempted: bool) -> None:
        if vm.state in (DRAINING, GONE):
            return
        pool = self.pools[vm.pool]
        notice = self.cfg.preemption_notice_s
        gone_at = t + notice if preempted else t
        if vm.state == IDLE:
            pool.idle.remove(vm)
        elif vm.state == BUSY:
            if vm.done_at <= t + notice:
                gone_at = gone_at if preempted else vm.done_at
            else:
                self.hand_back(vm, t)
        else:
            vm.version += 1
        vm.state = DRAINING
        self.push(gone_at, EV_GONE, vm.id, int(preempted))

    def on_gone(self, vm: _Vm, t: float, preempted: bool) -> None:
        pool = self.pools[vm.pool]
        if vm.batch is not None:
            self.hand_back(vm, t)
        vm.state = GONE
        del pool.vms[vm.id]
        self.last_gone_at = t
        lifetime = t - vm.requested_at
        if not (preempted and lifetime - self.cfg.preemption_notice_s < 60.0):
            pool.vm_seconds += billed_seconds(lifetime)
        self.reconcile(vm.pool, t)

    def preempt(self, vm: _Vm, t: float) -> None:
        if vm.state in (DRAINING, GONE):
            return
        self.pools[vm.pool].preempted += 1
        self.terminate(vm, t, preempted=True)

    def on_stockout(self, index: int, t: float) -> None:
        """Even index: stockout `index // 2` starts; odd: it ends."""
        stockout = self.design.stockouts[index // 2]
        starting = index % 2 == 0
        step = 1 if starting else -1
        if stockout.scope == "region":
            self.stocked_out_region += step
        else:
            self.stocked_out_zones[0] = self.stocked_out_zones.get(0, 0) + step
        if starting and stockout.reclaim:
            for pool in self.pools:
                if pool.design.spot:
                    for vm in list(pool.vms.values()):
                        if stockout.scope == "region" or vm.zone == 0:
                            self.preempt(vm, t)
        if not starting:
            for p in range(len(self.pools)):
                self.reconcile(p, t)

    # --- the autoscalers ----------------------------------------------------------------------

    def on_sample(self, t: float) -> None:
        self.advance(t)
        self.samples.append([self.arrived[k] - self.acked[k] - self.dead[k] for k in range(len(self.lanes))])
        for pool in self.pools:
            pool.vms_by_minute.append(len(pool.vms))
        self.push(t + self.cfg.metric_lag_s, EV_DECIDE, len(self.samples) - 1)
        self.push(t + self.cfg.metric_period_s, EV_SAMPLE)

    def on_decide(self, t: float, index: int) -> None:
        backlogs = {lane.name: self.samples[index][k] for k, lane in enumerate(self.lanes)}
        calendar_floor = self.floors.at(t)
        for p, pool in enumerate(self.pools):
            floor = calendar_floor if pool.design.calendar_floor else 0
            wanted = recommended_for_lanes(backlogs, pool.policies, floor)
            target = pool.stabilizer.target(t, wanted)
            if target < pool.target and any(
                t - vm.requested_at < self.cfg.initialization_s for vm in pool.vms.values() if not vm.deleting
            ):
                target = pool.target
            pool.target = target
            self.reconcile(p, t)

    # --- the loop -----------------------------------------------------------------------------

    def settled(self, t: float) -> bool:
        if sum(self.acked) + sum(self.dead) != self.n:
            return False
        floor = self.floors.at(t)
        return all(
            len(pool.vms) <= (floor if pool.design.calendar_floor else 0) for pool in self.pools
        )

    def run(self) -> dict[str, Any]:
        self.push(0.0, EV_SAMPLE)
        for i, stockout in enumerate(self.design.stockouts):
            self.push(stockout.start_s, EV_STOCKOUT, 2 * i)
            self.push(stockout.end_s, EV_STOCKOUT, 2 * i + 1)
        hard_end = self.horizon + self.cfg.drain_limit_s
        end = hard_end
        while self.heap:
            t, kind, _, ref, version = heapq.heappop(self.heap)
            if t >= self.horizon and self.settled(t):
                end = max(self.horizon, self.last_resolved_at, self.last_gone_at)
                break
            if t > hard_end:
                break
            if kind == EV_DONE:
                vm = self.find(ref)
                if vm is not None and vm.version == version and vm.batch is not None:
                    self.on_done(vm, t)
            elif kind == EV_WAKE:
                if t >= self.wake_at:
                    self.wake_at = float("inf")
                self.dispatch(t)
            elif kind == EV_READY:
                vm = self.find(ref)
                if vm is not None and vm.version == version and vm.state == BOOTING:
                    vm.state = IDLE
                    self.pools[vm.pool].idle.append(vm)
                    self.dispatch(t)
            elif kind == EV_SAMPLE:
                self.on_sample(t)
            elif kind == EV_DECIDE:
                self.on_decide(t, ref)
            elif kind == EV_GONE:
                vm = self.find(ref)
                if vm is not None:
                    self.on_gone(vm, t, bool(version))
            elif kind == EV_PREEMPT:
                vm = self.find(ref)
                if vm is not None:
                    self.preempt(vm, t)
            elif kind == EV_STOCKOUT:
                self.on_stockout(ref, t)
            elif kind == EV_RETRY:
                pool = self.pools[ref]
                if pool.ignored_retries:
                    pool.ignored_retries -= 1
                else:
                    pool.pending_retries -= 1
                    self.reconcile(ref, t)
        for pool in self.pools:
            for vm in pool.vms.values():
                pool.vm_seconds += billed_seconds(end - vm.requested_at)
        return self.summary(end)

    def summary(self, end: float) -> dict[str, Any]:
        latency = self.completion - self.arr
        lanes = []
        for k, lane in enumerate(self.lanes):
            lat = latency[self.lane_idx[k]]
            done = lat[~np.isnan(lat)]
            requests = int(lat.size)
            met = int(np.count_nonzero(lat <= lane.latency_goal_s))
            lanes.append({
                "lane": lane.name,
                "priority": lane.priority,
                "latency_goal_s": lane.latency_goal_s,
                "requests": requests,
                "answered": int(done.size),
                "errors": requests - int(done.size),
                "late": int(done.size) - met,
                "latency_p50_s": float(np.percentile(done, 50)) if done.size else None,
                "latency_p95_s": float(np.percentile(done, 95)) if done.size else None,
                "latency_p99_s": float(np.percentile(done, 99)) if done.size else None,
                "latency_max_s": float(done.max()) if done.size else None,
                "slo_attainment": met / requests if requests else 1.0,
            })
        pools = []
        for pool in self.pools:
            hours = pool.vm_seconds / 3600
            pools.append({
                "pool": pool.design.name,
                "spot": pool.design.spot,
                "max_vms": pool.design.max_vms,
                "usd_per_vm_hour": pool.design.price_per_hour,
                "assignments": dict(pool.design.assignments),
                "vm_hours": hours,
                "cost_usd": hours * pool.design.price_per_hour,
                "peak_vms": pool.peak_vms,
                "vms_created": pool.created,
                "failed_creations": pool.failed_creations,
                "preempted": pool.preempted,
                # VMs (booting included) at each metric sample: what the study's stockout window shows.
                "vms_by_sample": list(pool.vms_by_minute),
            })
        return {
            "name": self.design.name,
            "cost_usd": sum(p["cost_usd"] for p in pools),
            "vm_hours": sum(p["vm_hours"] for p in pools),
            "lanes": lanes,
            "pools": pools,
            "stockouts": [
                {"start_s": s.start_s, "duration_s": s.duration_s, "scope": s.scope, "reclaim": s.reclaim}
                for s in self.design.stockouts
            ],
            "dead_lettered": sum(self.dead),
            "simulated_until_s": end,
        }


def simulate_lanes(design: LaneDesign, trace: Trace, lane_of: np.ndarray) -> dict[str, Any]:
    """Run a lane design over a trace whose requests are assigned to lanes by `lane_of` (an index
    into design.lanes.lanes, highest priority first, one per arrival)."""
    return simulate_lanes_with_latencies(design, trace, lane_of)[0]


def simulate_lanes_with_latencies(
    design: LaneDesign, trace: Trace, lane_of: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """The summary, and every request's latency (NaN: not answered) in the trace's order."""
    if lane_of.shape != trace.arrivals.shape:
        raise ValueError("lane_of needs one lane index per arrival of the trace.")
    run = _LaneRun(design, trace, lane_of)
    summary = run.run()
    return summary, run.completion - run.arr
