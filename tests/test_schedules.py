"""Business-calendar schedules: holidays left out, GCE's limits enforced, floors as GCE computes them."""

from __future__ import annotations

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
    calendar = BusinessCalendar(business_min_workers=2, off_hours_min_workers=0)
    schedules = compile_schedules(calendar, dt.date(2026, 11, 1))
    start = dt.datetime(2026, 11, 16, tzinfo=TOKYO)
    for hour in range(24 * 14):
        when = start + dt.timedelta(hours=hour, minutes=30)
        assert active_floor(schedules, 0, when) == calendar.floor_at(when), when


def test_holiday_floor_stays_at_the_night_minimum() -> None:
    calendar = BusinessCalendar(business_min_workers=3, off_hours_min_workers=1)
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
    assert compile_schedules(BusinessCalendar(business_min_workers=0), dt.date(2026, 1, 1)) == []


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
    with pytest.raises(ScheduleError, match="5 fields"):
        parse_cron("0 9 * *")
    with pytest.raises(ScheduleError, match="outside"):
        parse_cron("0 25 * * *")
