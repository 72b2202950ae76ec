"""Traffic traces: reading them, and generating the reference traces under traces/.

Two CSV formats, told apart by their first line:
- arrival times: one number of seconds per line (an optional one-word header such as `arrival_s`);
- per-minute counts: the header `minute,count`, then `minute,count` rows of integers.
Comment lines start with `#`; `# start: 2026-11-23T00:00:00+09:00` says when second 0 is, which the
business calendar needs (the command line's --start overrides it).

`python -m asyncinfer.tools.simulator.traces [DIR]` regenerates the reference traces (seeded, so the
files come out identical).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

#: The reference week: Monday 2026-11-23 is Labor Thanksgiving Day, a Japanese public holiday.
REFERENCE_START = dt.datetime(2026, 11, 23, tzinfo=ZoneInfo("Asia/Tokyo"))
MINUTE_HEADER = "minute,count"


class TraceError(ValueError):
    """A trace file that is neither format; the message names the file and the line."""


@dataclass(frozen=True)
class Trace:
    """Arrival times in seconds since `start`, sorted; the trace covers [0, duration_s)."""

    name: str
    arrivals: np.ndarray
    duration_s: float
    start: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise TraceError(f"trace {self.name}: start {self.start.isoformat()} needs a UTC offset.")

    @property
    def count(self) -> int:
        return int(self.arrivals.size)

    def per_minute(self) -> np.ndarray:
        """Arrivals in each minute of the trace (plots and sizing the synchronous fleet)."""
        minutes = math.ceil(self.duration_s / 60)
        return np.bincount((self.arrivals // 60).astype(np.int64), minlength=minutes)[:minutes]

    def with_start(self, start: dt.datetime) -> Trace:
        return Trace(self.name, self.arrivals, self.duration_s, start)


def _parse_start(value: str, where: str) -> dt.datetime:
    try:
        start = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise TraceError(f"{where}: start {value.strip()!r} is not an ISO 8601 date-time.") from exc
    if start.tzinfo is None:
        raise TraceError(f"{where}: start {value.strip()!r} needs a UTC offset, e.g. +09:00.")
    return start


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_trace(
    text: str, name: str = "<trace>", start: dt.datetime | None = None, seed: int = 0
) -> Trace:
    """Parse either format. Per-minute counts are spread uniformly at random over their minute
    (seeded), which is what Poisson arrivals at that minute's rate look like."""
    rows: list[tuple[int, str]] = []
    found_start: dt.datetime | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip().lower() == "start":
                found_start = _parse_start(value, f"{name} line {number}")
            continue
        rows.append((number, line))
    if not rows:
        raise TraceError(f"{name}: no arrivals (the file is empty or only comments).")
    chosen_start = start or found_start or REFERENCE_START
    first_number, first = rows[0]
    if first.replace(" ", "").lower() == MINUTE_HEADER:
        return _parse_minutes(rows[1:], name, chosen_start, seed)
    if "," not in first and not _is_number(first):
        rows = rows[1:]  # a one-word header naming the column
    elif "," in first:
        raise TraceError(
            f"{name} line {first_number}: {first!r} has several columns; per-minute counts need the "
            f"header {MINUTE_HEADER!r}, arrival times one number per line."
        )
    return _parse_arrivals(rows, name, chosen_start)


