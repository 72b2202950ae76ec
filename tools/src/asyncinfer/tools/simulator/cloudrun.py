"""Cloud Run with an L4 GPU per instance behind a Pub/Sub push subscription (config.CloudRunConfig).

Discrete events over arrivals, instance starts and batch completions:
- every message is pushed as one request; it waits in the subscription until an instance has a
  free slot (`max_batch` concurrent requests per instance);
- a free ready instance takes what waits, up to max_batch, as one batch (batch timing as the pool's);
- on every arrival and completion Cloud Run's autoscaler wants ceil(in flight / (max_batch x 0.6))
  instances (the documented 60 % concurrency target), between min and max instances; a new one
  serves after start_s;
- an instance idle for idle_s is removed; it is billed from its start until then (instance-based
  billing: GPU, vCPU and memory for its whole life), on demand (Cloud Run has no Spot).
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from asyncinfer.tools.simulator.config import CloudRunConfig
from asyncinfer.tools.simulator.results import RunResult, Timeline
from asyncinfer.tools.simulator.traces import Trace

_READY, _DONE, _IDLE_CHECK = range(3)


class _Instance:
    __slots__ = ("batch", "busy", "ended_at", "idle_since", "ready", "started_at")

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.ended_at: float | None = None
        self.ready = False
        self.busy = False
        self.idle_since = started_at
        self.batch: list[int] = []


def simulate_cloud_run(config: CloudRunConfig, trace: Trace) -> RunResult:
    arrivals: list[float] = trace.arrivals.tolist()
    n = len(arrivals)
    latency = np.full(n, np.nan)
    dispatched = np.full(n, np.nan)
    queue: deque[int] = deque()
    instances: list[_Instance] = []
    alive: dict[int, _Instance] = {}  # started and not removed, in start order
    heap: list[tuple[float, int, int]] = []
    per_instance = config.max_batch
    in_service = 0
    peak = 0

    def live() -> list[int]:
        return list(alive)

    def start(t: float) -> None:
        instances.append(_Instance(t))
        alive[len(instances) - 1] = instances[-1]
        heapq.heappush(heap, (t + config.start_s, _READY, len(instances) - 1))

    def scale(t: float) -> None:
        nonlocal peak
        wanted = math.ceil((len(queue) + in_service) / (per_instance * config.target_concurrency))
        wanted = min(config.max_instances, max(config.min_instances, wanted))
        for _ in range(wanted - len(alive)):
            start(t)
        peak = max(peak, len(alive))

    def dispatch(t: float) -> None:
        nonlocal in_service
        for k in live():
            if not queue:
                return
            inst = instances[k]
            if inst.ready and not inst.busy:
                inst.batch = [queue.popleft() for _ in range(min(per_instance, len(queue)))]
                inst.busy = True
                in_service += len(inst.batch)
                dispatched[inst.batch] = t
                heapq.heappush(heap, (t + config.batch.duration_s(len(inst.batch)), _DONE, k))

    for _ in range(config.min_instances):
        start(0.0)
    i = 0
    while i < n or heap:
        if i < n and (not heap or arrivals[i] <= heap[0][0]):
            t = arrivals[i]
            queue.append(i)
            i += 1
            scale(t)
            dispatch(t)
            continue
        t, kind, k = heapq.heappop(heap)
        inst = instances[k]
        if inst.ended_at is not None:
            continue
        if kind == _READY:
            inst.ready = True
            inst.idle_since = t
            heapq.heappush(heap, (t + config.idle_s, _IDLE_CHECK, k))
            dispatch(t)
        elif kind == _DONE:
            for r in inst.batch:
                latency[r] = t - arrivals[r]
            in_service -= len(inst.batch)
            inst.batch, inst.busy, inst.idle_since = [], False, t
            heapq.heappush(heap, (t + config.idle_s, _IDLE_CHECK, k))
            dispatch(t)
            scale(t)
        elif (
            kind == _IDLE_CHECK
            and not inst.busy
            and t - inst.idle_since >= config.idle_s - 1e-9
            and len(alive) > config.min_instances
        ):
            inst.ended_at = t
            del alive[k]
    end = max(trace.duration_s, *(inst.ended_at or 0.0 for inst in instances)) if instances else trace.duration_s
    for inst in instances:
        if inst.ended_at is None:
            inst.ended_at = end  # min instances: billed to the end
    seconds = sum(inst.ended_at - inst.started_at for inst in instances if inst.ended_at is not None)
    t_s = np.arange(0.0, end, 60.0)
    starts = np.sort(np.asarray([inst.started_at for inst in instances]))
    ends = np.sort(np.asarray([inst.ended_at for inst in instances]))
    count = np.searchsorted(starts, t_s, side="right") - np.searchsorted(ends, t_s, side="right")
    waiting = np.searchsorted(np.asarray(arrivals), t_s, side="right") - np.searchsorted(
        np.sort(dispatched[~np.isnan(dispatched)]), t_s, side="right"
    )
    unanswered = int(np.count_nonzero(np.isnan(latency)))
    return RunResult(
        name=config.name,
        kind="cloud-run",
        arrivals=trace.arrivals,
        latency_s=latency,
        latency_goal_s=config.latency_goal_s,
        errors=unanswered,
        error_breakdown={"unanswered_at_end": unanswered},
        vm_seconds=seconds,
        usd_per_vm_hour=config.hourly_price,
        peak_vms=peak,
        timeline=Timeline(
            t_s=t_s, backlog=waiting, vms=count, ready_vms=count, floor=np.full(t_s.size, config.min_instances)
        ),
        end_s=end,
        extra={"instances_started": len(instances), "start_s": config.start_s, "idle_s": config.idle_s,
               "spot": False},
    )
