"""`asyncinfer demo` end to end, reduced: the real symbols model, real worker processes, from zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncinfer.tools.loadtest import MIN_ACCURACY, LoadReport


@pytest.mark.emulator
def test_demo_answers_every_drawing_and_writes_its_report(emulator_host: str, tmp_path: Path) -> None:
    report = tmp_path / "demo-report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "asyncinfer.tools.cli", "demo", "--count", "60", "--rate", "0", "--report", str(report)],
        cwd=tmp_path, env={**os.environ, "PUBSUB_EMULATOR_HOST": emulator_host},
        capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert {"submitted", "ok", "error", "lost", "duplicates", "accuracy", "latency_ms", "peak_workers"} <= set(figures)
    assert figures["submitted"] == 60 and figures["ok"] == 60 and figures["lost"] == 0
    assert figures["accuracy"] >= figures["min_accuracy"] == 0.97
    assert figures["failures"] == []
    assert figures["peak_workers"] >= 1
    assert "demo summary" in completed.stdout


def report(**changes: object) -> LoadReport:
    figures: dict[str, object] = {
        "submitted": 100, "ok": 100, "error": 0, "dead_lettered": 0, "lost": 0, "duplicates": 0,
        "duplicate_ids": 0, "accuracy": 0.99, "latency_ms": {}, "peak_workers": 1, "duration_s": 1.0,
        "throughput_per_s": 100.0,
    }
    return LoadReport(**{**figures, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ok": 95, "error": 5, "error_codes": {"handler_error": 5}}, "5 requests got error results"),
        ({"ok": 0, "error": 100, "accuracy": None}, "100 requests got error results"),
        ({"ok": 98, "dead_lettered": 2}, "2 requests were dead-lettered"),
        ({"ok": 99, "lost": 1}, "1 requests were not answered"),
        ({"accuracy": 0.9}, "accuracy 90.00% is below the threshold 97%"),
    ],
)
def test_demo_fails_on_errors_dead_letters_losses_and_low_accuracy(changes: dict[str, object], reason: str) -> None:
    """What `asyncinfer demo` (and so `make demo`) exits 1 on: not only lost requests."""
    assert reason in " ".join(report(**changes).failures(MIN_ACCURACY))


def test_a_clean_run_passes() -> None:
    assert report().failures(MIN_ACCURACY) == []
