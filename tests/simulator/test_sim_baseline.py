"""The synchronous fleet: overload must turn into errors, spare capacity into none."""

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
    arrivals = np.linspace(0.0, 600.0, 6000)  # 10/s against one server doing 1.33/s
    cfg = SyncConfig(kind="sync", servers=1, timeout_s=60, queue_limit_per_server=32)
    result = simulate_sync(cfg, make_trace(arrivals, 600))
    assert result.errors > 4000
    assert result.error_breakdown["rejected_queue_full"] > 0
    assert result.answered + result.errors == result.requests
    assert np.nanmax(result.latency_s) <= 60

    # A long queue trades rejections for timeouts; the errors stay.
    patient = simulate_sync(cfg.model_copy(update={"queue_limit_per_server": 100_000}), make_trace(arrivals, 600))
    assert patient.error_breakdown["timed_out_waiting"] > 4000
    assert patient.error_breakdown["rejected_queue_full"] == 0


def test_fleet_sized_for_the_busiest_minute(make_trace: MakeTrace) -> None:
    arrivals = np.concatenate([np.linspace(0, 59.9, 60), np.linspace(60, 119.9, 600)])  # 1/s, then 10/s
    trace = make_trace(arrivals, 120)
    cfg = SyncConfig(kind="sync")
    assert servers_for_peak(cfg, trace) == 8  # ceil(10/s x 0.75 s)
    assert simulate_sync(cfg, trace).peak_vms == 8


def test_always_on_cost_by_hand(make_trace: MakeTrace) -> None:
    cfg = SyncConfig(kind="sync", servers=3, price_per_hour=2.0)
    result = simulate_sync(cfg, make_trace([10.0], duration_s=1800))
    assert result.vm_hours == pytest.approx(1.5)  # 3 servers x 0.5 h, billed idle or not
    assert result.cost_usd == pytest.approx(3.0)
