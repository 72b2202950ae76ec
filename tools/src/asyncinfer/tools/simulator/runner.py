"""Run a list of configurations over one trace; shared by the simulate and tune commands."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np

from asyncinfer.tools.simulator.baseline import simulate_sync
from asyncinfer.tools.simulator.cloudrun import simulate_cloud_run
from asyncinfer.tools.simulator.config import (
    AsyncConfig,
    CloudRunConfig,
    ConfigError,
    Design,
    GkeKedaConfig,
    SyncConfig,
    load_configs,
)
from asyncinfer.tools.simulator.engine import simulate_async
from asyncinfer.tools.simulator.results import RunResult
from asyncinfer.tools.simulator.traces import Trace, TraceError, load_trace

#: The synchronous fleet the seed replaced, sized for the trace's busiest minute; it batches like
#: the pool, so the comparison is like-for-like.
DEFAULT_BASELINE = SyncConfig(kind="sync", name="sync-on-demand-peak")


def simulate(config: Design, trace: Trace) -> RunResult:
    if isinstance(config, SyncConfig):
        return simulate_sync(config, trace)
    if isinstance(config, CloudRunConfig):
        return simulate_cloud_run(config, trace)
    if isinstance(config, GkeKedaConfig):
        result = simulate_async(config.as_pool(), trace)
        return _relabel(result, "gke-keda")
    return simulate_async(config, trace)


def _relabel(result: RunResult, kind: str) -> RunResult:
    from dataclasses import replace

    return replace(result, kind=kind)


#: The probe for "first answer from an empty pool": one request, half a metric period after a sample.
PROBE_ARRIVAL_S = 30.0


def first_answer_s(config: Design, trace: Trace) -> float | None:
    """Latency of one request into the design when it is idle (nights: no schedule floor): what a
    user waits for the first answer of the day. None for an always-on fleet (never empty)."""
    if isinstance(config, SyncConfig):
        return None
    always_on = {CloudRunConfig: "min_instances", GkeKedaConfig: "min_nodes", AsyncConfig: "min_vms"}
    if getattr(config, always_on[type(config)]):
        return None  # never empty
    probe = Trace("probe", np.asarray([PROBE_ARRIVAL_S]), 3600.0, trace.start)
    if isinstance(config, AsyncConfig):
        config = config.model_copy(update={"preemptions_per_vm_hour": 0.0, "stockout_probability": 0.0,
                                           "calendar": None})
    value = float(simulate(config, probe).latency_s[0])
    return None if np.isnan(value) else value


def run_all(trace: Trace, configs: list[Design]) -> tuple[list[RunResult], dict[str, float]]:
    results, timings = [], {}
    for config in configs:
        started = time.perf_counter()
        result = simulate(config, trace)
        result.extra["first_answer_from_empty_s"] = first_answer_s(config, trace)
        results.append(result)
        timings[config.name] = time.perf_counter() - started
    return results, timings


def read_trace(path: Path, start: str | None, seed: int = 0) -> Trace:
    when = None
    if start:
        try:
            when = dt.datetime.fromisoformat(start)
        except ValueError:
            raise TraceError(f"--start {start!r} is not an ISO 8601 date-time.") from None
        if when.tzinfo is None:
            raise TraceError(f"--start {start!r} needs a UTC offset, e.g. 2026-11-23T00:00:00+09:00.")
    return load_trace(path, start=when, seed=seed)


def read_configs(paths: list[Path]) -> list[Design]:
    configs: list[Design] = []
    for path in paths:
        configs.extend(load_configs(path))
    names = [c.name for c in configs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        # Names key the table, the JSON and the plot files.
        raise ConfigError(f"configuration names must be unique; repeated: {', '.join(duplicated)}.")
    return configs
