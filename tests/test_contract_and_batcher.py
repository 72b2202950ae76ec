"""The request/result contract, request intake and the micro-batcher, without Pub/Sub."""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from pathlib import Path

import pytest

from asyncinfer.core.contract import InferenceRequest, InferenceResult
from asyncinfer.core.worker_settings import WorkerSettings
from asyncinfer.worker.batcher import MicroBatcher, ReadyQueue
from asyncinfer.worker.errors import InvalidInputError
from asyncinfer.worker.intake import Rejection, load_input, read_request


def test_request_round_trip() -> None:
    request = InferenceRequest.inline("r-1", "symbols", b"png-bytes", priority=3)
    parsed = read_request(request.model_dump_json().encode())
    assert isinstance(parsed, InferenceRequest)
    assert parsed.request_id == "r-1" and parsed.priority == 3
    assert base64.b64decode(parsed.input_b64 or "") == b"png-bytes"
    assert parsed.submitted_at is not None and parsed.submitted_at.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "code", "request_id"),
    [
        (b"", "empty_body", None),
        (b"{nope", "malformed_json", None),
        (b"\xff\xfe\x00garbage", "malformed_json", None),
        (b"[1, 2]", "not_an_object", None),
        (b'{"schema_version": 2, "request_id": "r-9"}', "unsupported_schema_version", "r-9"),
        (b'{"request_id": "r-2", "model": "symbols"}', "invalid_request", "r-2"),
        (b'{"request_id": "r-3", "model": "symbols", "input_b64": "aGk=", "colour": 1}', "invalid_request", "r-3"),
        (b'{"request_id": "r-4", "model": 5, "input_b64": "aGk="}', "invalid_request", "r-4"),
        (b'{"request_id": "r-5", "model": "m", "input_uri": "http://x/y.png"}', "invalid_request", "r-5"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json", None),
    ],
)
def test_unreadable_requests_are_rejected_with_a_reason(body: bytes, code: str, request_id: str | None) -> None:
    parsed = read_request(body)
    assert isinstance(parsed, Rejection)
    assert parsed.code == code
    assert parsed.request_id == request_id
    assert parsed.message


