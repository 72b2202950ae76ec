"""The asyncinfer pool model: it must follow the shared policy and GCE's timing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import asyncinfer.tools.simulator.engine as engine
from asyncinfer.core import policy
from asyncinfer.tools.simulator.config import AsyncConfig, BatchTiming, CalendarConfig
from asyncinfer.tools.simulator.engine import simulate_async
from asyncinfer.tools.simulator.traces import Trace

MakeTrace = Callable[..., Trace]
# No randomness unless a test asks for it.
QUIET = {"preemptions_per_vm_hour": 0.0, "stockout_probability": 0.0}


def test_scale_from_zero_at_the_first_sample(make_trace: MakeTrace) -> None:
    cfg = AsyncConfig(**QUIET)
    result = simulate_async(cfg, make_trace([0.0]))
    # Sampled at t=0, seen 120 s later, the VM boots 90 s, a batch of one takes 0.5 + 0.25 s.
    expected = cfg.metric_lag_s + cfg.ready_after_s + cfg.batch.duration_s(1)
    assert result.latency_s.tolist() == [pytest.approx(expected)]
    assert expected == pytest.approx(210.75)
    tl = result.timeline
    assert tl.vms[tl.t_s == 120.0][0] == 0  # the sample at 120 s is taken before the decision
    assert tl.vms[tl.t_s == 180.0][0] == 1


def test_a_request_after_a_sample_waits_for_the_next_one(make_trace: MakeTrace) -> None:
    result = simulate_async(AsyncConfig(**QUIET), make_trace([0.5]))
    assert result.latency_s[0] == pytest.approx(60 - 0.5 + 120 + 90 + 0.75)


def test_decisions_come_from_the_shared_policy(make_trace: MakeTrace, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, int]] = []

    def spy(backlog: float, pol: policy.ScalingPolicy, floor: int = 0) -> int:
        calls.append((backlog, floor))
        return policy.recommended_workers(backlog, pol, floor)

    monkeypatch.setattr(engine, "recommended_workers", spy)
    simulate_async(AsyncConfig(**QUIET), make_trace([0.0]))
    assert calls[0] == (1, 0)

    # A policy that never asks for a worker leaves the request unanswered: nothing else scales.
    monkeypatch.setattr(engine, "recommended_workers", lambda backlog, pol, floor=0: 0)
    starved = simulate_async(AsyncConfig(drain_limit_s=3600, **QUIET), make_trace([0.0]))
    assert starved.answered == 0
    assert starved.error_breakdown["unanswered_at_end"] == 1


def test_scale_in_waits_out_the_stabilization_period(make_trace: MakeTrace) -> None:
    burst = np.linspace(1.0, 2.0, 200)  # after the sample at 0 s
    cfg = AsyncConfig(backlog_per_vm=50, max_vms=4, scale_in_max_vms=None, **QUIET)
    result = simulate_async(cfg, make_trace(burst))
    tl = result.timeline
    # Samples at 60 s to 240 s see 200 waiting (the VMs are ready at 270 s), so decisions up to
    # 360 s ask for 4; the work is done before the 300 s sample, and from 420 s they ask for 0.
    assert tl.backlog[tl.t_s == 240.0][0] == 200
    assert tl.backlog[tl.t_s == 300.0][0] == 0
    held = (tl.t_s >= 300) & (tl.t_s <= 1020)
    assert np.all(tl.vms[held] == 4), "VMs must stay 10 min after the last high recommendation"
    assert result.end_s == 1020.0  # deleted by the 1020 s decision; the bill stops there
    assert result.vm_seconds == pytest.approx(4 * (1020 - 180))

    # The same with no stabilization: they leave at the first low recommendation (420 s).
    quick = simulate_async(cfg.model_copy(update={"stabilization_s": 0.0}), make_trace(burst))
    assert quick.timeline.vms[quick.timeline.t_s == 420.0][0] == 4
    assert quick.end_s == 420.0


def test_scale_in_control_removes_at_most_two_vms_per_window(make_trace: MakeTrace) -> None:
    """The components deploy a scale-in control (2 VMs per 10 minutes by default); the simulator
    must model it, or it undercounts the VM-hours after every spike."""
    burst = np.linspace(1.0, 2.0, 600)
    cfg = AsyncConfig(backlog_per_vm=50, max_vms=8, **QUIET)
    assert (cfg.scale_in_max_vms, cfg.scale_in_window_s) == (2, 600)
    controlled = simulate_async(cfg, make_trace(burst))
    free = simulate_async(cfg.model_copy(update={"scale_in_max_vms": None}), make_trace(burst))
    tl = controlled.timeline
    drops = -np.diff(tl.vms)
    assert drops.max() <= 2
    # At most 2 fewer VMs within any 10-minute window (11 samples span 600 s).
    for i in range(tl.vms.size - 10):
        assert tl.vms[i] - tl.vms[i + 10] <= 2 or tl.vms[i : i + 11].max() - tl.vms[i + 10] <= 2
    assert free.timeline.vms.max() == controlled.timeline.vms.max() == 8
    # Without it all 8 leave at one decision and the bill stops; with it they leave 2 per 10 min.
    assert set(free.timeline.vms.tolist()) == {0, 8}
    assert {8, 6, 4, 2} <= set(tl.vms.tolist())
    assert controlled.end_s >= free.end_s + 3 * 600
    assert controlled.vm_seconds > 1.5 * free.vm_seconds
    assert controlled.answered == free.answered == 600


def test_simulator_scale_in_defaults_are_the_components_defaults() -> None:
    """The simulator models what a stack deploys. The components are a dependency of the tools:
    this test fails (never skips) if they cannot be imported."""
    import dataclasses

    from asyncinfer.components.stack_config import StackConfig
    from asyncinfer.components.worker_pool import GpuWorkerPoolArgs

    pool_defaults = {f.name: f.default for f in dataclasses.fields(GpuWorkerPoolArgs)}
    cfg = AsyncConfig()
    assert cfg.scale_in_max_vms == pool_defaults["max_scaled_in_replicas"]
    assert cfg.scale_in_window_s == pool_defaults["time_window_sec"]
    assert cfg.scale_in_max_vms == StackConfig.model_fields["max_scaled_in_replicas"].default


def test_baking_cuts_seven_minutes_of_cold_start(make_trace: MakeTrace) -> None:
    baked = simulate_async(AsyncConfig(baked=True, **QUIET), make_trace([0.0]))
    unbaked = simulate_async(AsyncConfig(baked=False, latency_goal_s=900, **QUIET), make_trace([0.0]))
    assert unbaked.latency_s[0] - baked.latency_s[0] == pytest.approx(7 * 60)


def test_business_hours_raise_the_floor_but_not_on_the_holiday(make_trace: MakeTrace) -> None:
    # Mon 2026-11-23 (Labor Thanksgiving Day) and Tue 2026-11-24, Tokyo; no traffic at all.
    start = dt.datetime(2026, 11, 23, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    trace = make_trace([], duration_s=2 * 86400, start=start)
    cfg = AsyncConfig(calendar=CalendarConfig(country="JP", business_min_vms=2), **QUIET)
    tl = simulate_async(cfg, trace).timeline

    def at(day: int, hour: int) -> tuple[int, int]:
        i = int(np.flatnonzero(tl.t_s == day * 86400 + hour * 3600)[0])
        return int(tl.floor[i]), int(tl.vms[i])

    assert at(0, 12) == (0, 0)  # holiday noon
    assert at(1, 12) == (2, 2)  # business-day noon
    assert at(1, 3) == (0, 0)  # night


def test_preemption_hands_work_back_and_nothing_is_lost(make_trace: MakeTrace) -> None:
    rng = np.random.default_rng(3)
    arrivals = rng.uniform(0, 3600, 3000)
    cfg = AsyncConfig(
        backlog_per_vm=100, max_vms=8, preemptions_per_vm_hour=20.0, max_delivery_attempts=100,
        batch=BatchTiming(max_batch=8, fixed_s=20.0, per_item_s=5.0), seed=5,  # batches outlast the notice
    )
    result = simulate_async(cfg, make_trace(arrivals, duration_s=3600))
    assert result.extra["preemptions"] > 5
    assert result.extra["redelivered"] > 0
    assert result.answered + result.errors == result.requests
    assert result.errors == 0 and result.answered == 3000
    assert np.all(result.latency_s > 0)

    # With one delivery attempt allowed, handed-back work is dead-lettered, and still counted.
    strict = simulate_async(cfg.model_copy(update={"max_delivery_attempts": 1}), make_trace(arrivals, 3600))
    assert strict.error_breakdown["dead_lettered"] > 0
    assert strict.answered + strict.errors == strict.requests


def test_stockouts_delay_but_do_not_lose_work(make_trace: MakeTrace) -> None:
    cfg = AsyncConfig(stockout_probability=0.6, stockout_retry_s=300, preemptions_per_vm_hour=0.0, seed=2)
    result = simulate_async(cfg, make_trace([0.0]))
    assert result.extra["stockouts"] >= 1  # seed 2 fails the first creation
    assert result.answered == 1
    assert result.latency_s[0] >= 210.75 + 300


def test_cost_of_one_request_by_hand(make_trace: MakeTrace) -> None:
    # Lag 0: the VM is requested at 0 s, the request is done at 90.75 s; the recommendation is 1 at
    # 0 and 60 s, 0 from 120 s, so the stabilizer keeps the VM until 60 + 600 = 660 s is left behind
    # at the 720 s decision: 720 billed seconds at $3.60/h = $0.72.
    cfg = AsyncConfig(metric_lag_s=0, price_per_hour=3.6, **QUIET)
    result = simulate_async(cfg, make_trace([0.0]))
    assert result.vm_seconds == pytest.approx(720)
    assert result.cost_usd == pytest.approx(0.72)
    assert result.summary()["vm_hours"] == pytest.approx(0.2)


def test_spot_vm_preempted_within_a_minute_is_free(make_trace: MakeTrace, monkeypatch: pytest.MonkeyPatch) -> None:
    class EarlyPreemption:
        def __init__(self, rng: Any) -> None:
            self._rng = rng

        def exponential(self, scale: float) -> float:
            return 20.0  # every VM is preempted 20 s after it is requested

        def random(self) -> float:
            return float(self._rng.random())

    real = np.random.default_rng
    monkeypatch.setattr(engine.np.random, "default_rng", lambda seed: EarlyPreemption(real(seed)))
    cfg = AsyncConfig(metric_lag_s=0, preemptions_per_vm_hour=1.0, price_per_hour=3.6, drain_limit_s=600)
    result = simulate_async(cfg, make_trace([0.0]))
    assert result.extra["preemptions"] >= 2
    assert result.answered == 0  # every VM died before it was ready
    # The preempted ones are free; only the VM still alive when the simulation stops is billed,
    # for GCE's one-minute minimum.
    assert result.vm_seconds == 60.0


def test_week_long_trace_runs_in_seconds() -> None:
    import time
    from pathlib import Path

    from asyncinfer.tools.simulator.traces import load_trace

    trace = load_trace(Path(__file__).parents[2] / "traces" / "office_week.csv")
    started = time.perf_counter()
    result = simulate_async(AsyncConfig(max_vms=20, calendar=CalendarConfig()), trace)
    elapsed = time.perf_counter() - started
    assert result.answered + result.errors == result.requests > 200_000
    assert elapsed < 10, f"a week took {elapsed:.1f} s"
