"""Reliability under faults: workers killed from inside and outside the stack, a spike, a batch
slower than the ack deadline, messages up to Pub/Sub's 10 MB limit among normal traffic, a message
the worker cannot receive at all, and an audit that must say when it saw too little.

The reduced runs here take seconds to a minute each. The full runs (`asyncinfer chaos --count 5000
--sigkills 10 --sigterms 10`, `asyncinfer chaos --spike 20000`) are marked slow and run only with
ASYNCINFER_FULL_RUNS=1; docs/RELIABILITY.md holds the figures of the runs made on the current code
(`--count 2000 --sigkills 5 --sigterms 5`, `--spike 20000`), with their JSON under docs/results/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.tools.loadtest import run_load
from tests.conftest import REPO

pytestmark = pytest.mark.emulator

full_runs = pytest.mark.skipif(
    not os.environ.get("ASYNCINFER_FULL_RUNS"), reason="full fault runs take minutes; set ASYNCINFER_FULL_RUNS=1"
)


def asyncinfer(*args: str, emulator_host: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator_host}
    return subprocess.run(
        [sys.executable, "-m", "asyncinfer.tools.cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout_s,
    )


def chaos(tmp_path: Path, emulator_host: str, *args: str, timeout_s: float = 240) -> dict[str, Any]:
    report = tmp_path / "chaos.json"
    done = asyncinfer(
        "chaos", "--queue", f"c{uuid.uuid4().hex[:10]}", "--state-dir", str(tmp_path / "stack"),
        "--report", str(report), "--quiet", *args, emulator_host=emulator_host, timeout_s=timeout_s,
    )
    assert report.exists(), f"no report; exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(report.read_text())
    result["exit_code"] = done.returncode
    result["output"] = done.stdout[-3000:] + done.stderr[-3000:]
    return result


def assert_nothing_lost(report: dict[str, Any]) -> None:
    assert report["lost"] == 0 and report["unanswered"] == 0, report["output"]
    assert report["ok"] == report["submitted"], report["output"]
    # A second answer is allowed only when it says why (redelivery or replay), never silently.
    assert report["unmarked_duplicate_ids"] == 0, report["output"]
    # The audit vouches for the duplicate counts only if it saw a result for every request.
    assert report["audit"]["ids_seen"] == report["submitted"], report["audit"]
    assert report["audit"]["unparseable"] == 0, report["audit"]
    # Right ids with wrong outputs would pass every count above: the answers are checked too.
    assert report["accuracy"] >= report["min_accuracy"] >= 0.97, report["output"]
    assert report["audit"]["accuracy"] >= report["min_accuracy"], report["audit"]
    assert report["failures"] == [], report["failures"]
    assert report["exit_code"] == 0, report["output"]


def test_chaos_sigterms_lose_nothing(tmp_path: Path, emulator_host: str) -> None:
    """SIGTERM-heavy, so it takes seconds: a drained worker hands back what it holds at once. (A
    SIGKILLed worker's messages wait out their lease, up to a minute: the next test pays for that.)"""
    report = chaos(tmp_path, emulator_host, "--count", "300", "--sigkills", "0", "--sigterms", "3",
                   "--kill-interval", "2.5", "--timeout", "90")
    assert_nothing_lost(report)
    # Kills are due at answer counts, not at times, so all three land however slow the machine is.
    assert report["kills"] == {"SIGTERM": 3}, report["output"]
    assert all(0 < k["at_answered"] < report["submitted"] for k in report["kill_log"]), report["kill_log"]
    assert report["workers_replaced"] >= 3
    assert report["queue"].startswith("c") and report["run_id"]


def test_local_stack_survives_outside_kills(tmp_path: Path, emulator_host: str) -> None:
    """`asyncinfer local up` in its own process; workers killed by pid from `local status --json`."""
    state_dir = tmp_path / "stack"
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator_host}
    up = subprocess.Popen(
        [sys.executable, "-m", "asyncinfer.tools.cli", "local", "up", "--state-dir", str(state_dir),
         "--min-workers", "2",
         "--max-workers", "2", "--queue", f"o{uuid.uuid4().hex[:10]}"],
        cwd=REPO, env=env, stdout=(tmp_path / "up.log").open("wb"), stderr=subprocess.STDOUT,
    )

    def status() -> dict[str, Any]:
        done = asyncinfer("local", "status", "--json", "--state-dir", str(state_dir),
                          emulator_host=emulator_host, timeout_s=60)
        assert done.returncode == 0, done.stdout + done.stderr
        state: dict[str, Any] = json.loads(done.stdout)
        return state

    def serving() -> int:
        logs = list((state_dir / "logs").glob("worker-*.log"))
        return sum("worker started" in p.read_text(errors="replace") for p in logs)

    try:
        deadline = time.monotonic() + 90
        while not (state_dir / "stack.json").exists() or serving() < 2:
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "the local stack did not start two workers"
            time.sleep(0.3)
        first = status()
        first_pids = {w["pid"] for w in first["workers"] if w["state"] == "running"}
        assert len(first_pids) == 2
        killed: dict[int, str] = {}

        def kill_from_outside(answered: int) -> None:
            # By progress, not by the clock: both workers hold messages once answers flow.
            if killed or answered < 60:
                return
            pids = sorted(w["pid"] for w in status()["workers"] if w["state"] == "running")
            for pid, sig in zip(pids, (signal.SIGKILL, signal.SIGTERM), strict=False):
                os.kill(pid, sig)
                killed[pid] = sig.name

        with AsyncInferClient.from_status(first) as client:
            report = run_load(client, 400, rate=100, seed=3, timeout_s=150, show_progress=False,
                              during=kill_from_outside)
        assert sorted(killed.values()) == ["SIGKILL", "SIGTERM"]
        assert report.lost == 0, report
        assert report.ok == 400, report
        after = status()
        assert after["controller_alive"]
        assert after["replaced_workers"] >= 2
        now_running = {w["pid"] for w in after["workers"] if w["state"] == "running"}
        assert len(now_running) == 2 and not (now_running & set(killed)), after["workers"]
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert not (state_dir / "stack.json").exists()


