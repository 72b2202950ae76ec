"""Compile a business calendar into GCE autoscaler scaling schedules.

GCE facts this respects (asyncinfer.core.gce): at most 128 schedules per autoscaler, cron with a year,
duration >= 300 s, an IANA time zone, and *the largest minimum of the active schedules wins*. A
schedule can therefore raise the floor but never lower it, so holidays are left out of the weekday
schedules (explicit day-of-month lists per month) instead of being "overridden" by a later schedule.

Nights, weekends and holidays run at the autoscaler's own minimum; business hours are schedules.
Each month's cron carries its year (GCE's optional 6th field), so a day list never fires in another
year: a stack not re-applied within the window loses its business-hours floor after it instead of
lifting weekends and holidays with last year's days (any `pulumi up` recompiles the window from today).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from asyncinfer.core.gce import MAX_SCALING_SCHEDULES as MAX_SCHEDULES
from asyncinfer.core.gce import MIN_SCHEDULE_DURATION_S as MIN_DURATION_S


class ScheduleError(ValueError):
    """A calendar that GCE would reject or that cannot mean what it says."""


@dataclass(frozen=True, kw_only=True)
class BusinessCalendar:
    time_zone: str = "Asia/Tokyo"
    #: ISO 3166 country code understood by the `holidays` package.
    country: str = "JP"
    subdivision: str | None = None
    business_start_hour: int = 9
    #: Exclusive: 18 means business hours end at 18:00.
    business_end_hour: int = 18
    #: Monday = 0 ... Sunday = 6.
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    business_min_replicas: int = 1
    #: Nights, weekends and holidays: the autoscaler's own min_replicas (the same setting).
    min_replicas: int = 0
    #: Extra closed days (company holidays) on top of the public ones.
    extra_holidays: tuple[dt.date, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(
                f"time_zone {self.time_zone!r} is not an IANA time zone; use a name such as "
                "'Asia/Tokyo' or 'Europe/Berlin'."
            ) from exc
        if not 0 <= self.business_start_hour < self.business_end_hour <= 24:
            raise ScheduleError(
                f"business hours {self.business_start_hour}-{self.business_end_hour} must satisfy "
                "0 <= start < end <= 24."
            )
        if (self.business_end_hour - self.business_start_hour) * 3600 < MIN_DURATION_S:
            raise ScheduleError("business hours must last at least 300 s (GCE's minimum duration).")
        if not self.weekdays or any(d not in range(7) for d in self.weekdays):
            raise ScheduleError("weekdays must be a non-empty list of 0 (Monday) to 6 (Sunday).")
        if self.business_min_replicas < 0 or self.min_replicas < 0:
            raise ScheduleError("business_min_replicas and min_replicas must be 0 or more.")
        try:
            self.holiday_calendar(dt.date.today().year)
        except NotImplementedError as exc:
            raise ScheduleError(
                f"country {self.country!r} (subdivision {self.subdivision!r}) is not known to the "
                "`holidays` package; use an ISO 3166 code such as 'JP', 'US' or 'DE'."
            ) from exc

    def holiday_calendar(self, *years: int) -> holidays.HolidayBase:
        return holidays.country_holidays(self.country, subdiv=self.subdivision, years=years)

    def is_business_day(self, day: dt.date) -> bool:
        if day.weekday() not in self.weekdays or day in self.extra_holidays:
            return False
        return day not in self.holiday_calendar(day.year)

    def floor_at(self, when: dt.datetime) -> int:
        """The minimum worker count the calendar asks for at an instant (aware datetime)."""
        local = when.astimezone(ZoneInfo(self.time_zone))
        in_hours = self.business_start_hour <= local.hour < self.business_end_hour
        if in_hours and self.is_business_day(local.date()):
            return max(self.business_min_replicas, self.min_replicas)
        return self.min_replicas


@dataclass(frozen=True)
class ScalingSchedule:
    """One GCE scaling schedule, in the shape of the autoscaler's `scaling_schedules` input."""

    name: str
    schedule: str
    duration_sec: int
    min_required_replicas: int
    time_zone: str
    description: str


