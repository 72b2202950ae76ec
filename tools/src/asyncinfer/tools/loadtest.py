"""Submit rendered drawings, wait for every answer, and report what came back.

Shared by `asyncinfer loadtest`, `asyncinfer demo` and the fault runs: one place decides what counts
as ok, error, dead-lettered, lost and duplicated, and what makes a run fail.

Request ids carry a fresh nonce per run (`load-<run_id>-<i>`): on a shared emulator a queue may still
hold an earlier run's requests, and their answers must never count as this run's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from drawing_symbols.render import SYMBOL_CLASSES, render_png

#: The lowest accuracy on the rendered drawings that a demo or chaos run accepts. The symbols model's
#: held-out accuracy is 99.95 % (its checkpoint's metadata) and tests/test_symbol_model.py asserts
#: >= 0.97 through the same decode path; below this, answers reach the right ids but are wrong.
MIN_ACCURACY = 0.97


@dataclass
class LoadReport:
    submitted: int
    ok: int
    error: int
    dead_lettered: int
    lost: int
    duplicates: int
    duplicate_ids: int
    accuracy: float | None
    latency_ms: dict[str, float]
    peak_workers: int
    duration_s: float
    throughput_per_s: float
    error_codes: dict[str, int] = field(default_factory=dict)
    #: The nonce in this run's request ids.
    run_id: str = ""
    #: Results on the results topic that the client could not parse, and its failed pulls.
    unreadable_results: int = 0
    pull_errors: int = 0
    #: Each request id's true class (not in the JSON: the audit uses it to check every result).
    labels: dict[str, str] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        figures = asdict(self)
        del figures["labels"]
        return figures

    def failures(self, min_accuracy: float = MIN_ACCURACY) -> list[str]:
        """Why this run failed, in words; empty when every request got a correct-enough answer."""
        found = []
        if self.lost:
            found.append(f"{self.lost} requests were not answered")
        if self.error:
            found.append(f"{self.error} requests got error results ({self.error_codes})")
        if self.dead_lettered:
            found.append(f"{self.dead_lettered} requests were dead-lettered")
        if self.accuracy is None:
            found.append("no ok answer, so no accuracy")
        elif self.accuracy < min_accuracy:
            found.append(f"accuracy {self.accuracy:.2%} is below the threshold {min_accuracy:.0%}")
        return found


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


def request_id_for(run_id: str, index: int) -> str:
    return f"load-{run_id}-{index}"


def render_drawings(count: int, seed: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(SYMBOL_CLASSES), size=count)
    return [(SYMBOL_CLASSES[int(i)], render_png(SYMBOL_CLASSES[int(i)], rng)) for i in labels]


def run_load(
    client: AsyncInferClient,
    count: int,
    *,
    rate: float = 0.0,
    seed: int = 0,
    model: str = "symbols",
    timeout_s: float = 300.0,
    show_progress: bool = True,
    peak_workers: Callable[[], int] = lambda: 0,
    during: Callable[[int], None] | None = None,
    run_id: str | None = None,
    holds: Callable[[int], bool] | None = None,
) -> LoadReport:
    """`rate` is requests/s (0 = as fast as the publisher goes). `during(answered)` is called every 50
    submissions and about every 50 ms while waiting, with how many of this run's requests have an
    answer (fault runs kill workers from it: by progress, not by the clock, so a slow machine slows
    the kills with the answers). `seed` picks the drawings; `run_id` (default: a fresh nonce) goes
    into the request ids. `holds(i)` true makes request i wait (fault runs: until an overdue kill
    happened), for at most `timeout_s`."""
    run_id = run_id or new_run_id()
    drawings = render_drawings(count, seed)
    labels: dict[str, str] = {}
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not show_progress, transient=False,
    ) as progress:
        sent = progress.add_task("submitted", total=count)
        answered = progress.add_task("answered", total=count)
        for i, (label, png) in enumerate(drawings):
            held_since = time.monotonic()
            while holds is not None and holds(i) and time.monotonic() - held_since < timeout_s:
                if during is not None:
                    during(client.count_answered(labels))
                time.sleep(0.05)
            request_id = request_id_for(run_id, i)
            labels[request_id] = label
            client.submit(InferenceRequest.inline(request_id, model, png))
            progress.update(sent, advance=1)
            if rate > 0:
                lag = started + (i + 1) / rate - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            if i % 50 == 0:
                done = client.count_answered(labels)
                progress.update(answered, completed=done)
                if during is not None:
                    during(done)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = client.wait(labels, timeout_s=0.05)
            progress.update(answered, completed=len(got))
            if len(got) == len(labels):
                break
            if during is not None:
                during(len(got))
    duration = time.monotonic() - started
    return summarize(client, labels, duration, peak_workers(), run_id=run_id)


def summarize(
    client: AsyncInferClient, labels: dict[str, str], duration_s: float, peak: int, run_id: str = ""
) -> LoadReport:
    answers = client.results()
    ok = error = dead = correct = 0
    latencies = []
    codes: dict[str, int] = {}
    for request_id, label in labels.items():
        answer = answers.get(request_id)
        if answer is None:
            continue
        latencies.append((answer.received_at - client.submitted_at[request_id]) * 1000)
        if answer.kind == "dead_letter":
            dead += 1
        elif answer.ok:
            ok += 1
            assert answer.result is not None and answer.result.output is not None
            correct += answer.result.output.get("label") == label
        else:
            error += 1
            assert answer.result is not None and answer.result.error is not None
            codes[answer.result.error.code] = codes.get(answer.result.error.code, 0) + 1
    percentiles = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    duplicate_ids = [r for r in labels if client.duplicate_answers.get(r)]
    return LoadReport(
        submitted=len(labels),
        ok=ok,
        error=error,
        dead_lettered=dead,
        lost=len(labels) - ok - error - dead,
        duplicates=sum(client.duplicate_answers[r] for r in duplicate_ids),
        duplicate_ids=len(duplicate_ids),
        accuracy=round(correct / ok, 4) if ok else None,
        latency_ms={k: round(float(v), 1) for k, v in zip(("p50", "p95", "p99"), percentiles, strict=True)},
        peak_workers=peak,
        duration_s=round(duration_s, 2),
        throughput_per_s=round(len(labels) / duration_s, 1) if duration_s else 0.0,
        error_codes=codes,
        run_id=run_id,
        unreadable_results=client.unreadable_results,
        pull_errors=client.pull_errors,
        labels=dict(labels),
    )
