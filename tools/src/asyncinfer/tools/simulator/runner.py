"""Run a list of configurations over one trace; shared by the simulate and tune commands."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from asyncinfer.tools.simulator.baseline import simulate_sync
from asyncinfer.tools.simulator.config import AsyncConfig, ConfigError, SyncConfig, load_configs
from asyncinfer.tools.simulator.engine import simulate_async
from asyncinfer.tools.simulator.results import RunResult
from asyncinfer.tools.simulator.traces import Trace, TraceError, load_trace

#: The synchronous fleet the seed replaced, sized for the trace's busiest minute; it batches like
#: the pool, so the comparison is like-for-like.
DEFAULT_BASELINE = SyncConfig(kind="sync", name="sync-on-demand-peak")


def simulate(config: AsyncConfig | SyncConfig, trace: Trace) -> RunResult:
    if isinstance(config, SyncConfig):
        return simulate_sync(config, trace)
    return simulate_async(config, trace)


def run_all(
    trace: Trace, configs: list[AsyncConfig | SyncConfig]
) -> tuple[list[RunResult], dict[str, float]]:
    results, timings = [], {}
    for config in configs:
        started = time.perf_counter()
        results.append(simulate(config, trace))
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


def read_configs(paths: list[Path]) -> list[AsyncConfig | SyncConfig]:
    configs: list[AsyncConfig | SyncConfig] = []
    for path in paths:
        configs.extend(load_configs(path))
    names = [c.name for c in configs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        # Names key the table, the JSON and the plot files.
        raise ConfigError(f"configuration names must be unique; repeated: {', '.join(duplicated)}.")
    return configs
