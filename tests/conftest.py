"""Shared fixtures: one real Pub/Sub emulator per test session, a fresh queue topology per test,
real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asyncinfer.core.topology import QueueTopology
from asyncinfer.core.worker_settings import worker_environment
from asyncinfer.tools.local.worker_process import spawn_worker

PROJECT = "asyncinfer-test"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def emulator_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from asyncinfer.tools.local.emulator import EmulatorError, PubSubEmulator

    emulator = PubSubEmulator(PROJECT, data_dir=tmp_path_factory.mktemp("emulator"))
    try:
        emulator.start()
    except EmulatorError as exc:
        pytest.fail(f"the Pub/Sub emulator could not start: {exc}")
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    yield emulator.host
    emulator.stop()
    if previous is None:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture
def topology(emulator_host: str) -> QueueTopology:
    from asyncinfer.tools.local.topology_admin import ensure_topology

    queue = QueueTopology(
        name=f"t{uuid.uuid4().hex[:10]}",
        ack_deadline_s=10,
        min_retry_backoff_s=0,
        max_retry_backoff_s=1,
        max_delivery_attempts=5,
    )
    ensure_topology(PROJECT, queue, with_taps=False)
    return queue


WorkerFactory = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(emulator_host: str, topology: QueueTopology, tmp_path: Path) -> Iterator[WorkerFactory]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(handler: str = "tests.support.faulty_handler:build_handler", **env: str) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"worker-{len(processes)}.log"
        full_env = {
            **os.environ,
            "PUBSUB_EMULATOR_HOST": emulator_host,
            **worker_environment(
                project=PROJECT,
                subscription=topology.requests_subscription,
                results_topic=topology.results_topic,
                handler=handler,
                health_port=0,
                torch_threads=1,
                file_root=tmp_path / "blobs",
            ),
            **env,
        }
        process = spawn_worker(full_env, log_path, cwd=REPO)
        process.log_path = log_path  # type: ignore[attr-defined]
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()


@pytest.fixture
def client(emulator_host: str, topology: QueueTopology) -> Iterator[object]:
    from asyncinfer.client.client import AsyncInferClient

    with AsyncInferClient(
        PROJECT, topology.requests_topic, topology.results_topic, topology.dead_letter_topic
    ) as connected:
        yield connected