def test_spike_is_answered_with_bounded_worker_memory(tmp_path: Path, emulator_host: str) -> None:
    """2,000 requests published at once: all answered, and holding them stays on Pub/Sub."""
    report = chaos(tmp_path, emulator_host, "--spike", "2000", "--sigkills", "0", "--sigterms", "0",
                   "--timeout", "120", "--max-rss-mb", "700")
    assert_nothing_lost(report)
    assert len(report["peak_rss_mb"]) >= 2
    # A worker holds at most its flow-control window (2 x batch size) of messages and tensors, so
    # its memory barely moves from where it was when it started serving.
    assert report["max_rss_growth_mb"] is not None and report["max_rss_growth_mb"] < 100, report["peak_rss_mb"]


def test_batch_slower_than_the_ack_deadline_is_answered_once(start_worker: Any, client: Any) -> None:
    """15 s of inference against a 10 s ack deadline: the lease is extended, so the message is not
    redelivered, and a second idle worker, which would take a redelivery at once, gets nothing."""
    slow = start_worker(FAULTY_SLOW_S="15")
    idle = start_worker(FAULTY_SLOW_S="15")
    client.submit(InferenceRequest.inline("lease-1", "faulty", b"slow"))
    answers = client.wait(["lease-1"], timeout_s=60)
    assert "lease-1" in answers, "no answer within 60 s"
    result = answers["lease-1"].result
    assert result is not None and result.ok
    assert result.delivery_attempt == 1 and not result.replayed
    assert result.timings.inference_ms is not None and result.timings.inference_ms >= 15_000
    time.sleep(3)  # a redelivery would be answered by now: the other worker is idle
    assert sum(client.duplicate_answers.values()) == 0
    logs = [p.log_path.read_text() for p in (slow, idle)]
    assert sum(log.count('"batch done"') for log in logs) == 1, "the slow batch ran more than once"
    assert all("lease may have expired" not in log for log in logs)


@pytest.mark.slow
@full_runs
def test_full_chaos_run(tmp_path: Path, emulator_host: str) -> None:
    report = chaos(tmp_path, emulator_host, "--count", "5000", "--sigkills", "10", "--sigterms", "10",
                   timeout_s=900)
    assert_nothing_lost(report)
    assert report["kills"] == {"SIGKILL": 10, "SIGTERM": 10}


@pytest.mark.slow
@full_runs
def test_full_spike_run(tmp_path: Path, emulator_host: str) -> None:
    report = chaos(tmp_path, emulator_host, "--spike", "20000", "--sigkills", "0", "--sigterms", "0",
                   timeout_s=900)
    assert_nothing_lost(report)
    assert report["max_rss_growth_mb"] < 100


def big_request(request_id: str, message_bytes: int) -> InferenceRequest:
    """A request whose Pub/Sub message is `message_bytes` long (inline base64 costs 4/3)."""
    overhead = len(InferenceRequest.inline(request_id, "faulty", b"big:").model_dump_json(exclude_none=True))
    padding = (message_bytes - overhead) * 3 // 4
    request = InferenceRequest.inline(request_id, "faulty", b"big:" + b"\0" * padding)
    assert abs(len(request.model_dump_json(exclude_none=True)) - message_bytes) < 8
    return request


