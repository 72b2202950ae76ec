"""`asyncinfer demo` end to end, reduced: the real symbols model, real worker processes, from zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator


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
    assert figures["accuracy"] >= 0.97
    assert figures["peak_workers"] >= 1
    assert "demo summary" in completed.stdout
