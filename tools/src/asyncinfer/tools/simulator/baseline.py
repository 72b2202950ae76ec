"""The synchronous design asyncinfer replaced: always-on servers behind a load balancer.

Like-for-like with the pool: each server batches the way a pool worker does (the same `batch`
timing). A free server takes up to max_batch waiting requests at once and answers them all
when the batch is done; with nothing waiting it starts on the next request alone. `batching:
false` gives the older one-request-at-a-time server (0.75 s per request with the default timing).

The load balancer keeps one FIFO queue of at most queue_limit_per_server x servers waiting
requests and rejects beyond that (503). A caller gives up after timeout_s, by default the latency
goal, the same bound the pool's answers are judged by: a request still waiting then is dropped
without using a server (generous to this design), and one that finishes later used its server
but counts as an error all the same. Overload therefore turns into errors, never into a longer
queue, which is the difference the seed measured.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from asyncinfer.tools.simulator.config import SyncConfig
from asyncinfer.tools.simulator.results import RunResult, Timeline
from asyncinfer.tools.simulator.traces import Trace


def servers_for_peak(config: SyncConfig, trace: Trace) -> int:
    """Enough servers for the busiest minute's mean rate at the server's full-batch throughput:
    'sized for peak'."""
    peak_per_s = float(trace.per_minute().max(initial=0)) / 60.0
    return max(1, math.ceil(peak_per_s / config.throughput_per_server - 1e-9))


def simulate_sync(config: SyncConfig, trace: Trace) -> RunResult:
    servers = config.servers or servers_for_peak(config, trace)
    timeout = config.client_timeout_s
    max_batch = config.max_batch
    queue_limit = servers * config.queue_limit_per_server
    free: list[float] = [0.0] * servers  # when each server is free again (a heap)
    arrivals: list[float] = trace.arrivals.tolist()
    n = len(arrivals)
    latency = np.full(n, np.nan)
    queue: deque[int] = deque()
    queued_enter: list[float] = []
    queued_leave: list[float] = []
    rejected = timed_out_waiting = timed_out_serving = batches = 0
    last_done = 0.0
    i = 0

    def expire(now: float) -> None:
        nonlocal timed_out_waiting
        while queue and now - arrivals[queue[0]] >= timeout:
            gone = queue.popleft()
            timed_out_waiting += 1
            queued_enter.append(arrivals[gone])
            queued_leave.append(arrivals[gone] + timeout)

    while i < n or queue:
        next_arrival = arrivals[i] if i < n else math.inf
        if queue and free[0] <= next_arrival:
            now = free[0]
            expire(now)
            if not queue:
                continue
            take = [queue.popleft() for _ in range(min(max_batch, len(queue)))]
            done = now + config.batch_duration_s(len(take))
        elif i < n:
            now = next_arrival
            expire(now)
            if free[0] > now:
                if len(queue) >= queue_limit:
                    rejected += 1
                else:
                    queue.append(i)
                i += 1
                continue
            take = [i]  # an idle server starts on it at once
            i += 1
            done = now + config.batch_duration_s(1)
        else:
            break
        heapq.heapreplace(free, done)
        batches += 1
        last_done = max(last_done, done)
        for k in take:
            if arrivals[k] < now:
                queued_enter.append(arrivals[k])
                queued_leave.append(now)
            if done - arrivals[k] > timeout:
                timed_out_serving += 1
            else:
                latency[k] = done - arrivals[k]
    end = max(trace.duration_s, last_done)
    t = np.arange(0.0, end, 60.0)
    backlog = np.searchsorted(np.sort(np.asarray(queued_enter)), t, side="right") - np.searchsorted(
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
        extra={
            "servers": servers,
            "max_batch": max_batch,
            "batches": batches,
            "client_timeout_s": timeout,
            "spot": config.spot,
        },
    )
