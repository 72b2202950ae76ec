"""Should one batch mix lanes? Measure the model's batch time by size and compare the two rules.

`python -m asyncinfer.tools.lane_batching [--json PATH]` times the example model's predict() for
batch sizes 1..max on this machine, then works out, for interactive requests arriving at `rate`/s
while a bulk backlog keeps the worker busy:
- mixed batches: every batch is full; interactive items take the front seats, bulk fills the rest.
  An interactive request waits for the running batch, then rides in the next full one;
- one lane per batch: interactive requests gathered since the last batch go alone in a small batch
  between bulk batches; the bulk lane loses that batch's fixed cost each time.
The figures are the model's own times (decode and Pub/Sub excluded: they are the same either way).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drawing_symbols.render import SYMBOL_CLASSES, render_png
from drawing_symbols.symbols import SymbolHandler


def batch_times_ms(sizes: list[int], repeats: int = 30, threads: int = 1) -> dict[int, float]:
    """Median wall time of predict() per batch size, on a stack of real decoded drawings."""
    torch.set_num_threads(threads)
    handler = SymbolHandler()
    handler.load(torch.device("cpu"))
    rng = np.random.default_rng(0)
    tensors = [handler.decode(render_png(SYMBOL_CLASSES[i % len(SYMBOL_CLASSES)], rng)) for i in range(max(sizes))]
    out: dict[int, float] = {}
    for size in sizes:
        batch = torch.stack(tensors[:size])
        handler.predict(batch)  # warm-up
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            handler.predict(batch)
            samples.append((time.perf_counter() - started) * 1000)
        out[size] = statistics.median(samples)
    return out


def compare(times_ms: dict[int, float], max_batch: int, rate_per_s: float) -> dict[str, Any]:
    """Interactive latency and bulk throughput under each rule, from the measured batch times."""
    full = times_ms[max_batch]
    # Interactive requests gathered during one full bulk batch go together in the next batch.
    per_batch = max(1, round(rate_per_s * full / 1000))
    per_batch = min(per_batch, max_batch)
    alone = times_ms[min(times_ms, key=lambda s: abs(s - per_batch))]
    bulk_full_rate = max_batch / full * 1000
    # Mixed: every batch is full; interactive takes `per_batch` seats of each.
    mixed_bulk_rate = (max_batch - per_batch) / full * 1000
    # Separate: one interactive batch of `per_batch` after every full bulk batch.
    separate_bulk_rate = max_batch / (full + alone) * 1000
    return {
        "max_batch": max_batch,
        "interactive_rate_per_s": rate_per_s,
        "interactive_per_batch": per_batch,
        "full_batch_ms": full,
        "interactive_alone_batch_ms": alone,
        # Worst case: arrives just as a full batch starts, waits for it, then its own batch.
        "mixed_interactive_worst_ms": full + full,
        "separate_interactive_worst_ms": full + alone,
        "bulk_alone_per_s": bulk_full_rate,
        "mixed_bulk_per_s": mixed_bulk_rate,
        "separate_bulk_per_s": separate_bulk_rate,
        "separate_bulk_loss_share": 1 - separate_bulk_rate / mixed_bulk_rate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--rate", type=float, default=5.0, help="interactive requests per second")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = sorted({1, 2, 4, 8, 16, args.max_batch})
    times = batch_times_ms(sizes, args.repeats)
    result = {"batch_ms_by_size": times, "comparison": compare(times, args.max_batch, args.rate),
              "device": "cpu", "torch_threads": 1}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
