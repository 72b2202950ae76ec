"""The comparison judges every design by one rule: answered within the goal, or a miss."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rich.console import Console

from asyncinfer.tools.simulator.baseline import simulate_sync
from asyncinfer.tools.simulator.config import AsyncConfig, SyncConfig
from asyncinfer.tools.simulator.engine import simulate_async
from asyncinfer.tools.simulator.report import comparison_table
from asyncinfer.tools.simulator.traces import Trace

MakeTrace = Callable[..., Trace]


def test_late_answers_are_misses_on_both_sides(make_trace: MakeTrace) -> None:
    # One burst into an empty pool with a 3-minute goal: the pool answers everything, but after its
    # reaction time (>= 120 s lag + 90 s boot), so every answer is late; errors alone would read 0.
    trace = make_trace(np.linspace(1.0, 30.0, 300), duration_s=600)
    goal = 180.0
    pool = simulate_async(
        AsyncConfig(name="pool", latency_goal_s=goal, backlog_per_vm=100, preemptions_per_vm_hour=0.0), trace
    )
    assert pool.errors == 0 and pool.late == 300
    assert pool.misses == 300 and pool.slo_attainment == 0.0
    # The synchronous caller waits as long as the same goal: a server that keeps up has no misses.
    fleet = simulate_sync(SyncConfig(kind="sync", name="fleet", servers=4, latency_goal_s=goal), trace)
    assert fleet.extra["client_timeout_s"] == goal
    assert fleet.misses == fleet.errors == 0
    assert pool.summary()["misses"] == 300

    console = Console(width=220, record=True)
    console.print(comparison_table(trace, [fleet, pool]))
    text = console.export_text()
    assert "misses" in text and "fewer errors" not in text and "inf" not in text
