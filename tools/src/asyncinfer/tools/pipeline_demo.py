"""`asyncinfer demo --pipeline`: the example chain (page -> symbol crops -> classifier) from zero.

Two local stacks on one emulator, one per stage, each with its own queue and autoscaled pool (both
start at zero workers); a stage forwarder between them; the client submits rendered pages and joins
each page's answers. The report gives, per stage, the demo's fields (submitted, ok, errors, dead
letters, lost, duplicates, latency, throughput, scale-ups, peak workers), and for the whole chain the
symbols found on the pages and the classifier's accuracy on the crops against the true classes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asyncinfer.client.pipeline import JoinedAnswer, PipelineJoiner, StageForwarder
from asyncinfer.client.pubsub import subscriber_client
from asyncinfer.client.tap import PubsubMessage, SubscriptionTap
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.pipeline import Pipeline, Stage
from asyncinfer.tools.loadtest import new_run_id
from asyncinfer.tools.local.stack import LocalStack, LocalStackConfig
from drawing_symbols import HANDLER as SYMBOLS_HANDLER
from drawing_symbols.page import SEGMENT_HANDLER, PlacedSymbol, render_page

#: The classifier's accuracy on crops cut from pages must reach this (on clean renders it is ~97 %;
#: a crop adds the segmenter's framing, so the bar is lower).
MIN_CROP_ACCURACY = 0.85


def drawing_pages(run_id: str) -> Pipeline:
    return Pipeline(
        name="drawing-pages",
        stages=(
            Stage(name="segment", model="segment", queue=f"pages-{run_id}", fan_out="crops"),
            Stage(name="classify", model="symbols", queue=f"symbols-{run_id}"),
        ),
    )


@dataclass
class DeadLetterCounter:
    """Counts request ids arriving on a dead-letter topic."""

    ids: set[str] = field(default_factory=set)

    def __call__(self, messages: list[PubsubMessage], _: float) -> None:
        for message in messages:
            self.ids.add(message.message_id)


def run_pipeline_demo(
    pages: int, symbols_per_page: int, max_workers: int, seed: int, timeout_s: float, state_dir: Path
) -> dict[str, Any]:
    """Runs the chain locally from zero and returns the report (see `failures` in it)."""
    run_id = new_run_id()
    pipeline = drawing_pages(run_id)
    first, last = pipeline.stages
    segment_stack = LocalStack(LocalStackConfig(
        queue=first.queue, handler=SEGMENT_HANDLER, max_workers=1, state_dir=state_dir / "segment",
    ))
    started = time.monotonic()
    segment_stack.start()  # starts the emulator (unless PUBSUB_EMULATOR_HOST names one) ...
    try:
        # ... which this one shares: made after the first started, it finds the emulator's host set.
        classify_stack = LocalStack(LocalStackConfig(
            queue=last.queue, handler=SYMBOLS_HANDLER, max_workers=max_workers, state_dir=state_dir / "classify",
        ))
        classify_stack.start()
        try:
            return _run(pipeline, segment_stack, classify_stack, pages, symbols_per_page, seed, timeout_s, started)
        finally:
            classify_stack.stop()
    finally:
        segment_stack.stop()


def _run(
    pipeline: Pipeline, segment_stack: LocalStack, classify_stack: LocalStack,
    pages: int, symbols_per_page: int, seed: int, timeout_s: float, started: float,
) -> dict[str, Any]:
    project = segment_stack.config.project
    first_topology = segment_stack.topology
    forward_subscription = f"{first_topology.results_topic}-forward"
    subscriber = subscriber_client()
    subscriber.create_subscription(name=f"projects/{project}/subscriptions/{forward_subscription}",
                                   topic=f"projects/{project}/topics/{first_topology.results_topic}")
    subscriber.close()
    dead = {stack.topology.name: DeadLetterCounter() for stack in (segment_stack, classify_stack)}
    taps = [SubscriptionTap.on_topic(project, stack.topology.dead_letter_topic, "demo", dead[stack.topology.name])
            .start() for stack in (segment_stack, classify_stack)]
    forwarder = StageForwarder(project, pipeline, pipeline.first, forward_subscription).start()
    rng = np.random.default_rng(seed)
    truth: dict[str, list[PlacedSymbol]] = {}
    submitted_at: dict[str, float] = {}
    try:
        with PipelineJoiner(project, pipeline) as joiner:
            submit_started = time.monotonic()
            for index in range(pages):
                root = f"page-{index}"
                png, placed = render_page(rng, symbols_per_page)
                truth[root] = placed
                submitted_at[root] = time.monotonic()
                joiner.submit(InferenceRequest.inline(root, pipeline.first.model, png)).result(timeout=30)
            answers = joiner.wait(truth, timeout_s=timeout_s)
            finished = time.monotonic()
            # Late duplicates of answers already joined are still counted if they arrive now.
            time.sleep(1.0)
            stray = joiner.stray
    finally:
        forwarder.close()
        for tap in taps:
            tap.close()
    report = _report(pipeline, answers, truth, finished - submit_started, forwarder, dead,
                     segment_stack, classify_stack, stray)
    report["whole_demo_s"] = round(time.monotonic() - started, 1)
    return report


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    return {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def _report(
    pipeline: Pipeline, answers: dict[str, JoinedAnswer], truth: dict[str, list[PlacedSymbol]], elapsed_s: float,
    forwarder: StageForwarder, dead: dict[str, DeadLetterCounter], segment_stack: LocalStack,
    classify_stack: LocalStack, stray: int,
) -> dict[str, Any]:
    pages_ok = sum(1 for a in answers.values() if a.complete and a.ok)
    page_errors = sum(1 for a in answers.values() if a.complete and not a.ok)
    page_lost = sum(1 for a in answers.values() if not a.complete)
    placed_total = sum(len(p) for p in truth.values())
    children = [c for a in answers.values() for c in a.children.values()]
    segment_ms = [c.lineage.upstream[0].timings.total_ms or 0.0 for c in children if c.lineage and c.lineage.upstream]
    classify_ms = [c.timings.total_ms or 0.0 for c in children]
    matched = correct = spurious = 0
    for root, answer in answers.items():
        seen: set[int] = set()
        for child in answer.children.values():
            item = child.lineage.item if child.lineage else {}
            side = float(item.get("size", 0) or 0)
            cx, cy = float(item.get("x", 0) or 0) + side / 2, float(item.get("y", 0) or 0) + side / 2
            hits = [i for i, s in enumerate(truth[root]) if s.contains(cx, cy) and i not in seen]
            if not hits:
                spurious += 1
                continue
            seen.add(hits[0])
            matched += 1
            correct += bool(child.ok and (child.output or {}).get("label") == truth[root][hits[0]].label)
    expected_children = sum(a.expected or 0 for a in answers.values())
    segment_ok = sum(1 for a in answers.values() if a.children or (a.final is not None and a.final.ok))
    segment_errors = sum(1 for a in answers.values() if a.final is not None and not a.final.ok)
    accuracy = correct / matched if matched else None
    segment_controller, classify_controller = segment_stack.controller, classify_stack.controller
    stages = {
        "segment": {
            "submitted": len(truth),
            "ok": segment_ok,
            "error results": segment_errors,
            "dead-lettered": len(dead[segment_stack.topology.name].ids),
            "lost": len(truth) - segment_ok - segment_errors,
            "duplicate answers (re-forwarded)": forwarder.counts["retried"],
            "latency p50 / p95 / p99 (ms)": _percentiles(segment_ms),
            "scale-up decisions": segment_controller.stats.scale_ups if segment_controller else 0,
            "peak workers": segment_controller.stats.peak_workers if segment_controller else 0,
        },
        "classify": {
            "submitted": forwarder.counts["children"],
            "ok": sum(1 for c in children if c.ok),
            "error results": sum(1 for c in children if not c.ok),
            "dead-lettered": len(dead[classify_stack.topology.name].ids),
            "lost": expected_children - len(children),
            "duplicate answers": sum(a.duplicates for a in answers.values()),
            "latency p50 / p95 / p99 (ms)": _percentiles(classify_ms),
            "throughput (crops/s)": round(len(children) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            "scale-up decisions": classify_controller.stats.scale_ups if classify_controller else 0,
            "peak workers": classify_controller.stats.peak_workers if classify_controller else 0,
        },
    }
    failures = []
    if page_lost:
        failures.append(f"{page_lost} page(s) not fully answered")
    if page_errors:
        failures.append(f"{page_errors} page(s) answered with an error")
    if matched < placed_total:
        failures.append(f"{placed_total - matched} of {placed_total} symbols on the pages were not found")
    if accuracy is None or accuracy < MIN_CROP_ACCURACY:
        failures.append(f"classifier accuracy on the crops {accuracy} is below {MIN_CROP_ACCURACY:.0%}")
    return {
        "pipeline": [s.name for s in pipeline.stages],
        "pages": len(truth),
        "pages_ok": pages_ok,
        "pages_lost": page_lost,
        "symbols_placed": placed_total,
        "symbols_found": matched,
        "spurious_crops": spurious,
        "crop_accuracy": round(accuracy, 4) if accuracy is not None else None,
        "min_crop_accuracy": MIN_CROP_ACCURACY,
        "pages_per_s": round(len(truth) / elapsed_s, 2) if elapsed_s > 0 else 0.0,
        "stray_answers": stray,
        "stages": stages,
        "failures": failures,
    }
