"""The synchronous fleet: overload must turn into errors, spare capacity into none; it batches
like the pool (issue: a baseline that cannot batch made the headline 2.4x too flattering)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from asyncinfer.tools.simulator.baseline import servers_for_peak, simulate_sync
from asyncinfer.tools.simulator.config import SyncConfig
from asyncinfer.tools.simulator.traces import Trace

MakeTrace = Callable[..., Trace]


def test_under_capacity_every_request_is_answered_in_its_service_time(make_trace: MakeTrace) -> None:
    arrivals = np.arange(0.0, 600.0, 2.0)  # 0.5/s against 2 servers of 1/0.75 s each
    result = simulate_sync(SyncConfig(kind="sync", servers=2), make_trace(arrivals, 600))
    assert result.errors == 0
    assert result.answered == arrivals.size
    assert np.allclose(result.latency_s, 0.75)


def test_overload_turns_into_errors(make_trace: MakeTrace) -> None:
    arrivals = np.linspace(0.0, 600.0, 6000)  # 10/s against one server doing 3.2/s in full batches
    cfg = SyncConfig(kind="sync", servers=1, timeout_s=60, queue_limit_per_server=32)
    result = simulate_sync(cfg, make_trace(arrivals, 600))
    assert 3500 < result.errors < 6000 - 1800  # it answers about 3.2/s x 600 s
    assert result.error_breakdown["rejected_queue_full"] > 0
    assert result.answered + result.errors == result.requests
    assert np.nanmax(result.latency_s) <= 60

    # A long queue trades rejections for timeouts; the errors stay.
    patient = simulate_sync(cfg.model_copy(update={"queue_limit_per_server": 100_000}), make_trace(arrivals, 600))
    assert patient.error_breakdown["timed_out_waiting"] > 3500
    assert patient.error_breakdown["rejected_queue_full"] == 0


def test_fleet_sized_for_the_busiest_minute(make_trace: MakeTrace) -> None:
    arrivals = np.concatenate([np.linspace(0, 59.9, 60), np.linspace(60, 119.9, 600)])  # 1/s, then 10/s
    trace = make_trace(arrivals, 120)
    cfg = SyncConfig(kind="sync")
    assert servers_for_peak(cfg, trace) == 4  # ceil(10/s / (8 per 2.5 s)), the pool's batching
    assert simulate_sync(cfg, trace).peak_vms == 4
    one_at_a_time = cfg.model_copy(update={"batching": False})
    assert servers_for_peak(one_at_a_time, trace) == 8  # ceil(10/s x 0.75 s)


def test_a_busy_server_batches_what_waits(make_trace: MakeTrace) -> None:
    result = simulate_sync(SyncConfig(kind="sync", servers=1), make_trace([0.0] * 9, 60))
    # The first is started alone (0.75 s); the 8 that waited go in one batch: 0.75 + 0.5 + 8 x 0.25.
    assert result.latency_s.tolist() == [0.75] + [pytest.approx(3.25)] * 8
    assert result.extra["batches"] == 2
    alone = simulate_sync(SyncConfig(kind="sync", servers=1, batching=False), make_trace([0.0] * 9, 60))
    assert alone.latency_s[-1] == pytest.approx(9 * 0.75)
    assert alone.extra["batches"] == 9


def test_the_client_waits_as_long_as_the_goal_unless_told(make_trace: MakeTrace) -> None:
    arrivals = np.linspace(0.0, 600.0, 3000)  # 5/s against 3.2/s: the queue grows by ~1.8/s
    cfg = SyncConfig(kind="sync", servers=1, queue_limit_per_server=100_000, latency_goal_s=120)
    assert cfg.client_timeout_s == 120
    result = simulate_sync(cfg, make_trace(arrivals, 600))
    assert np.nanmax(result.latency_s) <= 120
    assert result.error_breakdown["timed_out_waiting"] > 0
    impatient = simulate_sync(cfg.model_copy(update={"timeout_s": 30.0}), make_trace(arrivals, 600))
    assert np.nanmax(impatient.latency_s) <= 30
    assert impatient.errors > result.errors


def test_always_on_cost_by_hand(make_trace: MakeTrace) -> None:
    cfg = SyncConfig(kind="sync", servers=3, price_per_hour=2.0)
    result = simulate_sync(cfg, make_trace([10.0], duration_s=1800))
    assert result.vm_hours == pytest.approx(1.5)  # 3 servers x 0.5 h, billed idle or not
    assert result.cost_usd == pytest.approx(3.0)
