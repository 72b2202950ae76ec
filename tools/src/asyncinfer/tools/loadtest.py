"""Submit rendered drawings, wait for every answer, and report what came back.

Shared by `asyncinfer loadtest`, `asyncinfer demo` and the fault runs: one place decides what counts
as ok, error, dead-lettered, lost and duplicated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from drawing_symbols.render import SYMBOL_CLASSES, render_png


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
    during: Callable[[float], None] | None = None,
) -> LoadReport:
    """`rate` is requests/s (0 = as fast as the publisher goes). `during(elapsed_s)` is called about
    every 50 ms while waiting (fault runs kill workers from it)."""
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
            request_id = f"load-{seed}-{i}"
            labels[request_id] = label
            client.submit(InferenceRequest.inline(request_id, model, png))
            progress.update(sent, advance=1)
            if rate > 0:
                lag = started + (i + 1) / rate - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            if during is not None and i % 50 == 0:
                during(time.monotonic() - started)
            progress.update(answered, completed=len(client.answers))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = client.wait(labels, timeout_s=0.05)
            progress.update(answered, completed=len(got))
            if len(got) == len(labels):
                break
            if during is not None:
                during(time.monotonic() - started)
    duration = time.monotonic() - started
    return summarize(client, labels, duration, peak_workers())


def summarize(client: AsyncInferClient, labels: dict[str, str], duration_s: float, peak: int) -> LoadReport:
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
    )
