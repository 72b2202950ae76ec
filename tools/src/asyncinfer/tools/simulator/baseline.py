"""The synchronous design asyncinfer replaced: always-on servers behind a load balancer.

Each server works on `concurrency` requests at once, each taking the full per-request service time
(no batching: a synchronous API answers one caller at a time). The load balancer keeps one FIFO
queue of at most queue_limit_per_server x servers waiting requests and rejects beyond that (503).
A caller gives up after timeout_s: a request still waiting then is dropped without using a server
(generous to this design: many servers would still work on it), and one that finishes later than
timeout_s used its server but counts as an error all the same. Overload therefore turns into
errors, never into a longer queue, which is the difference the seed measured.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from asyncinfer.tools.simulator.config import SyncConfig
from asyncinfer.tools.simulator.results import RunResult, Timeline
from asyncinfer.tools.simulator.traces import Trace


def servers_for_peak(config: SyncConfig, trace: Trace) -> int:
    """Enough servers for the busiest minute's mean rate: 'sized for peak'."""
    peak_per_s = float(trace.per_minute().max(initial=0)) / 60.0
    return max(1, math.ceil(peak_per_s * config.service_s / config.concurrency))


def simulate_sync(config: SyncConfig, trace: Trace) -> RunResult:
    servers = config.servers or servers_for_peak(config, trace)
    service, timeout = config.service_s, config.timeout_s
    queue_limit = servers * config.queue_limit_per_server
    slots = [0.0] * (servers * config.concurrency)  # when each slot is free again (a heap)
    waiting: list[float] = []  # when each queued request leaves the queue (a heap)
    arrivals: list[float] = trace.arrivals.tolist()
    latency = np.full(len(arrivals), np.nan)
    queued_enter: list[float] = []
    queued_leave: list[float] = []
    rejected = timed_out_waiting = timed_out_serving = 0
    last_done = 0.0
    for i, arrived in enumerate(arrivals):
        while waiting and waiting[0] <= arrived:
            heapq.heappop(waiting)
        free_at = slots[0]
        if free_at > arrived and len(waiting) >= queue_limit:
            rejected += 1
            continue
        start = max(arrived, free_at)
        if start - arrived >= timeout:
            timed_out_waiting += 1
            heapq.heappush(waiting, arrived + timeout)
            queued_enter.append(arrived)
            queued_leave.append(arrived + timeout)
            continue
        done = start + service
        heapq.heapreplace(slots, done)
        last_done = max(last_done, done)
        if start > arrived:
            heapq.heappush(waiting, start)
            queued_enter.append(arrived)
            queued_leave.append(start)
        if done - arrived > timeout:
            timed_out_serving += 1
        else:
            latency[i] = done - arrived
    end = max(trace.duration_s, last_done)
    t = np.arange(0.0, end, 60.0)
    backlog = np.searchsorted(np.asarray(queued_enter), t, side="right") - np.searchsorted(
        np.sort(np.asarray(queued_leave)), t, side="right"
    )
    fleet = np.full(t.size, servers)
    errors = rejected + timed_out_waiting + timed_out_serving
    return RunResult(
        name=config.name,
        kind="sync",
        arrivals=trace.arrivals,
        latency_s=latency,
        latency_goal_s=config.latency_goal_s,
        errors=errors,
        error_breakdown={
            "rejected_queue_full": rejected,
            "timed_out_waiting": timed_out_waiting,
            "timed_out_serving": timed_out_serving,
        },
        # Always on: every server is billed for the whole span.
        vm_seconds=servers * end,
        usd_per_vm_hour=config.hourly_price,
        peak_vms=servers,
        timeline=Timeline(t_s=t, backlog=backlog, vms=fleet, ready_vms=fleet, floor=fleet),
        end_s=end,
        extra={"servers": servers, "service_time_s": service, "timeout_s": timeout, "spot": config.spot},
    )
