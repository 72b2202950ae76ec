"""The designs users would pick instead, and the two faster wakes for our pool, on tiny traces."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from asyncinfer.tools.commands import simulate_command
from asyncinfer.tools.simulator import assumptions as assumed
from asyncinfer.tools.simulator.alternatives import cheapest, designs
from asyncinfer.tools.simulator.cloudrun import simulate_cloud_run
from asyncinfer.tools.simulator.config import (
    AsyncConfig,
    CloudRunConfig,
    GkeKedaConfig,
    StandbyConfig,
    WakerConfig,
    parse_configs,
)
from asyncinfer.tools.simulator.engine import simulate_async
from asyncinfer.tools.simulator.runner import first_answer_s, simulate
from asyncinfer.tools.simulator.traces import Trace

MakeTrace = Callable[..., Trace]
QUIET = {"preemptions_per_vm_hour": 0.0, "stockout_probability": 0.0}


def test_cloud_run_starts_in_seconds_and_bills_the_instance_until_it_idles_out(make_trace: MakeTrace) -> None:
    cfg = CloudRunConfig(kind="cloud-run", idle_s=600)
    result = simulate_cloud_run(cfg, make_trace([10.0], duration_s=60))
    assert cfg.start_s == assumed.CLOUD_RUN_GPU_START_S.value + assumed.CLOUD_RUN_MODEL_LOAD_S.value
    assert result.latency_s[0] == pytest.approx(cfg.start_s + cfg.batch.duration_s(1))
    # Billed from its start until idle_s after its batch: GPU + 4 vCPU + 16 GiB, on demand.
    lifetime = cfg.start_s + cfg.batch.duration_s(1) + 600
    assert result.vm_seconds == pytest.approx(lifetime)
    per_s = assumed.CLOUD_RUN_L4_USD_PER_S.value + 4 * 0.000018 + 16 * assumed.CLOUD_RUN_MEMORY_USD_PER_S.value
    assert result.cost_usd == pytest.approx(lifetime * per_s)


def test_cloud_run_scales_on_concurrency_and_batches(make_trace: MakeTrace) -> None:
    burst = np.linspace(0.0, 1.0, 96)  # 96 requests: 96 / (8 x 0.6) = 20 instances wanted, capped at 5
    result = simulate_cloud_run(CloudRunConfig(kind="cloud-run", max_instances=5), make_trace(burst, 60))
    assert result.peak_vms == 5
    assert result.answered == 96
    # 5 instances x 8 per 2.5 s batch: 96 requests take ceil(96 / 40) = 3 rounds after the start.
    assert np.nanmax(result.latency_s) == pytest.approx(15.0 + 3 * 2.5, abs=1.1)


def test_the_waker_cuts_the_first_answer_from_an_empty_pool(make_trace: MakeTrace) -> None:
    plain = simulate_async(AsyncConfig(**QUIET), make_trace([30.0], duration_s=60))
    woken = simulate_async(AsyncConfig(waker=WakerConfig(delay_s=15), **QUIET), make_trace([30.0], duration_s=60))
    # Without: the sample at 60 s, 120 s of lag, 90 s boot. With: 15 s after the message, 90 s boot.
    assert plain.latency_s[0] == pytest.approx(30 + 120 + 90 + 0.75)
    assert woken.latency_s[0] == pytest.approx(15 + 90 + 0.75)
    assert woken.extra["waker_wakes"] == 1
    assert woken.fixed_usd == pytest.approx(assumed.WAKER_USD_PER_MILLION.value / 1e6)


def test_the_waker_only_acts_on_an_empty_pool(make_trace: MakeTrace) -> None:
    arrivals = np.arange(30.0, 1800.0, 10.0)  # steady: the pool is never empty after the first VM
    result = simulate_async(AsyncConfig(waker=WakerConfig(), **QUIET), make_trace(arrivals, duration_s=1800))
    assert result.extra["waker_wakes"] == 1


def test_a_standby_vm_starts_faster_and_is_replenished(make_trace: MakeTrace) -> None:
    standby = StandbyConfig(size=1, start_s=45)
    cfg = AsyncConfig(standby=standby, **QUIET)
    result = simulate_async(cfg, make_trace([30.0], duration_s=60))
    assert result.latency_s[0] == pytest.approx(30 + 120 + 45 + 0.75)
    assert result.extra["standby_starts"] == 1
    plain = simulate_async(AsyncConfig(**QUIET), make_trace([30.0], duration_s=60))
    # The replacement boots (billed for the boot) and its disk is paid while stopped.
    assert result.vm_seconds > plain.vm_seconds
    assert result.fixed_usd == pytest.approx(standby.usd_per_hour * result.end_s / 3600)


def test_gke_keda_is_the_pool_engine_with_gke_mechanics(make_trace: MakeTrace) -> None:
    gke = GkeKedaConfig(kind="gke-keda", preemptions_per_vm_hour=0.0)
    pool = gke.as_pool()
    assert pool.metric_lag_s == assumed.METRIC_LAG_S.value + 15  # half a KEDA poll on average
    assert pool.stabilization_s == 300 and pool.scale_in_max_vms is None
    assert pool.backlog_per_vm == AsyncConfig().policy().assignment
    result = simulate(gke, make_trace([30.0], duration_s=60))
    assert result.kind == "gke-keda"
    assert result.latency_s[0] == pytest.approx(30 + 135 + 300 + 0.75)
    assert result.fixed_usd == pytest.approx((0.10 + 0.067) * result.end_s / 3600)
    # A removed node is billed until the cluster autoscaler deems it unneeded (600 s later).
    assert result.vm_seconds >= 600 + 300


def test_first_answer_is_none_for_designs_that_are_never_empty(make_trace: MakeTrace) -> None:
    trace = make_trace([0.0], duration_s=60)
    assert first_answer_s(AsyncConfig(min_vms=1), trace) is None
    assert first_answer_s(CloudRunConfig(kind="cloud-run", min_instances=1), trace) is None
    assert first_answer_s(CloudRunConfig(kind="cloud-run"), trace) == pytest.approx(15.75)


def test_cheapest_at_the_goal_ignores_designs_that_miss_it() -> None:
    results = {
        "a": {"cost_usd": 10.0, "slo_attainment": 0.99},
        "b": {"cost_usd": 20.0, "slo_attainment": 1.0},
        "c": {"cost_usd": 30.0, "slo_attainment": 0.9995},
    }
    verdict = cheapest(results)
    assert verdict["cheapest"] == "b" and verdict["runner_up"] == "c"
    assert verdict["runner_up_ratio"] == pytest.approx(1.5)
    assert {d.name for d in designs(60)} == {d.name for d in designs(600)}


def test_simulate_runs_any_mix_of_designs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("minute,count\n" + "\n".join(f"{m},{300 if m == 5 else 2}" for m in range(30)) + "\n")
    config = tmp_path / "mix.json"
    config.write_text(json.dumps([
        {"name": "pool", "max_vms": 4},
        {"name": "pool-waker-standby", "max_vms": 4, "waker": {}, "standby": {"size": 1}},
        {"kind": "gke-keda", "name": "gke", "max_nodes": 4},
        {"kind": "cloud-run", "name": "run", "max_instances": 4},
        {"kind": "sync", "name": "fleet"},
    ]))
    report = tmp_path / "r.json"
    args = ["--trace", str(trace), "--config", str(config), "--json", str(report)]
    parser = simulate_command.argparse.ArgumentParser()
    simulate_command.add_arguments(parser)
    assert simulate_command.run(parser.parse_args(args)) == 0
    results = {r["name"]: r for r in json.loads(report.read_text())["results"]}
    assert [results[n]["kind"] for n in ("pool", "gke", "run", "fleet")] == ["async", "gke-keda", "cloud-run", "sync"]
    for r in results.values():
        assert r["answered"] + r["errors"] == r["requests"] == 358
    assert results["run"]["first_answer_from_empty_s"] < results["pool-waker-standby"]["first_answer_from_empty_s"]
    assert results["pool-waker-standby"]["first_answer_from_empty_s"] < results["pool"]["first_answer_from_empty_s"]
    assert results["fleet"]["first_answer_from_empty_s"] is None


def test_a_misspelt_design_setting_fails_loudly() -> None:
    from asyncinfer.tools.simulator.config import ConfigError

    with pytest.raises(ConfigError, match="idle_sec"):
        parse_configs([{"kind": "cloud-run", "idle_sec": 5}])
    with pytest.raises(ConfigError, match="vcpu"):
        parse_configs([{"kind": "cloud-run", "vcpu": 2}])  # an L4 instance needs at least 4