def compile_schedules(
    calendar: BusinessCalendar, start: dt.date, months: int = 12
) -> list[ScalingSchedule]:
    """One schedule per month of the window, firing on that month's business days of that year only.

    Any number of months up to GCE's 128 schedules is right: each month's cron carries its year.
    """
    if not 1 <= months <= MAX_SCHEDULES:
        raise ScheduleError(f"months is {months}; compile between 1 and {MAX_SCHEDULES} months of schedules.")
    if calendar.business_min_replicas <= calendar.min_replicas:
        # Business hours ask for nothing above the autoscaler's own minimum.
        return []
    duration = (calendar.business_end_hour - calendar.business_start_hour) * 3600
    result: list[ScalingSchedule] = []
    year, month = start.year, start.month
    for _ in range(months):
        days = [
            d
            for d in _days_of_month(year, month)
            if d >= start.replace(day=1) and calendar.is_business_day(d)
        ]
        if days:
            day_list = ",".join(str(d.day) for d in days)
            result.append(
                ScalingSchedule(
                    name=f"business-{year}-{month:02d}",
                    # The year (6th field) pins the day list to this one month: without it a stack not
                    # re-applied within a year fires last year's days (weekends, holidays) again.
                    schedule=f"0 {calendar.business_start_hour} {day_list} {month} * {year}",
                    duration_sec=duration,
                    min_required_replicas=calendar.business_min_replicas,
                    time_zone=calendar.time_zone,
                    description=(
                        f"Business hours on {len(days)} working days of {year}-{month:02d} "
                        f"({calendar.country} holidays left out)"
                    ),
                )
            )
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    validate_schedules(result)
    return result


def validate_schedules(schedules: list[ScalingSchedule]) -> None:
    if len(schedules) > MAX_SCHEDULES:
        raise ScheduleError(f"{len(schedules)} schedules; GCE allows at most {MAX_SCHEDULES} per autoscaler.")
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise ScheduleError("schedule names must be unique within an autoscaler.")
    for s in schedules:
        if s.duration_sec < MIN_DURATION_S:
            raise ScheduleError(f"schedule {s.name}: duration_sec {s.duration_sec} < {MIN_DURATION_S}.")
        parse_cron(s.schedule)


@dataclass(frozen=True)
class CronSpec:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering: 0 = Sunday
    #: None: every year (a 5-field cron).
    years: frozenset[int] | None = None

    def matches(self, when: dt.datetime) -> bool:
        return (
            (self.years is None or when.year in self.years)
            and when.minute in self.minutes
            and when.hour in self.hours
            and when.day in self.days
            and when.month in self.months
            and (when.isoweekday() % 7) in self.weekdays
        )


_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
#: GCE's scaling-schedule cron takes an optional 6th field, the year.
_YEAR_RANGE = (1970, 2099)


def parse_cron(expression: str) -> CronSpec:
    """Parse the subset of cron that schedules use: numbers, lists, ranges, steps and '*', with an
    optional 6th field for the year."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"cron {expression!r} must have 5 or 6 fields (minute hour day month weekday [year])."
        )
    parsed = [_parse_cron_field(f, lo, hi, expression) for f, (lo, hi) in zip(fields, _CRON_RANGES, strict=False)]
    years = _parse_cron_field(fields[5], *_YEAR_RANGE, expression) if len(fields) == 6 else None
    minutes, hours, days, months, weekdays = parsed
    return CronSpec(minutes, hours, days, months, weekdays, years=years)


def _parse_cron_field(text: str, lo: int, hi: int, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                first, last = lo, hi
            elif "-" in base:
                a, b = base.split("-", 1)
                first, last = int(a), int(b)
            else:
                first = last = int(base)
        except ValueError as exc:
            raise ScheduleError(f"cron {expression!r}: field {text!r} is not a number, list or range.") from exc
        if not lo <= first <= last <= hi or step < 1:
            raise ScheduleError(f"cron {expression!r}: field {text!r} is outside {lo}-{hi}.")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def active_floor(
    schedules: list[ScalingSchedule], base_min: int, when: dt.datetime
) -> int:
    """What GCE would enforce at `when`: the largest minimum among active schedules, never below
    the autoscaler's own minimum. A schedule is active for duration_sec after each cron firing."""
    floor = base_min
    for s in schedules:
        if s.min_required_replicas > floor and _is_active(s, when):
            floor = s.min_required_replicas
    return floor


def _is_active(schedule: ScalingSchedule, when: dt.datetime) -> bool:
    local = when.astimezone(ZoneInfo(schedule.time_zone))
    cron = parse_cron(schedule.schedule)
    window = dt.timedelta(seconds=schedule.duration_sec)
    # Firings that could still be running started at most `duration` ago: check those days only.
    day = (local - window).date()
    while day <= local.date():
        in_year = cron.years is None or day.year in cron.years
        if in_year and day.day in cron.days and day.month in cron.months and (day.isoweekday() % 7) in cron.weekdays:
            for hour in cron.hours:
                for minute in cron.minutes:
                    fired = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=local.tzinfo)
                    if fired <= local < fired + window:
                        return True
        day += dt.timedelta(days=1)
    return False


def _days_of_month(year: int, month: int) -> list[dt.date]:
    day = dt.date(year, month, 1)
    out = []
    while day.month == month:
        out.append(day)
        day += dt.timedelta(days=1)
    return out
