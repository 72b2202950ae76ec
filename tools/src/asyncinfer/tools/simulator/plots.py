"""PNG plots of a simulation: arrivals, backlog, VMs and latency over the trace's own local time."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and in tests

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from asyncinfer.tools.simulator.results import RunResult
from asyncinfer.tools.simulator.traces import Trace

#: Latency is summarised per bucket of arrival time: fine enough to see a spike, few enough to plot.
LATENCY_BUCKET_S = 600.0


def _times(trace: Trace, seconds: np.ndarray) -> np.ndarray:
    # Matplotlib date numbers are days; computing them directly is much faster than datetimes.
    return mdates.date2num(trace.start) + np.asarray(seconds, dtype=np.float64) / 86400.0


def latency_by_bucket(result: RunResult, bucket_s: float = LATENCY_BUCKET_S) -> tuple[np.ndarray, ...]:
    """Bucket start, p50, p95 of answered requests and errors, by arrival time."""
    buckets = (result.arrivals // bucket_s).astype(np.int64)
    count = int(buckets.max()) + 1 if buckets.size else 0
    p50, p95 = np.full(count, np.nan), np.full(count, np.nan)
    errors = np.bincount(buckets[np.isnan(result.latency_s)], minlength=count)
    order = np.argsort(buckets, kind="stable")
    edges = np.searchsorted(buckets[order], np.arange(count + 1))
    for b in range(count):
        values = result.latency_s[order[edges[b] : edges[b + 1]]]
        values = values[~np.isnan(values)]
        if values.size:
            p50[b], p95[b] = np.percentile(values, [50, 95])
    return np.arange(count) * bucket_s, p50, p95, errors


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "config"


def _format_time_axis(ax: plt.Axes, trace: Trace) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %d %H:%M", tz=trace.start.tzinfo))
    ax.set_xlabel(f"local time ({trace.start.tzinfo})")


def plot_result(trace: Trace, result: RunResult, path: Path) -> Path:
    """Four stacked panels for one design."""
    minutes = trace.per_minute()
    fig, axes = plt.subplots(4, 1, figsize=(14, 11), sharex=True)
    ax = axes[0]
    ax.plot(_times(trace, np.arange(minutes.size) * 60.0), minutes, lw=0.6, color="tab:blue", label="arrivals/min")
    starts, p50, p95, errors = latency_by_bucket(result)
    if errors.any():
        ax.plot(_times(trace, starts), errors / (LATENCY_BUCKET_S / 60), lw=0.9, color="tab:red",
                label="errors/min (10 min mean)")
    ax.set_ylabel("requests / min")
    ax.legend(loc="upper right")
    ax.set_title(
        f"{result.name} ({result.kind}): ${result.cost_usd:,.2f}, {result.vm_hours:,.1f} VM h, "
        f"p95 {result.percentile(95):,.0f}s, SLO {100 * result.slo_attainment:.2f}%, {result.errors:,} errors"
    )
    tl = result.timeline
    when = _times(trace, tl.t_s)
    ax = axes[1]
    ax.plot(when, tl.backlog, lw=0.7, color="tab:purple")
    ax.set_ylabel("backlog\n(unacked)" if result.kind == "async" else "waiting\nrequests")
    ax = axes[2]
    ax.step(when, tl.vms, where="post", lw=0.8, color="tab:orange", label="VMs billed (incl. booting)")
    ax.step(when, tl.ready_vms, where="post", lw=0.8, color="tab:green", label="workers ready")
    if result.kind == "async":
        ax.step(when, tl.floor, where="post", lw=0.8, ls="--", color="grey", label="schedule floor")
    ax.set_ylabel("VMs")
    ax.legend(loc="upper right")
    ax = axes[3]
    ax.plot(_times(trace, starts), p95, lw=0.8, color="tab:red", label="p95 (by arrival, 10 min)")
    ax.plot(_times(trace, starts), p50, lw=0.8, color="tab:blue", label="p50")
    ax.axhline(result.latency_goal_s, color="black", ls=":", lw=0.8, label=f"goal {result.latency_goal_s:.0f}s")
    ax.set_yscale("log")
    ax.set_ylabel("completion latency (s)")
    ax.legend(loc="upper right")
    _format_time_axis(ax, trace)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_comparison(trace: Trace, results: list[RunResult], path: Path) -> Path:
    """VMs and p95 latency of every design on shared axes."""
    fig, axes = plt.subplots(2, 1, figsize=(14, 7), sharex=True)
    for r in results:
        when = _times(trace, r.timeline.t_s)
        axes[0].step(when, r.timeline.vms, where="post", lw=0.8, label=r.name)
        starts, _, p95, _ = latency_by_bucket(r)
        axes[1].plot(_times(trace, starts), p95, lw=0.8, label=r.name)
    axes[0].set_ylabel("VMs billed")
    axes[0].set_yscale("symlog", linthresh=10)
    axes[0].legend(loc="upper right", fontsize="small")
    axes[0].set_title(f"{trace.name}: VMs and p95 completion latency per design")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("p95 latency (s), 10 min buckets")
    _format_time_axis(axes[1], trace)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_plots(trace: Trace, results: list[RunResult], out_dir: Path) -> list[Path]:
    paths = [plot_result(trace, r, out_dir / f"{_file_name(r.name)}.png") for r in results]
    paths.append(plot_comparison(trace, results, out_dir / "comparison.png"))
    return paths