def _parse_arrivals(rows: list[tuple[int, str]], name: str, start: dt.datetime) -> Trace:
    values = np.empty(len(rows), dtype=np.float64)
    for i, (number, line) in enumerate(rows):
        try:
            value = float(line)
        except ValueError:
            raise TraceError(
                f"{name} line {number}: {line!r} is not an arrival time (one number of seconds per line)."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise TraceError(f"{name} line {number}: arrival time {line!r} must be a finite number >= 0.")
        values[i] = value
    values.sort()
    duration = math.ceil((values[-1] + 1e-9) / 60) * 60 if values.size else 60.0
    return Trace(name, values, float(duration), start)


def _parse_minutes(rows: list[tuple[int, str]], name: str, start: dt.datetime, seed: int) -> Trace:
    minutes = np.empty(len(rows), dtype=np.int64)
    counts = np.empty(len(rows), dtype=np.int64)
    for i, (number, line) in enumerate(rows):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise TraceError(
                f"{name} line {number}: {line!r} is not a 'minute,count' row of two whole numbers >= 0."
            )
        minutes[i], counts[i] = int(parts[0]), int(parts[1])
    if minutes.size == 0:
        raise TraceError(f"{name}: the header {MINUTE_HEADER!r} is followed by no rows.")
    order = np.argsort(minutes, kind="stable")
    minutes, counts = minutes[order], counts[order]
    duplicated = np.flatnonzero(np.diff(minutes) == 0)
    if duplicated.size:
        minute = int(minutes[duplicated[0]])
        lines = [n for n, line in rows if line.split(",")[0].strip() == str(minute)]
        raise TraceError(f"{name} lines {lines}: minute {minute} appears more than once.")
    rng = np.random.default_rng(seed)
    arrivals = np.repeat(minutes, counts) * 60.0 + rng.random(int(counts.sum())) * 60.0
    arrivals.sort()
    return Trace(name, arrivals, float((minutes[-1] + 1) * 60), start)


def load_trace(path: Path, start: dt.datetime | None = None, seed: int = 0) -> Trace:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not a text file ({exc.reason}).") from None
    return parse_trace(text, path.name, start, seed)


# --- reference traces -------------------------------------------------------------------------


def _office_rate(local: dt.datetime, business_day: bool) -> float:
    """Mean requests per minute of a drawing-analysis service for a Japanese office."""
    hour = local.hour + local.minute / 60
    if not business_day:
        # Weekends and holidays: a trickle, a little more in the daytime.
        return 2.0 if 10 <= hour < 17 else 0.3
    if hour < 7:
        return 0.2
    if hour < 9:
        return 0.5 + (hour - 7) / 2 * 30  # people arrive
    if hour < 12:
        return 60.0
    if hour < 13:
        return 25.0  # lunch
    if hour < 18:
        return 70.0
    if hour < 21:
        return 30.0 - (hour - 18) / 3 * 28  # evening, tapering
    return 1.0


def office_week(days: int = 7, start: dt.datetime = REFERENCE_START, seed: int = 20261123) -> np.ndarray:
    """Per-minute counts: office hours on business days, two bulk uploads (spikes) per business
    day, quiet nights, weekends and the public holiday."""
    import holidays  # only the generator needs it

    rng = np.random.default_rng(seed)
    jp = holidays.country_holidays("JP", years=range(start.year, start.year + 2))
    counts = np.zeros(days * 1440, dtype=np.int64)
    for day in range(days):
        day_start = start + dt.timedelta(days=day)
        business = day_start.weekday() < 5 and day_start.date() not in jp
        rates = np.array([_office_rate(day_start + dt.timedelta(minutes=m), business) for m in range(1440)])
        if business:
            for _ in range(2):
                # A team uploads an archive of drawings: thousands within minutes.
                first = int(rng.integers(10 * 60, 16 * 60))
                length = int(rng.integers(5, 16))
                size = int(rng.integers(6_000, 18_000))
                rates[first : first + length] += size / length
        counts[day * 1440 : (day + 1) * 1440] = rng.poisson(rates)
    return counts


def steady_trickle(days: int = 7, start: dt.datetime = REFERENCE_START, seed: int = 1) -> np.ndarray:
    """Per-minute counts: a steady trickle around the clock (an integration that sends a few
    drawings a minute, a little more in the daytime): peak-to-mean about 5."""
    rng = np.random.default_rng(seed)
    tz_hours = (np.arange(days * 1440) / 60.0 + start.hour) % 24
    rates = 2.0 + 2.0 * np.clip(np.sin((tz_hours - 6) / 24 * 2 * np.pi), 0, None)  # 2-4 per minute
    return rng.poisson(rates).astype(np.int64)


def bursty_batch(days: int = 7, start: dt.datetime = REFERENCE_START, seed: int = 2) -> np.ndarray:
    """Per-minute counts: batch jobs that drop a few thousand drawings within minutes at random
    times of day, two to five a day, over a background of about one request a minute:
    peak-to-mean about 20-40."""
    rng = np.random.default_rng(seed)
    rates = np.full(days * 1440, 1.0)
    for day in range(days):
        for _ in range(int(rng.integers(2, 6))):
            first = day * 1440 + int(rng.integers(0, 1440 - 60))
            length = int(rng.integers(10, 41))
            size = int(rng.integers(1_000, 5_001))
            rates[first : first + length] += size / length
    return rng.poisson(rates).astype(np.int64)


#: Trace families for sensitivity runs: name -> (generator, what it is). Seeds pick instances.
FAMILIES = {
    "steady-trickle": (steady_trickle, "2-4 requests/min around the clock, peak-to-mean ~5"),
    "bursty-batch": (bursty_batch, "2-5 batch jobs a day of 1,000-5,000 requests in 10-40 min"),
    "office-week": (office_week, "Tokyo office hours and two bulk uploads per business day, ~100"),
}


def family_trace(family: str, seed: int, days: int = 7, start: dt.datetime = REFERENCE_START) -> Trace:
    """One instance of a trace family (per-minute counts spread within their minute, seeded)."""
    try:
        generator, _ = FAMILIES[family]
    except KeyError:
        raise TraceError(f"trace family {family!r} is unknown; pick one of {', '.join(FAMILIES)}.") from None
    counts = generator(days=days, start=start, seed=seed)
    rng = np.random.default_rng(seed)
    minutes = np.arange(counts.size)
    arrivals = np.repeat(minutes, counts) * 60.0 + rng.random(int(counts.sum())) * 60.0
    arrivals.sort()
    return Trace(f"{family}#{seed}", arrivals, float(counts.size * 60), start)


def peak_to_mean(trace: Trace) -> float:
    """Busiest minute over the mean minute: what sizing for peak pays for."""
    minutes = trace.per_minute()
    return float(minutes.max() / minutes.mean()) if minutes.size and minutes.mean() else 0.0


def write_minute_trace(path: Path, counts: np.ndarray, start: dt.datetime, comment: str) -> None:
    lines = [f"# {comment}", f"# start: {start.isoformat()}", MINUTE_HEADER]
    lines += [f"{m},{int(c)}" for m, c in enumerate(counts) if c]  # absent minutes have no arrivals
    # The last minute is always written so the trace keeps its full length.
    if counts.size and not counts[-1]:
        lines.append(f"{counts.size - 1},0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the reference traces (seeded).")
    parser.add_argument("out", nargs="?", type=Path, default=Path("traces"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    week = office_week()
    write_minute_trace(
        args.out / "office_week.csv",
        week,
        REFERENCE_START,
        "A week in Tokyo from Mon 2026-11-23 (Labor Thanksgiving Day): office hours with two bulk "
        "uploads per business day, quiet nights and weekend. Regenerate: python -m asyncinfer.tools.simulator.traces",
    )
    # One business day (Tuesday): quick runs and the spike comparison.
    day = week[1440 : 2 * 1440]
    write_minute_trace(
        args.out / "office_day.csv",
        day,
        REFERENCE_START + dt.timedelta(days=1),
        "Tue 2026-11-24 of office_week.csv. Regenerate: python -m asyncinfer.tools.simulator.traces",
    )
    trickle = steady_trickle()
    write_minute_trace(
        args.out / "steady_trickle.csv",
        trickle,
        REFERENCE_START,
        "A week of a steady trickle: " + FAMILIES["steady-trickle"][1]
        + ". Regenerate: python -m asyncinfer.tools.simulator.traces",
    )
    batch = bursty_batch()
    write_minute_trace(
        args.out / "bursty_batch.csv",
        batch,
        REFERENCE_START,
        "A week of bursty batch days: " + FAMILIES["bursty-batch"][1]
        + ". Regenerate: python -m asyncinfer.tools.simulator.traces",
    )
    print(f"wrote {args.out}/office_week.csv ({int(week.sum())} requests), "
          f"{args.out}/office_day.csv ({int(day.sum())} requests), "
          f"{args.out}/steady_trickle.csv ({int(trickle.sum())} requests), "
          f"{args.out}/bursty_batch.csv ({int(batch.sum())} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
