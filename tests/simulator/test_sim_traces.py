from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from asyncinfer.tools.simulator.traces import (
    REFERENCE_START,
    TraceError,
    load_trace,
    office_week,
    parse_trace,
)


def test_arrival_times_with_and_without_header() -> None:
    bare = parse_trace("3.5\n0\n61\n")
    headed = parse_trace("arrival_s\n3.5\n0\n61\n")
    assert bare.arrivals.tolist() == [0.0, 3.5, 61.0]  # sorted
    assert headed.arrivals.tolist() == bare.arrivals.tolist()
    assert bare.duration_s == 120.0  # rounded up to whole minutes


def test_minute_counts_are_spread_within_their_minute() -> None:
    trace = parse_trace("minute,count\n0,3\n2,5\n", seed=1)
    assert trace.count == 8
    assert trace.duration_s == 180.0
    assert trace.per_minute().tolist() == [3, 0, 5]
    assert np.all(np.diff(trace.arrivals) >= 0)


def test_start_comment_and_override() -> None:
    text = "# start: 2026-01-05T00:00:00+01:00\nminute,count\n0,1\n"
    assert parse_trace(text).start == dt.datetime.fromisoformat("2026-01-05T00:00:00+01:00")
    assert parse_trace("0\n").start == REFERENCE_START
    override = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert parse_trace(text, start=override).start == override


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0\n1.5\nabc\n", "line 3"),
        ("0\n-4\n", "line 2"),
        ("minute,count\n0,1\n1,x\n", "line 3"),
        ("minute,count\n0,1\n0,2\n", "minute 0 appears more than once"),
        ("minute,count\n0,1,2\n", "line 2"),
        ("1,2\n3,4\n", "line 1"),
        ("# only a comment\n\n", "no arrivals"),
        ("# start: yesterday\n0\n", "line 1"),
        ("minute,count\n", "no rows"),
    ],
)
def test_bad_input_names_the_line(text: str, fragment: str) -> None:
    with pytest.raises(TraceError, match=fragment):
        parse_trace(text, name="bad.csv")


def test_reference_traces_are_reproducible_and_committed(tmp_path: Path) -> None:
    counts = office_week()
    assert np.array_equal(counts, office_week())  # seeded
    committed = Path(__file__).parents[2] / "traces" / "office_week.csv"
    trace = load_trace(committed)
    assert trace.count == int(counts.sum())
    assert trace.duration_s == 7 * 86400
    per_day = trace.per_minute().reshape(7, 1440).sum(axis=1)
    # Monday 2026-11-23 is a public holiday: as quiet as the weekend, far below Tuesday-Friday.
    assert per_day[0] < per_day[1] / 10
    assert per_day[1:5].min() > 10 * max(per_day[0], per_day[5], per_day[6])


def test_trace_families_span_peak_to_mean_from_about_5_to_about_100() -> None:
    from asyncinfer.tools.simulator.traces import FAMILIES, family_trace, peak_to_mean

    ratios = {f: peak_to_mean(family_trace(f, seed=0)) for f in FAMILIES}
    assert 3 < ratios["steady-trickle"] < 8
    assert 15 < ratios["bursty-batch"] < 80
    assert ratios["office-week"] > 60
    again = family_trace("bursty-batch", seed=0)
    assert np.array_equal(again.arrivals, family_trace("bursty-batch", seed=0).arrivals)  # seeded
    assert not np.array_equal(again.per_minute(), family_trace("bursty-batch", seed=1).per_minute())
    with pytest.raises(TraceError, match="unknown; pick one of"):
        family_trace("flat", seed=0)


def test_committed_family_traces_are_the_generators_output() -> None:
    from asyncinfer.tools.simulator.traces import bursty_batch, steady_trickle

    root = Path(__file__).parents[2] / "traces"
    for name, counts in (("steady_trickle.csv", steady_trickle()), ("bursty_batch.csv", bursty_batch())):
        trace = load_trace(root / name)
        stale = f"{name} is stale: python -m asyncinfer.tools.simulator.traces"
        assert np.array_equal(trace.per_minute(), counts), stale
