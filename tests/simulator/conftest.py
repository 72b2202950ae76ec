"""Small traces built in memory: each test states exactly when requests arrive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pytest

from asyncinfer.tools.simulator.traces import REFERENCE_START, Trace


@pytest.fixture
def make_trace() -> Callable[..., Trace]:
    def make(arrivals: list[float] | np.ndarray, duration_s: float = 60.0,
             start: dt.datetime = REFERENCE_START) -> Trace:
        values = np.sort(np.asarray(arrivals, dtype=np.float64))
        return Trace("test", values, float(duration_s), start)

    return make
