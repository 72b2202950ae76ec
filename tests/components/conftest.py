"""Pulumi mocks for component tests: a recording engine per test, and a graph to assert on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest

from asyncinfer.components.testing import RecordedResource, RecordingMonitor, install_mocks, run_under_mocks

PROJECT = "test-project"
#: Pinned so schedule contents do not depend on the day the tests run.
SCHEDULE_START = dt.date(2025, 1, 1)


@dataclass
class Graph:
    resources: list[RecordedResource]

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def by_name(self, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def children_of(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def custom(self) -> list[RecordedResource]:
        return [r for r in self.resources if r.custom]

    def components(self) -> list[RecordedResource]:
        return [r for r in self.resources if r.type.startswith("asyncinfer:index:")]

    def count(self, type_: str) -> int:
        return len(self.of_type(type_))


class Engine:
    """A fresh mock engine; `run` builds inside `pulumi.runtime.test` and returns the graph."""

    def __init__(self) -> None:
        self.monitor: RecordingMonitor = install_mocks(PROJECT, "symbols")
        pulumi.runtime.set_all_config({})

    def run(self, build: Callable[[], Any], config: dict[str, str] | None = None) -> Graph:
        if config is not None:
            pulumi.runtime.set_all_config(config)
        return Graph(run_under_mocks(build, monitor=self.monitor))

    @property
    def graph(self) -> Graph:
        return Graph(self.monitor.graph())


@pytest.fixture
def engine() -> Iterator[Engine]:
    # One engine per test: set_mocks replaces the runtime's settings, so nothing leaks between tests.
    yield Engine()
    pulumi.runtime.set_all_config({})
