"""CPU accounting from /proc: the fine (schedstat) reading agrees with the process's own clock."""

from __future__ import annotations

import os
import time

from asyncinfer.tools.proc_cpu import cpu_seconds_fine


def _spin(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


def test_the_fine_reading_sees_a_few_milliseconds_that_clock_ticks_would_miss() -> None:
    own_before, fine_before = time.process_time(), cpu_seconds_fine([os.getpid()])
    _spin(0.004)  # under half a clock tick (10 ms)
    own, fine = time.process_time() - own_before, cpu_seconds_fine([os.getpid()]) - fine_before
    assert own >= 0.004
    assert 0.5 * own <= fine <= 2 * own + 0.002


def test_a_process_that_is_gone_counts_nothing() -> None:
    assert cpu_seconds_fine([2**22 + 12345]) == 0.0
