"""Business-calendar schedules: holidays left out, GCE's limits enforced, floors as GCE computes them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from asyncinfer.core.schedules import (
    BusinessCalendar,
    ScalingSchedule,
    ScheduleError,
    active_floor,
    compile_schedules,
    parse_cron,
    validate_schedules,
)

TOKYO = ZoneInfo("Asia/Tokyo")


def test_japanese_holidays_are_left_out_of_the_weekday_schedules() -> None:
    schedules = compile_schedules(BusinessCalendar(), dt.date(2026, 11, 1))
    november = next(s for s in schedules if s.name == "business-2026-11")
    days = {int(d) for d in november.schedule.split()[2].split(",")}
    assert 3 not in days and 23 not in days  # Culture Day, Labor Thanksgiving Day
    assert 24 in days and 7 not in days  # an ordinary Tuesday in, a Saturday out
    assert len(schedules) == 12
    assert all(s.duration_sec == 9 * 3600 and s.time_zone == "Asia/Tokyo" for s in schedules)


def test_floor_from_compiled_schedules_matches_the_calendar_every_hour() -> None:
    calendar = BusinessCalendar(business_min_replicas=2, min_replicas=0)
    schedules = compile_schedules(calendar, dt.date(2026, 11, 1))
    start = dt.datetime(2026, 11, 16, tzinfo=TOKYO)
    for hour in range(24 * 14):
        when = start + dt.timedelta(hours=hour, minutes=30)
        assert active_floor(schedules, 0, when) == calendar.floor_at(when), when


def test_holiday_floor_stays_at_the_night_minimum() -> None:
    calendar = BusinessCalendar(business_min_replicas=3, min_replicas=1)
    schedules = compile_schedules(calendar, dt.date(2026, 11, 1))
    assert active_floor(schedules, 1, dt.datetime(2026, 11, 23, 11, tzinfo=TOKYO)) == 1
    assert active_floor(schedules, 1, dt.datetime(2026, 11, 24, 11, tzinfo=TOKYO)) == 3
    assert active_floor(schedules, 1, dt.datetime(2026, 11, 24, 19, tzinfo=TOKYO)) == 1


def test_other_countries_use_their_own_holidays() -> None:
    us = compile_schedules(BusinessCalendar(country="US", time_zone="America/New_York"), dt.date(2026, 11, 1))
    days = {int(d) for d in us[0].schedule.split()[2].split(",")}
    assert 26 not in days  # Thanksgiving 2026
    assert 23 in days


def test_no_schedules_when_business_hours_ask_for_nothing_more() -> None:
    assert compile_schedules(BusinessCalendar(business_min_replicas=0), dt.date(2026, 1, 1)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "IANA"),
        ({"country": "XX"}, "holidays"),
        ({"business_start_hour": 18, "business_end_hour": 9}, "start < end"),
        ({"weekdays": (7,)}, "weekdays"),
    ],
)
def test_bad_calendars_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        BusinessCalendar(**kwargs)  # type: ignore[arg-type]


def test_gce_limits_are_enforced() -> None:
    ok = ScalingSchedule("a", "0 9 * * 1-5", 300, 1, "UTC", "")
    validate_schedules([ok])
    with pytest.raises(ScheduleError, match="duration"):
        validate_schedules([ScalingSchedule("a", "0 9 * * *", 299, 1, "UTC", "")])
    with pytest.raises(ScheduleError, match="at most 128"):
        validate_schedules([ScalingSchedule(f"s{i}", "0 9 * * *", 300, 1, "UTC", "") for i in range(129)])
    with pytest.raises(ScheduleError, match="5 or 6 fields"):
        parse_cron("0 9 * *")
    with pytest.raises(ScheduleError, match="outside"):
        parse_cron("0 9 * * * 3000")
    with pytest.raises(ScheduleError, match="outside"):
        parse_cron("0 25 * * *")


def test_every_schedule_names_its_year() -> None:
    schedules = compile_schedules(BusinessCalendar(), dt.date(2026, 11, 1))
    for s in schedules:
        year = int(s.name.split("-")[1])
        assert s.schedule.split()[5] == str(year)
        assert parse_cron(s.schedule).years == frozenset({year})


def test_a_stack_not_reapplied_for_a_year_does_not_fire_last_years_days() -> None:
    """Compiled in November 2026 and never re-applied: in November 2027 the November 2026 day list
    must not raise the floor on 2027's weekends."""
    calendar = BusinessCalendar(business_min_replicas=2, min_replicas=0)
    schedules = compile_schedules(calendar, dt.date(2026, 11, 1))
    # 2026-11-24 was a business day (a Tuesday); 2027-11-24 is a Wednesday, but no 2027-11 schedule
    # exists in the window: only a 5-field cron would fire on it again.
    assert active_floor(schedules, 0, dt.datetime(2026, 11, 24, 11, tzinfo=TOKYO)) == 2
    assert active_floor(schedules, 0, dt.datetime(2027, 11, 24, 11, tzinfo=TOKYO)) == 0
    # 2027-11-06 is a Saturday; 6 is in November 2026's day list (a Friday then).
    assert "6" in next(s for s in schedules if s.name == "business-2026-11").schedule.split()[2].split(",")
    assert active_floor(schedules, 0, dt.datetime(2027, 11, 6, 11, tzinfo=TOKYO)) == 0


def test_more_than_twelve_months_follow_each_years_calendar_exactly() -> None:
    """24 months: every business day of both years floors exactly as the calendar says. The same
    schedules without the year field get 103 days wrong (measured here, JP calendar from 2026-01)."""
    calendar = BusinessCalendar(business_min_replicas=2, min_replicas=0)
    schedules = compile_schedules(calendar, dt.date(2026, 1, 1), months=24)
    assert len(schedules) == 24 and len({s.name for s in schedules}) == 24
    without_year = [dataclasses.replace(s, schedule=" ".join(s.schedule.split()[:5])) for s in schedules]

    def wrong_days(compiled: list[ScalingSchedule]) -> int:
        wrong, day = 0, dt.date(2026, 1, 1)
        while day < dt.date(2028, 1, 1):
            when = dt.datetime(day.year, day.month, day.day, 11, tzinfo=TOKYO)
            wrong += active_floor(compiled, 0, when) != calendar.floor_at(when)
            day += dt.timedelta(days=1)
        return wrong

    assert wrong_days(schedules) == 0
    assert wrong_days(without_year) == 103
    with pytest.raises(ScheduleError, match="between 1 and 128"):
        compile_schedules(calendar, dt.date(2026, 1, 1), months=129)
