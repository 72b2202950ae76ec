"""A worker answers before its intake processes are up: intake reads in threads until they are."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

from asyncinfer.core.contract import InferenceRequest
from asyncinfer.worker.intake_pool import READY, IntakePool, ReadChunk
from tests.support.pid_handler import PidHandler

SPEC = "tests.support.pid_handler:build_handler"


def _pids(chunk: ReadChunk) -> set[int]:
    assert all(outcome[0] == READY for outcome in chunk.outcomes), chunk.outcomes
    return {int(t[0]) for t in chunk.tensors}


def test_chunks_are_read_in_threads_until_the_intake_process_is_ready(tmp_path: Path) -> None:
    body = InferenceRequest(request_id="r-1", model="pid", input_b64=base64.b64encode(b"x").decode())
    bodies = [body.model_dump_json().encode()] * 4
    pool = IntakePool(SPEC, processes=1, threads=2, file_root=tmp_path, max_inline_bytes=1000,
                      handler=PidHandler())
    try:
        pool.serve_while_starting(timeout_s=60)
        # At once: the process is still importing torch, so this chunk is read here.
        first = pool.read_all([bodies], timeout_s=30)[0]
        assert _pids(first) == {os.getpid()}
        deadline = time.monotonic() + 60
        while pool._children[0].reader is None and time.monotonic() < deadline:
            time.sleep(0.05)
        later = pool.read_all([bodies], timeout_s=30)[0]
        child_pid = pool._children[0].process.pid
        assert _pids(later) == {child_pid} != {os.getpid()}
    finally:
        pool.close()


def test_an_intake_process_that_cannot_start_leaves_intake_in_threads(tmp_path: Path) -> None:
    body = InferenceRequest(request_id="r-1", model="pid", input_b64=base64.b64encode(b"x").decode())
    # The process cannot import this factory; this interpreter was handed a working handler.
    pool = IntakePool("tests.support.no_such_module:build_handler", processes=1, threads=1,
                      file_root=tmp_path, max_inline_bytes=1000, handler=PidHandler())
    try:
        pool.serve_while_starting(timeout_s=30)
        time.sleep(3)  # long enough for the process to fail its import
        chunk = pool.read_all([[body.model_dump_json().encode()]], timeout_s=30)[0]
        assert _pids(chunk) == {os.getpid()}
        assert pool._children[0].reader is None
    finally:
        pool.close()