def test_messages_up_to_pubsubs_limit_are_answered_among_normal_traffic(start_worker: Any, client: Any) -> None:
    """5 MB and 9.9 MB messages (gRPC's default receive limit is 4 MiB) in the middle of 120 small
    ones: every message gets its answer on its first delivery, and no pull fails."""
    worker = start_worker(ASYNCINFER_MAX_BATCH_SIZE="8", ASYNCINFER_MAX_WAIT_MS="20")
    ids = []
    for i in range(120):
        if i == 40:
            client.submit(big_request("big-5mb", 5_000_000))
            ids.append("big-5mb")
        if i == 80:
            client.submit(big_request("big-9.9mb", 9_900_000))
            ids.append("big-9.9mb")
        client.submit(InferenceRequest.inline(f"small-{i}", "faulty", b"ok"))
        ids.append(f"small-{i}")
    answers = client.wait(ids, timeout_s=120)
    log = worker.log_path.read_text(errors="replace")
    assert len(answers) == len(ids), f"{len(ids) - len(answers)} unanswered\n{log[-3000:]}"
    assert all(a.ok for a in answers.values()), {r: a.result for r, a in answers.items() if not a.ok}
    assert answers["big-5mb"].result.output == {"value": 5}  # type: ignore[union-attr]
    assert answers["big-9.9mb"].result.output == {"value": 5}  # type: ignore[union-attr]
    assert all(a.result.delivery_attempt == 1 for a in answers.values())  # type: ignore[union-attr]
    assert "pull failed" not in log


def test_a_message_the_worker_cannot_receive_is_dead_lettered_without_blocking_others(
    start_worker: Any, client: Any
) -> None:
    """A worker whose channel keeps gRPC's 4 MiB limit (as google-cloud-pubsub's emulator channel
    does) and a 5 MB message among 60 small ones: after the first failed pull the worker pulls one
    message at a time, so the small ones are answered, and the large one, which fails every pull,
    is dead-lettered by Pub/Sub after the subscription's max_delivery_attempts (5 here)."""
    worker = start_worker(ASYNCINFER_PUBSUB_MAX_MESSAGE_BYTES=str(4 * 2**20), ASYNCINFER_MAX_BATCH_SIZE="8")
    ids = []
    for i in range(60):
        if i == 10:
            client.submit(big_request("unreceivable", 5_000_000))
            ids.append("unreceivable")
        client.submit(InferenceRequest.inline(f"next-{i}", "faulty", b"ok"))
        ids.append(f"next-{i}")
    answers = client.wait(ids, timeout_s=180)
    log = worker.log_path.read_text(errors="replace")
    assert len(answers) == len(ids), f"{len(ids) - len(answers)} unanswered\n{log[-3000:]}"
    assert answers["unreceivable"].kind == "dead_letter"
    small = [answers[f"next-{i}"] for i in range(60)]
    assert all(a.ok for a in small)
    # Never blocked: every small message was answered before the large one was given up.
    assert max(a.received_at for a in small) < answers["unreceivable"].received_at
    assert "ResourceExhausted" in log and "pull failed" in log
    assert worker.poll() is None, "the worker must keep serving"


def test_the_audit_reports_what_it_saw_and_fails_when_it_saw_too_little(emulator_host: str, topology: Any) -> None:
    """The chaos audit counts unreadable results and failed pulls, and checks outputs against the
    true classes: an audit that saw nothing must fail, not report "0 silent duplicates"."""
    from asyncinfer.client.pubsub import publisher_client, subscriber_client
    from asyncinfer.tools.chaos import ResultAudit, audit_failures
    from tests.conftest import PROJECT

    audit = ResultAudit(PROJECT, topology.results_topic)
    publisher = publisher_client()
    topic = publisher.topic_path(PROJECT, topology.results_topic)

    def result(request_id: str, label: str, attempt: int = 1) -> bytes:
        return json.dumps({"request_id": request_id, "status": "ok", "delivery_attempt": attempt,
                           "output": {"label": label}}).encode()

    try:
        for data in (result("r-1", "flatness"), result("r-2", "position"), result("r-2", "position", attempt=2),
                     result("other-run-1", "flatness"), b"not json"):
            publisher.publish(topic, data).result(timeout=30)
        labels = {"r-1": "flatness", "r-2": "roundness", "r-3": "flatness"}
        deadline = time.monotonic() + 30
        while audit.summary(labels).results < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = audit.summary(labels)
        assert (seen.results, seen.results_this_run, seen.ids_seen, seen.unparseable) == (5, 3, 2, 1)
        assert (seen.redelivered, seen.ok_results, seen.correct_results) == (1, 3, 1)
        failures = audit_failures(seen, answered_by_results=3, min_accuracy=0.97)
        assert any("only 2 of the 3" in f for f in failures), failures
        assert any("no readable request id" in f for f in failures), failures
        assert any("accuracy" in f and "33.33%" in f for f in failures), failures
        # A tap that cannot pull says so (logged and counted), instead of quietly seeing nothing.
        subscriber = subscriber_client()
        subscriber.delete_subscription(subscription=audit._tap.path)
        subscriber.close()
        deadline = time.monotonic() + 30
        while audit.summary(labels).pull_errors == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert audit.summary(labels).pull_errors > 0
        assert "only 2 of the 3" in " ".join(audit_failures(audit.summary(labels), 3, 0.97))
    finally:
        audit.close()
        publisher.stop()
