"""The floor GCE's scaling schedules enforce, minute by minute, from the shared calendar code.

The schedules are compiled exactly as the components compile them (compile_schedules) and evaluated
with active_floor, so a holiday left out of the cron day lists is left out here too.
"""

from __future__ import annotations

import datetime as dt
import math

from asyncinfer.core.schedules import ScalingSchedule, active_floor, compile_schedules
from asyncinfer.tools.simulator.config import CalendarConfig

# Tuning runs many configurations over one trace: compile and evaluate each calendar once.
_CACHE: dict[tuple[CalendarConfig, int, dt.datetime], FloorSchedule] = {}


class FloorSchedule:
    """Minute-resolution lookup of active_floor; schedules start and end on whole minutes."""

    def __init__(self, schedules: list[ScalingSchedule], base_min: int, start: dt.datetime) -> None:
        self._schedules = schedules
        self._base_min = base_min
        self._start = start
        self._by_minute: dict[int, int] = {}

    @property
    def schedules(self) -> list[ScalingSchedule]:
        return self._schedules

    def at(self, t_s: float) -> int:
        minute = math.floor(t_s / 60)
        floor = self._by_minute.get(minute)
        if floor is None:
            when = self._start + dt.timedelta(minutes=minute)
            floor = active_floor(self._schedules, self._base_min, when)
            self._by_minute[minute] = floor
        return floor


def floor_schedule(
    calendar: CalendarConfig | None, base_min: int, start: dt.datetime, span_s: float
) -> FloorSchedule:
    if calendar is None:
        return FloorSchedule([], base_min, start)
    key = (calendar, base_min, start)
    cached = _CACHE.get(key)
    if cached is None:
        business = calendar.business_calendar(base_min)
        # Cover the trace and its drain; the components compile 12 months from `pulumi up`.
        months = min(12, max(2, math.ceil(span_s / (28 * 86400)) + 1))
        first_day = start.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        cached = FloorSchedule(compile_schedules(business, first_day, months=months), base_min, start)
        _CACHE[key] = cached
    return cached
