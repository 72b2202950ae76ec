"""Interactive requests overtake a bulk backlog, on the local stack: the figures.

`python -m asyncinfer.tools.lanes_local [--bulk 20000] [--rate 5] [--json PATH]` starts a local stack
with the default lanes (emulator, lane topics, worker processes), then:
1. idle: submits interactive requests at `rate`/s for `--idle-s` seconds and takes their p95;
2. loaded: publishes `bulk` bulk requests at once, then interactive requests at `rate`/s for
   `--loaded-s` seconds while the bulk backlog drains, and waits until every request is answered.
It reports both p95s, the batch time, and the bound the issue sets: loaded p95 <= 2 x idle p95 +
one batch time, with every bulk request answered (none starved, none lost). With
`--spot-stockout --fallback-max-workers N`, the pool is held at zero and the fallback pool answers.
Latency is measured by the client: submit to answer received.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.lanes import LaneSet
from asyncinfer.tools.local.stack import LocalStack, LocalStackConfig
from drawing_symbols.render import SYMBOL_CLASSES, render_png


@dataclass
class LaneFigures:
    bulk: int
    rate_per_s: float
    idle_interactive: int
    idle_p50_ms: float
    idle_p95_ms: float
    loaded_interactive: int
    loaded_p50_ms: float
    loaded_p95_ms: float
    loaded_max_ms: float
    #: Median model time of the bulk batches (the results' inference_ms).
    batch_ms: float
    bound_ms: float
    bulk_answered: int
    bulk_ok: int
    interactive_answered: int
    dead_lettered: int
    bulk_drain_s: float
    peak_workers: int
    fallback_peak_workers: int
    spot_held_at_zero: bool
    #: Where an interactive request's time went under the backlog (p95 of the results' own timings,
    #: ms): submit to pulled, pulled to its batch's start, submit to result built (before publish).
    loaded_queued_p95_ms: float = float("nan")
    loaded_batch_wait_p95_ms: float = float("nan")
    loaded_worker_total_p95_ms: float = float("nan")
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _payloads(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [render_png(SYMBOL_CLASSES[i % len(SYMBOL_CLASSES)], rng) for i in range(count)]


def _pace(
    client: AsyncInferClient, run: str, label: str, rate: float, seconds: float, payloads: list[bytes]
) -> list[str]:
    """Interactive requests at `rate`/s for `seconds` (on a fixed schedule, not after each other)."""
    ids = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        request_id = f"{label}-{run}-{i}"
        request = InferenceRequest.inline(request_id, "symbols", payloads[i % len(payloads)], priority=1)
        client.submit(request)
        ids.append(request_id)
    return ids


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def measure(
    config: LocalStackConfig, bulk: int, rate: float, idle_s: float, loaded_s: float, timeout_s: float
) -> LaneFigures:
    run = uuid.uuid4().hex[:8]
    payloads = _payloads(64, seed=7)
    with LocalStack(config) as stack, AsyncInferClient.from_status(stack.status()) as client:
        # Warm up: the first worker starts, loads the model and answers once.
        warm = _pace(client, run, "warm", rate, 2.0, payloads)
        client.wait(warm, timeout_s=120)
        idle = _pace(client, run, "idle", rate, idle_s, payloads)
        client.wait(idle, timeout_s=60)
        bulk_ids = [f"bulk-{run}-{i}" for i in range(bulk)]
        bulk_started = time.monotonic()
        futures = [
            client.submit(InferenceRequest.inline(r, "symbols", payloads[i % len(payloads)]))
            for i, r in enumerate(bulk_ids)
        ]
        for future in futures:
            future.result(timeout=120)
        loaded = _pace(client, run, "loaded", rate, loaded_s, payloads)
        client.wait(loaded + bulk_ids, timeout_s=timeout_s)
        drained_at = time.monotonic()
        answers = client.results()
        controller = stack.controller
        fallback = stack.fallback
        peak = controller.stats.peak_workers if controller else 0
        fallback_peak = fallback.stats.peak_workers if fallback else 0
        held = bool(controller and controller.hold_at_zero.is_set())
    idle_ms = _latencies_ms_from(answers, client, idle)
    loaded_ms = _latencies_ms_from(answers, client, loaded)
    bulk_answers = [answers[r] for r in bulk_ids if r in answers]
    batch_ms = [
        a.result.timings.inference_ms for a in bulk_answers
        if a.result is not None and a.result.timings.inference_ms is not None
    ]
    batch = statistics.median(batch_ms) if batch_ms else float("nan")
    figures = LaneFigures(
        bulk=bulk,
        rate_per_s=rate,
        idle_interactive=len(idle),
        idle_p50_ms=_p(idle_ms, 50),
        idle_p95_ms=_p(idle_ms, 95),
        loaded_interactive=len(loaded),
        loaded_p50_ms=_p(loaded_ms, 50),
        loaded_p95_ms=_p(loaded_ms, 95),
        loaded_max_ms=max(loaded_ms) if loaded_ms else float("nan"),
        batch_ms=batch,
        bound_ms=2 * _p(idle_ms, 95) + batch,
        bulk_answered=len(bulk_answers),
        bulk_ok=sum(1 for a in bulk_answers if a.ok),
        interactive_answered=len(loaded_ms),
        dead_lettered=sum(1 for a in answers.values() if a.kind == "dead_letter"),
        bulk_drain_s=drained_at - bulk_started,
        peak_workers=peak,
        fallback_peak_workers=fallback_peak,
        spot_held_at_zero=held,
    )
    for name, attribute in (("queued_ms", "loaded_queued_p95_ms"), ("batch_wait_ms", "loaded_batch_wait_p95_ms"),
                            ("total_ms", "loaded_worker_total_p95_ms")):
        results = [answers[r].result for r in loaded if r in answers]
        timings = [getattr(result.timings, name) for result in results if result is not None]
        setattr(figures, attribute, _p([t for t in timings if t is not None], 95))
    figures.failures = failures(figures)
    return figures


def _latencies_ms_from(answers: dict[str, Any], client: AsyncInferClient, ids: list[str]) -> list[float]:
    return [(answers[i].received_at - client.submitted_at[i]) * 1000 for i in ids if i in answers]


def failures(f: LaneFigures) -> list[str]:
    found = []
    if f.bulk_answered != f.bulk:
        found.append(f"{f.bulk - f.bulk_answered} of {f.bulk} bulk requests were not answered")
    if f.bulk_ok != f.bulk_answered:
        found.append(f"{f.bulk_answered - f.bulk_ok} bulk requests got error results")
    if f.interactive_answered != f.loaded_interactive:
        found.append(f"{f.loaded_interactive - f.interactive_answered} interactive requests were not answered")
    if f.dead_lettered:
        found.append(f"{f.dead_lettered} requests were dead-lettered")
    if not f.loaded_p95_ms <= f.bound_ms:
        found.append(
            f"interactive p95 under the bulk backlog is {f.loaded_p95_ms:.0f} ms, above 2 x idle p95 "
            f"({f.idle_p95_ms:.0f} ms) + one batch ({f.batch_ms:.0f} ms) = {f.bound_ms:.0f} ms"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=5.0, help="interactive requests per second")
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--loaded-s", type=float, default=30.0)
    # One worker leaves a core of a small machine to the emulator and this client, as the cloud's
    # Pub/Sub never shares the worker's CPU; more workers measure CPU starvation, not the lanes.
    parser.add_argument("--max-workers", type=int, default=1)
    parser.add_argument("--fallback-max-workers", type=int, default=0)
    parser.add_argument("--spot-stockout", action="store_true", help="hold the pool at zero; the fallback answers")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--state-dir", type=Path, default=Path(".asyncinfer/lanes-local"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.spot_stockout and args.fallback_max_workers < 1:
        parser.error("--spot-stockout needs --fallback-max-workers 1 or more, or nothing answers")
    config = LocalStackConfig(
        min_workers=0 if args.spot_stockout else 1,
        max_workers=args.max_workers,
        lanes=LaneSet.defaults(),
        fallback_max_workers=args.fallback_max_workers,
        spot_stockout=args.spot_stockout,
        state_dir=args.state_dir,
    )
    figures = measure(config, args.bulk, args.rate, args.idle_s, args.loaded_s, args.timeout_s)
    document = {
        "command": "python -m asyncinfer.tools.lanes_local " + " ".join(sys.argv[1:] if argv is None else argv),
        **figures.to_json(),
    }
    text = json.dumps(document, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 1 if figures.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
