"""`asyncinfer cost RESULTS.jsonl...`: what requests cost, per model, lane and day (UTC).

Reads results, one JSON object per line: what `asyncinfer submit --wait` prints, or the decoded
`message.data` of results pulled from a results subscription. A result the worker answered from its
cache (`replayed: true`) ran no inference and is not counted twice; lines that are not results are
counted and skipped. A pool's idle time is not in these sums: each worker logs it (`usage` lines).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from asyncinfer.core.contract import InferenceResult

COLUMNS = ("model", "lane", "day", "requests", "inference_s", "cost_usd", "usd_per_1000", "price_basis")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="JSONL files of results")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def read_results(paths: Iterable[Path]) -> tuple[list[InferenceResult], int]:
    results: list[InferenceResult] = []
    skipped = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                results.append(InferenceResult.model_validate_json(line))
            except ValidationError:
                skipped += 1
    return results, skipped


def summarise(results: Iterable[InferenceResult]) -> list[dict[str, Any]]:
    """One row per (model, lane, day): requests, inference seconds and dollars, in that order."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "inference_ms": 0.0, "cost_usd": 0.0, "price_basis": set()}
    )
    for result in results:
        if result.replayed or result.cost is None:
            continue
        key = (result.model or "-", result.lane or "-", result.completed_at.date().isoformat())
        row = rows[key]
        row["requests"] += 1
        row["inference_ms"] += result.cost.inference_share_ms
        row["cost_usd"] += result.cost.usd
        row["price_basis"].add(result.cost.price_basis)
    return [
        {
            "model": model, "lane": lane, "day": day, "requests": row["requests"],
            "inference_s": round(row["inference_ms"] / 1000, 6), "cost_usd": round(row["cost_usd"], 12),
            "usd_per_1000": round(1000 * row["cost_usd"] / row["requests"], 9),
            "price_basis": "; ".join(sorted(row["price_basis"])),
        }
        for (model, lane, day), row in sorted(rows.items())
    ]


def run(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        print(f"not a file: {', '.join(missing)}")
        return 2
    results, skipped = read_results(args.paths)
    rows = summarise(results)
    if args.json:
        print(json.dumps({"rows": rows, "results": len(results), "skipped_lines": skipped}, indent=2))
        return 0
    table = Table(title=f"cost of {len(results)} results ({skipped} lines skipped)")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in COLUMNS))
    Console().print(table)
    return 0
