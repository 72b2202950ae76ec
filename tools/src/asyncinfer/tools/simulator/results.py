"""What one simulated design did over a trace: the summary numbers and the minute-by-minute series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timeline:
    """One value per metric sample (every minute): what the plots show."""

    t_s: np.ndarray
    #: Unacknowledged requests (num_undelivered_messages; for the synchronous fleet: waiting requests).
    backlog: np.ndarray
    #: VMs that exist and are billed, booting ones included.
    vms: np.ndarray
    #: VMs whose worker is ready to pull.
    ready_vms: np.ndarray
    #: The floor the calendar's schedules enforce.
    floor: np.ndarray


@dataclass(frozen=True)
class RunResult:
    name: str
    kind: str
    arrivals: np.ndarray
    #: Completion time minus arrival time; NaN for a request that got an error.
    latency_s: np.ndarray
    latency_goal_s: float
    errors: int
    error_breakdown: dict[str, int]
    vm_seconds: float
    usd_per_vm_hour: float
    peak_vms: int
    timeline: Timeline
    end_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: Costs that do not scale with VM time (a cluster fee, a waker's requests, standby disks).
    fixed_usd: float = 0.0

    @property
    def requests(self) -> int:
        return int(self.arrivals.size)

    @property
    def answered(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.latency_s)))

    @property
    def vm_hours(self) -> float:
        return self.vm_seconds / 3600

    @property
    def cost_usd(self) -> float:
        return self.vm_hours * self.usd_per_vm_hour + self.fixed_usd

    def percentile(self, q: float) -> float:
        done = self.latency_s[~np.isnan(self.latency_s)]
        return float(np.percentile(done, q)) if done.size else float("nan")

    @property
    def slo_attainment(self) -> float:
        """Fraction of all requests answered within the goal; an error counts as a miss."""
        if not self.requests:
            return 1.0
        met = np.count_nonzero(self.latency_s <= self.latency_goal_s)  # NaN compares False
        return float(met / self.requests)

    @property
    def late(self) -> int:
        """Answered, but after the goal."""
        return self.answered - int(np.count_nonzero(self.latency_s <= self.latency_goal_s))

    @property
    def misses(self) -> int:
        """Requests that did not get an answer within the goal: errors plus late answers."""
        return self.errors + self.late

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "requests": self.requests,
            "answered": self.answered,
            "errors": self.errors,
            "late": self.late,
            "misses": self.misses,
            "error_breakdown": dict(self.error_breakdown),
            "latency_goal_s": self.latency_goal_s,
            "latency_p50_s": _finite(self.percentile(50)),
            "latency_p95_s": _finite(self.percentile(95)),
            "latency_p99_s": _finite(self.percentile(99)),
            "latency_max_s": _finite(float(np.nanmax(self.latency_s)) if self.answered else float("nan")),
            "slo_attainment": self.slo_attainment,
            "vm_hours": self.vm_hours,
            "usd_per_vm_hour": self.usd_per_vm_hour,
            "cost_usd": self.cost_usd,
            "fixed_usd": self.fixed_usd,
            "peak_vms": self.peak_vms,
            "simulated_until_s": self.end_s,
            **self.extra,
        }


def _finite(value: float) -> float | None:
    # JSON has no NaN.
    return None if np.isnan(value) else value