def test_file_uris_must_stay_under_the_allowed_root(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    (root / "a.png").write_bytes(b"abc")
    (tmp_path / "secret").write_bytes(b"no")
    ok = InferenceRequest.by_uri("r", "m", f"file://{root}/a.png")
    assert load_input(ok, file_root=root, max_inline_bytes=10) == b"abc"
    with pytest.raises(InvalidInputError) as outside:
        load_input(InferenceRequest.by_uri("r", "m", f"file://{root}/../secret"), file_root=root, max_inline_bytes=10)
    assert outside.value.code == "forbidden_uri"
    with pytest.raises(InvalidInputError) as missing:
        load_input(InferenceRequest.by_uri("r", "m", f"file://{root}/nope.png"), file_root=root, max_inline_bytes=10)
    assert missing.value.code == "input_not_found"
    with pytest.raises(InvalidInputError) as big:
        load_input(InferenceRequest.inline("r", "m", b"x" * 100), file_root=root, max_inline_bytes=10)
    assert big.value.code == "payload_too_large"


@pytest.mark.parametrize(
    "text",
    ["", "YQ==", "YWJj", base64.b64encode(bytes(range(256)) * 9).decode(), "abcd=", "abc", "YQ", "ab=c",
     "ab\ncd", "ab cd", "a===", "YQ==YQ==", "é"],
)
def test_inline_input_decodes_exactly_as_the_stdlib_would(text: str) -> None:
    """The SIMD fast path (pybase64) accepts, refuses and words errors as `base64.b64decode(...,
    validate=True)` does, including what only the stdlib accepts (excess padding)."""
    request = InferenceRequest.model_construct(request_id="r", model="m", input_b64=text, input_uri=None)
    try:
        expected: bytes | str = base64.b64decode(text, validate=True)
    except ValueError as exc:
        expected = f"input_b64 is not valid base64 ({exc})"
    try:
        got: bytes | str = load_input(request, file_root=Path("/nonexistent"), max_inline_bytes=10_000)
    except InvalidInputError as exc:
        assert exc.code == "invalid_base64"
        got = exc.message
    assert got == expected


def test_result_without_request_id_survives_the_wire() -> None:
    result = InferenceResult(request_id=None, message_id="42", status="error", message_attributes={"a": "b"})
    back = InferenceResult.model_validate_json(result.model_dump_json(exclude_none=True))
    assert back.request_id is None and back.message_id == "42" and back.message_attributes == {"a": "b"}


def test_naive_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        InferenceRequest.inline("r", "m", b"x", deadline=dt.datetime(2030, 1, 1))


def test_batch_fills_up_to_max_size_without_waiting() -> None:
    source: ReadyQueue[int] = ReadyQueue()
    for i in range(10):
        source.put(i)
    batcher = MicroBatcher(source, max_size=4, max_wait_s=5.0)
    started = time.monotonic()
    assert batcher.next_batch(threading.Event()) == [0, 1, 2, 3]
    assert time.monotonic() - started < 1.0


def test_wait_starts_at_the_first_item_and_is_bounded() -> None:
    """Measured from the events, not against wall-clock windows a loaded machine can miss: the wait
    runs from the first item (never shorter than max_wait after it, however long the idle time
    before it), and it is bounded: an item arriving long after max_wait is not in the batch."""
    source: ReadyQueue[int] = ReadyQueue()
    batcher = MicroBatcher(source, max_size=32, max_wait_s=0.2)
    first_put_at: list[float] = []
    returned = threading.Event()

    def feed() -> None:
        time.sleep(0.3)
        first_put_at.append(time.monotonic())
        source.put(1)
        time.sleep(0.05)
        source.put(2)
        # Far past max_wait: only a batcher that did not stop waiting would take this one.
        returned.wait(timeout=5.0)
        source.put(3)

    feeder = threading.Thread(target=feed)
    feeder.start()
    batch = batcher.next_batch(threading.Event(), idle_poll_s=0.01)
    returned_at = time.monotonic()
    returned.set()
    feeder.join()
    assert batch == [1, 2]
    assert returned_at - first_put_at[0] >= 0.2 - 0.01  # gathered for max_wait after the first item
    assert source.take(None, 0) == [3]  # and stopped: the late item waits for the next batch


def test_stop_returns_what_is_there() -> None:
    source: ReadyQueue[int] = ReadyQueue()
    stop = threading.Event()
    stop.set()
    assert MicroBatcher(source, 4, 1.0).next_batch(stop) == []


def test_worker_environment_names_real_settings_only() -> None:
    from asyncinfer.core.worker_settings import worker_environment

    env = worker_environment(subscription="s", results_topic="r", handler="m:f", max_batch_size=8)
    assert env == {
        "ASYNCINFER_SUBSCRIPTION": "s", "ASYNCINFER_RESULTS_TOPIC": "r", "ASYNCINFER_HANDLER": "m:f",
        "ASYNCINFER_MAX_BATCH_SIZE": "8",
    }
    settings = WorkerSettings(_env_file=None, **{k.removeprefix("ASYNCINFER_").lower(): v for k, v in env.items()})
    assert settings.max_batch_size == 8
    with pytest.raises(ValueError, match="max_batchsize"):
        worker_environment(max_batchsize=8)


@pytest.mark.parametrize(
    ("flow_control_batches", "max_batch_size", "expected"),
    [(8, 32, 96), (6, 32, 96), (5, 32, 64), (3, 32, 64), (2, 32, 64), (1, 32, 32), (16, 32, 96), (8, 1, 3)],
)
def test_under_load_the_worker_pulls_again_once_three_batches_are_free(
    flow_control_batches: int, max_batch_size: int, expected: int
) -> None:
    settings = WorkerSettings(
        _env_file=None, subscription="s", results_topic="r", handler="m:f",
        flow_control_batches=flow_control_batches, max_batch_size=max_batch_size,
    )
    assert settings.min_pull_messages == expected
    assert settings.min_pull_messages <= settings.flow_control_max_messages


def test_a_chunk_put_at_once_is_taken_in_batches() -> None:
    source: ReadyQueue[int] = ReadyQueue()
    source.put_many(range(40))
    batcher = MicroBatcher(source, max_size=32, max_wait_s=0.0)
    assert batcher.next_batch(threading.Event()) == list(range(32))
    assert batcher.next_batch(threading.Event()) == list(range(32, 40))
    assert batcher.drain_nowait() == []
