"""`asyncinfer simulate` and `asyncinfer tune`, end to end on small traces."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asyncinfer.tools.commands import simulate_command, tune_command
from asyncinfer.tools.simulator.config import load_configs
from asyncinfer.tools.simulator.engine import simulate_async
from asyncinfer.tools.simulator.traces import load_trace


def _args(module: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser.parse_args(argv)


@pytest.fixture
def spiky_trace(tmp_path: Path) -> Path:
    """Two hours: 10 requests a minute, and 1,500 in minute 30."""
    rows = [f"{m},{1500 if m == 30 else 10}" for m in range(120)]
    path = tmp_path / "spiky.csv"
    path.write_text("# start: 2026-11-24T09:00:00+09:00\nminute,count\n" + "\n".join(rows) + "\n")
    return path


def test_simulate_writes_table_json_and_plots(spiky_trace: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "configs.json"
    config.write_text(json.dumps([
        {"name": "baked", "max_vms": 8, "calendar": {"business_min_vms": 1}},
        # Unbaked, 60 + 120 + 510 s of reaction leave nothing of a 600 s goal: the policy refuses to
        # derive an assignment, so this pool uses the baked one's, 3.2/s x (600 - 270) s.
        {"name": "unbaked", "max_vms": 8, "baked": False, "backlog_per_vm": 1056},
    ]))
    out, report = tmp_path / "plots", tmp_path / "report.json"
    code = simulate_command.run(_args(simulate_command, [
        "--trace", str(spiky_trace), "--config", str(config), "--out", str(out), "--json", str(report)]))
    assert code == 0
    printed = capsys.readouterr().out
    assert "baked" in printed and "sync-on-demand-peak" in printed  # the baseline is added
    document = json.loads(report.read_text())
    names = [r["name"] for r in document["results"]]
    assert names == ["baked", "unbaked", "sync-on-demand-peak"]
    for r in document["results"]:
        assert r["answered"] + r["errors"] == r["requests"] == 2690
        assert r["cost_usd"] > 0 and r["latency_p95_s"] > 0
    by_name = {r["name"]: r for r in document["results"]}
    assert by_name["unbaked"]["latency_p95_s"] > by_name["baked"]["latency_p95_s"]
    for name in ("baked", "unbaked", "sync-on-demand-peak", "comparison"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_simulate_rejects_a_bad_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("minute,count\n0,5\n1,five\n")
    assert simulate_command.run(_args(simulate_command, ["--trace", str(bad)])) == 2
    assert "bad.csv line 3" in capsys.readouterr().err


def test_the_asyncinfer_command_routes_to_simulate(spiky_trace: Path, tmp_path: Path) -> None:
    exe = shutil.which("asyncinfer", path=str(Path(sys.executable).parent))
    assert exe is not None, "the asyncinfer console script is not installed: run `make install`"
    report = tmp_path / "r.json"
    done = subprocess.run([exe, "simulate", "--trace", str(spiky_trace), "--json", str(report), "--no-baseline"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [r["kind"] for r in json.loads(report.read_text())["results"]] == ["async"]


def test_tune_finds_a_cheapest_setting_that_meets_the_goal(spiky_trace: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    winner_path = tmp_path / "winner.json"
    code = tune_command.run(_args(tune_command, [
        "--trace", str(spiky_trace), "--latency-goal", "300", "--max-vms", "2", "4", "8", "16",
        "--business-min", "0", "--jobs", "1", "--write-config", str(winner_path)]))
    assert code == 0
    assert "winner:" in capsys.readouterr().out
    (winner,) = load_configs(winner_path)
    trace = load_trace(spiky_trace)
    result = simulate_async(winner, trace)  # type: ignore[arg-type]
    assert result.errors == 0 and result.percentile(95) <= 300
    # Least cost: a more eager setting also meets the goal but costs more ...
    eager = simulate_async(winner.model_copy(update={"backlog_per_vm": 50.0, "max_vms": 16}), trace)  # type: ignore[union-attr]
    assert eager.percentile(95) <= 300 and eager.cost_usd > result.cost_usd
    # ... and the goal binds: a lazier setting misses it.
    lazy = simulate_async(winner.model_copy(update={"backlog_per_vm": 5000.0, "max_vms": 2}), trace)  # type: ignore[union-attr]
    assert lazy.percentile(95) > 300


def test_tune_reports_an_unreachable_goal(spiky_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = tune_command.run(_args(tune_command, [
        "--trace", str(spiky_trace), "--latency-goal", "30", "--max-vms", "4", "--business-min", "0",
        "--backlog-per-vm", "100", "--jobs", "1"]))
    assert code == 1
    assert "No setting meets the goal" in capsys.readouterr().out


@pytest.mark.parametrize(("criterion", "target"), [("p95", 0.99), ("slo", 0.999), ("slo", 0.9)])
def test_stopping_failed_runs_never_changes_which_runs_meet_the_goal(
    spiky_trace: Path, criterion: str, target: float
) -> None:
    trace = load_trace(spiky_trace)
    rule = tune_command.stop_rule(criterion, target, trace.count)
    stopped_any = False
    for backlog, top in ((50.0, 16), (200.0, 8), (800.0, 4), (5000.0, 2), (5000.0, 16)):
        config = tune_command.AsyncConfig(name="x", latency_goal_s=300, backlog_per_vm=backlog, max_vms=top)
        full = simulate_async(config, trace).summary()
        cut = simulate_async(config, trace, rule).summary()
        meets = tune_command.meets_goal(full, criterion, target)
        assert tune_command.meets_goal(cut, criterion, target) == meets
        if meets:
            assert cut == full  # a run that meets the goal always runs to its end
        stopped_any |= cut["stopped_at_s"] is not None
    assert stopped_any


def test_tune_with_and_without_stopping_gives_the_same_table(
    spiky_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--trace", str(spiky_trace), "--latency-goal", "300", "--max-vms", "2", "4", "8", "--business-min",
            "0", "1", "--jobs", "1"]
    assert tune_command.run(_args(tune_command, argv)) == 0
    fast = capsys.readouterr().out
    assert tune_command.run(_args(tune_command, [*argv, "--full-runs"])) == 0
    full = capsys.readouterr().out
    assert fast.split("\n", 1)[1] == full.split("\n", 1)[1]  # all but the timing line
    assert "0 stopped" in full and " 0 stopped" not in fast
