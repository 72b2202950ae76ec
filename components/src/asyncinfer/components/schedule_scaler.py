"""Business-hours minimums as GCE scaling schedules.

A thin component over `asyncinfer.core.schedules`: it compiles the calendar once (holidays left out of
the weekday schedules, since the largest active minimum wins and a schedule can never lower the
floor) and hands the result to the worker pool in the autoscaler's own input type. It creates no
cloud resources: schedules live inside each autoscaler.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import pulumi
import pulumi_gcp as gcp

from asyncinfer.core.schedules import MAX_SCHEDULES, BusinessCalendar, ScalingSchedule, compile_schedules


@dataclass(frozen=True, kw_only=True)
class ScheduleScalerArgs:
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    #: First month of the compiled window; None = today (every `pulumi up` renews the year ahead).
    start: dt.date | None = None
    months: int = 12

    def __post_init__(self) -> None:
        if not 1 <= self.months <= MAX_SCHEDULES:
            raise ValueError(f"months is {self.months}; compile between 1 and {MAX_SCHEDULES} months of schedules.")


def _schedule_args(
    schedules: list[ScalingSchedule],
) -> list[gcp.compute.RegionAutoscalerAutoscalingPolicyScalingScheduleArgs]:
    return [
        gcp.compute.RegionAutoscalerAutoscalingPolicyScalingScheduleArgs(
            name=s.name,
            schedule=s.schedule,
            duration_sec=s.duration_sec,
            min_required_replicas=s.min_required_replicas,
            time_zone=s.time_zone,
            description=s.description,
        )
        for s in schedules
    ]


class ScheduleScaler(pulumi.ComponentResource):
    """The compiled calendar: `scaling_schedules` for the pool's regional autoscaler and `base_min` for nights."""

    schedules: list[ScalingSchedule]
    scaling_schedules: list[gcp.compute.RegionAutoscalerAutoscalingPolicyScalingScheduleArgs]
    base_min: int
    business_min: int

    def __init__(self, name: str, args: ScheduleScalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("asyncinfer:index:ScheduleScaler", name, None, opts)
        start = args.start or dt.date.today()
        self.calendar = args.calendar
        self.schedules = compile_schedules(args.calendar, start, args.months)
        self.scaling_schedules = _schedule_args(self.schedules)
        self.base_min = args.calendar.min_replicas
        self.business_min = max(args.calendar.business_min_replicas, self.base_min)
        self.register_outputs(
            {
                "base_min": self.base_min,
                "business_min": self.business_min,
                "schedules": [asdict(s) for s in self.schedules],
            }
        )
