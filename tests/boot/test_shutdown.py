"""The shutdown script, run for real: it drains the worker with `docker stop -t 25` and ends within the
Spot preemption notice (about 30 s) even when docker hangs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from asyncinfer.components.boot_scripts import PREEMPTION_NOTICE_S, SHUTDOWN_BUDGET_S, STOP_TIMEOUT_S
from asyncinfer.components.worker_pool import render_shutdown_script
from tests.boot.metadata_server import FakeMetadataServer
from tests.boot.stubs import install_stubs, stub_environment

#: The script's metadata query is bounded by curl --max-time 2.
METADATA_BOUND_S = 2


def run_shutdown(tmp_path: Path, *, preempted: bool, docker_stop_s: float, **env: str) -> tuple[float, Path, str]:
    stubs = install_stubs(tmp_path, registry={}, local_tags={})
    script = tmp_path / "shutdown.sh"
    script.write_text(render_shutdown_script())
    with FakeMetadataServer() as metadata:
        metadata.state.preempted = preempted
        started = time.monotonic()
        done = subprocess.run(
            ["bash", str(script)],
            env=stub_environment(stubs, METADATA_HOST=metadata.host, STUB_DOCKER_STOP_S=str(docker_stop_s), **env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert stubs.argvs("docker") == [["stop", "-t", str(STOP_TIMEOUT_S), "asyncinfer-worker"]]
    return elapsed, stubs.calls_path, done.stderr


def test_the_bounds_fit_inside_the_spot_notice() -> None:
    # metadata query + docker stop's own bound + timeout's kill grace, all before the power-off.
    assert STOP_TIMEOUT_S < SHUTDOWN_BUDGET_S
    assert METADATA_BOUND_S + SHUTDOWN_BUDGET_S + 1 < PREEMPTION_NOTICE_S
    assert f'ASYNCINFER_SHUTDOWN_BUDGET_S:-{SHUTDOWN_BUDGET_S}' in render_shutdown_script()


def test_a_preempted_worker_is_drained_and_the_script_waits_for_it(tmp_path: Path) -> None:
    elapsed, _, stderr = run_shutdown(tmp_path, preempted=True, docker_stop_s=3)
    assert "preempted: draining the worker" in stderr
    # It waited for the drain (docker stop took 3 s) and did not linger after it.
    assert 3 <= elapsed < 3 + METADATA_BOUND_S + 2, elapsed


def test_a_scale_in_stop_drains_the_same_way(tmp_path: Path) -> None:
    elapsed, _, stderr = run_shutdown(tmp_path, preempted=False, docker_stop_s=1)
    assert "stopping the worker" in stderr
    assert elapsed < 1 + METADATA_BOUND_S + 2


def test_a_hung_docker_cannot_hold_the_power_off(tmp_path: Path) -> None:
    # The budget is shortened for the test; the mechanism is the one that bounds the real 27 s.
    elapsed, _, stderr = run_shutdown(tmp_path, preempted=True, docker_stop_s=60, ASYNCINFER_SHUTDOWN_BUDGET_S="2")
    assert "did not finish cleanly within 2 s" in stderr
    assert elapsed < 2 + 1 + METADATA_BOUND_S, elapsed
