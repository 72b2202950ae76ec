"""Poison input, class by class: each gets an error result whose code and message name the problem (or
a dead letter where nothing can ever succeed), and the worker neither crashes nor stalls.

Two long-lived workers serve the whole module (starting one per case would cost minutes): the real
symbols model, for everything a client can send wrong, and tests/support/edge_handler.py, for what a
model can do wrong. Every case also checks that its worker is still alive, and the last one that a
good request is still answered after all the poison.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asyncinfer.client.client import Answer, AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from asyncinfer.core.topology import QueueTopology
from drawing_symbols.render import render_png
from tests.conftest import PROJECT
from tests.support.poisoned_symbols import blank_png
from tests.support.processes import spawn_worker, stop, wait_started

pytestmark = pytest.mark.emulator

ANSWER_TIMEOUT_S = 30
MAX_INLINE_BYTES = 100_000


@dataclass
class Served:
    client: AsyncInferClient
    worker: Any
    topology: QueueTopology
    blobs: Path

    def ask(self, data: bytes, key: str, **attributes: str) -> Answer:
        self.client.submit_raw(data, request_id=key, **attributes)
        got = self.client.wait([key], timeout_s=ANSWER_TIMEOUT_S)
        assert self.worker.poll() is None, f"the worker died on {key}:\n{self.log()[-3000:]}"
        assert key in got, f"no answer to {key} within {ANSWER_TIMEOUT_S} s:\n{self.log()[-3000:]}"
        return got[key]

    def log(self) -> str:
        return str(self.worker.log_path.read_text(errors="replace"))


def _serve(emulator_host: str, folder: Path, handler: str, **env: str) -> Iterator[Served]:
    from asyncinfer.tools.local.topology_admin import ensure_topology

    topology = QueueTopology(
        name=f"b{uuid.uuid4().hex[:10]}", ack_deadline_s=10, min_retry_backoff_s=0, max_retry_backoff_s=1,
        max_delivery_attempts=5,
    )
    ensure_topology(PROJECT, topology, with_taps=False)
    blobs = folder / "blobs"
    blobs.mkdir()
    worker = spawn_worker(
        emulator_host, PROJECT, topology, handler, folder / "worker.log",
        ASYNCINFER_FILE_ROOT=str(blobs), ASYNCINFER_MAX_INLINE_BYTES=str(MAX_INLINE_BYTES), **env,
    )
    try:
        with AsyncInferClient(
            PROJECT, topology.requests_topic, topology.results_topic, topology.dead_letter_topic
        ) as client:
            wait_started(worker)
            yield Served(client, worker, topology, blobs)
    finally:
        stop(worker)


@pytest.fixture(scope="module")
def symbols(emulator_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(emulator_host, tmp_path_factory.mktemp("symbols"), "drawing_symbols.symbols:build_handler")


@pytest.fixture(scope="module")
def poisoned(emulator_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # A long max wait: the 32 requests of the isolation test form one batch however slow the machine.
    yield from _serve(
        emulator_host, tmp_path_factory.mktemp("poisoned"), "tests.support.poisoned_symbols:build_handler",
        ASYNCINFER_MAX_BATCH_SIZE="32", ASYNCINFER_MAX_WAIT_MS="3000",
    )


@pytest.fixture(scope="module")
def edge(emulator_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(emulator_host, tmp_path_factory.mktemp("edge"), "tests.support.edge_handler:build_handler")


def request(request_id: str, **fields: Any) -> bytes:
    body = {"request_id": request_id, "model": "symbols", "input_b64": base64.b64encode(b"x").decode(), **fields}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG that claims width x height pixels in a few dozen bytes: a decompression bomb's
    header (the pixels are never there; a decoder that trusted the header would allocate them)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def deep_json(depth: int) -> bytes:
    return b'{"request_id":"deep","model":"symbols","params":' + b"[" * depth + b"]" * depth + b"}"


# (case, body, expected code, words the message must contain, request id the result must carry)
READ_CASES = [
    ("malformed_json", b'{"request_id": "x", "model": ', "malformed_json", ["not valid", "JSON"], None),
    ("binary_garbage", bytes(range(256)) * 4, "malformed_json", ["JSON"], None),
    ("not_an_object", b'[1, 2, 3]', "not_an_object", ["list", "object"], None),
    ("json_string", b'"hello"', "not_an_object", ["str"], None),
    ("deeply_nested", deep_json(100_000), "malformed_json", ["JSON"], None),
    ("schema_version", request("sv-1", schema_version=2), "unsupported_schema_version", ["2", "version 1"], "sv-1"),
    ("missing_fields", json.dumps({"request_id": "mf-1"}).encode(), "invalid_request", ["model", "Field required"],
     "mf-1"),
    ("unknown_fields", request("uf-1", colour="red"), "invalid_request", ["colour", "Extra inputs"], "uf-1"),
    ("wrong_types", request("wt-1", priority="high", params=[1]), "invalid_request", ["priority", "params"], "wt-1"),
    ("both_inputs", request("bi-1", input_uri="file:///x"), "invalid_request", ["exactly one"], "bi-1"),
    ("forbidden_scheme", request("fs-1", input_b64=None, input_uri="http://example.com/a.png"), "invalid_request",
     ["input_uri", "file://"], "fs-1"),
    ("naive_deadline", request("nd-1", deadline="2030-01-01T00:00:00"), "invalid_request", ["time zone"], "nd-1"),
]


@pytest.mark.parametrize(("case", "body", "code", "words", "request_id"), READ_CASES, ids=[c[0] for c in READ_CASES])
def test_unreadable_requests_get_an_error_naming_the_problem(
    symbols: Served, case: str, body: bytes, code: str, words: list[str], request_id: str | None
) -> None:
    answer = symbols.ask(body, f"read-{case}")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == code
    for word in words:
        assert word in answer.result.error.message, answer.result.error.message
    assert answer.result.request_id == request_id
    assert answer.result.delivery_attempt == 1  # acked with its answer, never retried


def test_empty_body_gets_an_error(symbols: Served) -> None:
    # Pub/Sub refuses a message with neither data nor attributes: the attribute makes it publishable.
    answer = symbols.ask(b"", "empty", sent_by="test")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "empty_body"
    # An unreadable request is identified by its message id and attributes instead.
    assert answer.result.message_attributes == {"sent_by": "test"}


def _inline(request_id: str, payload: bytes, model: str = "symbols", **fields: Any) -> bytes:
    return InferenceRequest.inline(request_id, model, payload, **fields).model_dump_json(exclude_none=True).encode()


def _by_uri(request_id: str, uri: str) -> bytes:
    return InferenceRequest.by_uri(request_id, "symbols", uri).model_dump_json(exclude_none=True).encode()


def test_unknown_model(symbols: Served) -> None:
    answer = symbols.ask(_inline("um-1", b"x", model="ocr"), "um-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "unknown_model"
    assert "'ocr'" in answer.result.error.message and "'symbols'" in answer.result.error.message


def test_inline_payload_too_large(symbols: Served) -> None:
    answer = symbols.ask(_inline("big-1", b"\0" * (MAX_INLINE_BYTES + 1)), "big-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "payload_too_large"
    assert "input_uri" in answer.result.error.message


def test_invalid_base64(symbols: Served) -> None:
    answer = symbols.ask(request("b64-1", input_b64="not base64!"), "b64-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "invalid_base64"


def test_file_uri_that_does_not_exist(symbols: Served) -> None:
    answer = symbols.ask(_by_uri("nf-1", f"file://{symbols.blobs}/missing.png"), "nf-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "input_not_found"
    assert "missing.png" in answer.result.error.message


@pytest.mark.parametrize("uri", ["file:///etc/hostname", "file://{blobs}/../outside.png"])
def test_file_uri_outside_the_allowed_root(symbols: Served, uri: str) -> None:
    outside = symbols.blobs.parent / "outside.png"
    outside.write_bytes(render_png("flatness", np.random.default_rng(0)))
    answer = symbols.ask(_by_uri(f"out-{len(uri)}", uri.format(blobs=symbols.blobs)), f"out-{len(uri)}")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "forbidden_uri"
    assert "outside the allowed root" in answer.result.error.message


def test_bytes_that_are_not_an_image(symbols: Served) -> None:
    answer = symbols.ask(_inline("ni-1", b"%PDF-1.7 this is not a picture"), "ni-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "not_an_image"
    assert "PNG" in answer.result.error.message


def test_truncated_image(symbols: Served) -> None:
    png = render_png("flatness", np.random.default_rng(1))
    answer = symbols.ask(_inline("tr-1", png[: len(png) // 2]), "tr-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "not_an_image"


def test_decompression_bomb_is_refused_by_its_header(symbols: Served) -> None:
    bomb = png_header(100_000, 100_000)  # 10 gigapixels claimed in 60 bytes
    assert len(bomb) < 100
    started = time.monotonic()
    answer = symbols.ask(_inline("bomb-1", bomb), "bomb-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "image_too_large"
    assert "100000x100000" in answer.result.error.message or "pixels" in answer.result.error.message
    assert time.monotonic() - started < 10  # refused from the header, not after decoding


def test_deadline_already_passed(symbols: Served) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    png = render_png("flatness", np.random.default_rng(2))
    answer = symbols.ask(_inline("dl-1", png, deadline=past), "dl-1")
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == "deadline_exceeded"
    assert past.isoformat() in answer.result.error.message


def test_duplicate_request_id_gets_the_same_answer_replayed(symbols: Served) -> None:
    png = render_png("flatness", np.random.default_rng(3))
    first = symbols.ask(_inline("dup-1", png), "dup-1")
    assert first.ok and first.result is not None
    # A second client sees only answers published after it subscribed: the replay, not the original.
    with AsyncInferClient(PROJECT, symbols.topology.requests_topic, symbols.topology.results_topic) as second:
        second.submit_raw(_inline("dup-1", png), request_id="dup-1")
        replay = second.wait(["dup-1"], timeout_s=ANSWER_TIMEOUT_S)["dup-1"].result
    assert replay is not None and replay.replayed
    assert replay.output == first.result.output
    assert replay.model_version == first.result.model_version
    assert replay.message_id != first.result.message_id  # a second message, answered from the cache
    # Without a second inference: the id is in exactly one batch the model ran.
    batches = [json.loads(line) for line in symbols.log().splitlines() if '"batch done"' in line]
    assert sum("dup-1" in b["request_ids"] for b in batches) == 1
    # The first client sees the replay too, as a duplicate; its stream may get it after the second's.
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while symbols.client.duplicate_answers["dup-1"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert symbols.client.duplicate_answers["dup-1"] == 1


# What the model does wrong: (payload, expected code, words in the message)
MODEL_CASES = [
    (b"boom", "handler_error", ["ZeroDivisionError"]),
    (b"nan", "invalid_output", ["non-finite", "nan"]),
    (b"inf", "invalid_output", ["non-finite", "inf"]),
    (b"-inf", "invalid_output", ["non-finite", "-inf"]),
    (b"tensor", "invalid_output", ["Tensor", "not JSON"]),
    (b"hello", "not_a_command", ["payload must be"]),
]


@pytest.mark.parametrize(("payload", "code", "words"), MODEL_CASES, ids=[c[0].decode() for c in MODEL_CASES])
def test_model_failures_get_an_error_naming_the_problem(
    edge: Served, payload: bytes, code: str, words: list[str]
) -> None:
    key = f"model-{payload.decode()}"
    answer = edge.ask(_inline(key, payload, model="edge"), key)
    assert answer.result is not None and answer.result.error is not None
    assert answer.result.error.code == code
    for word in words:
        assert word in answer.result.error.message, answer.result.error.message
    assert answer.result.output is None  # a broken output is withheld, never sent half-valid


def test_what_fails_every_time_is_dead_lettered(edge: Served) -> None:
    answer = edge.ask(_inline("tr-dl", b"transient", model="edge"), "tr-dl")
    assert answer.kind == "dead_letter"
    assert '"nacked"' in edge.log() and "transient_model_error" in edge.log()


def batch_events(log: str, event: str) -> list[dict[str, Any]]:
    events = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return [e for e in events if e.get("message") == event]


def test_one_poisoned_drawing_does_not_fail_the_other_31_in_its_batch(poisoned: Served) -> None:
    """Isolation with the real model: a blank drawing decodes like the others, so it reaches the model
    in the same batch of 32, where `predict` raises; the batch is retried item by item and only the
    poisoned item gets an error."""
    from asyncinfer.tools.loadtest import render_drawings

    drawings = render_drawings(31, seed=5)
    keys = []
    for i, (_, png) in enumerate(drawings):
        if i == 17:
            keys.append("iso-bad")
            poisoned.client.submit_raw(_inline("iso-bad", blank_png()), request_id="iso-bad")
        keys.append(f"iso-{i}")
        poisoned.client.submit_raw(_inline(f"iso-{i}", png), request_id=f"iso-{i}")
    got = poisoned.client.wait(keys, timeout_s=ANSWER_TIMEOUT_S)
    assert len(got) == 32
    assert [k for k, a in got.items() if not a.ok] == ["iso-bad"]
    bad = got["iso-bad"].result
    assert bad is not None and bad.error is not None
    assert bad.error.code == "handler_error" and "poisoned input" in bad.error.message
    # The 32 formed one batch, that batch failed as a whole, and was retried one item at a time.
    failed = batch_events(poisoned.log(), "batch failed; retrying its items one by one")
    assert [e["size"] for e in failed] == [32], failed
    done = [e for e in batch_events(poisoned.log(), "batch done") if e.get("batch_id") == failed[0]["batch_id"]]
    assert [e["size"] for e in done] == [32], done
    labels = [got[f"iso-{i}"].result.output["label"] for i in range(31)]  # type: ignore[union-attr,index]
    # The real model still answers the good ones correctly (it is ~99% accurate on rendered symbols).
    assert sum(label == truth for label, (truth, _) in zip(labels, drawings, strict=True)) >= 28


def test_workers_still_serve_after_the_poison(symbols: Served, edge: Served) -> None:
    png = render_png("flatness", np.random.default_rng(4))
    good = symbols.ask(_inline("after-1", png), "after-1")
    assert good.ok and good.result is not None and good.result.output is not None
    assert good.result.output["label"] == "flatness"
    assert edge.ask(_inline("after-2", b"ok", model="edge"), "after-2").ok
    for served in (symbols, edge):
        assert "Traceback" not in served.log()
