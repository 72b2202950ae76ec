"""The hot-path micro-benchmark runs end to end (its figures are in docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from asyncinfer.tools import hotpath_bench


def test_hotpath_bench_compares_every_piece(tmp_path: Path) -> None:
    out = tmp_path / "hotpath.json"
    assert hotpath_bench.main(["--calls", "50", "--rpc-calls", "5", "--rounds", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    pieces = ("result", "decode_output", "pull_32", "publish_32", "ack_10")
    for name in pieces:
        row = report[name]
        assert row["before_us"] > 0 and row["after_us"] > 0, (name, row)
        assert math.isclose(row["after_over_before"], row["after_us"] / row["before_us"], rel_tol=0.01, abs_tol=0.002)
    # uint8 pixels are a quarter of the float32 input they replace.
    assert report["decode_output"]["bytes_before"] == 4 * report["decode_output"]["bytes_after"] == 4 * 64 * 64
