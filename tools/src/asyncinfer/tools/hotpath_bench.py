"""The worker's per-request hot path, piece by piece: each earlier way against its replacement.

`python -m asyncinfer.tools.hotpath_bench [--json PATH]` times, alternating the two ways in one run
(median of `--rounds`), on this thread's CPU clock (`time.thread_time`):
- a result: an `InferenceResult` model serialised per result (the earlier way) against the
  per-batch JSON template (`asyncinfer.worker.answers.BatchAnswers`);
- the example model's decode: the earlier float32 normalisation in decode against uint8 pixels
  (`image_to_array` vs `image_to_pixels` on the same decoded image), and the bytes each hands on;
- the Pub/Sub RPCs against the emulator (started here): pull of 32, publish of 32 results and ack of
  10 ids through the generated client against the raw channel (`asyncinfer.worker.rpc`).
Absolute figures move with the machine; the ratios in one run are the numbers to read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydantic_core
from google.pubsub_v1.types import pubsub as pubsub_types
from PIL import Image

from asyncinfer.core.contract import Cost, InferenceResult, Timings, carried_from_request
from asyncinfer.worker.answers import BatchAnswers, attributes_for, encode_output, timings_fields, wire
from drawing_symbols.render import SYMBOL_CLASSES, image_to_array, image_to_pixels, render_png

PROJECT = "hotpath-bench"
OUTPUT = {
    "label": "flatness",
    "confidence": 0.9912,
    "top3": [
        {"label": "flatness", "score": 0.9912},
        {"label": "circularity", "score": 0.0051},
        {"label": "straightness", "score": 0.0012},
    ],
}


def cpu_us(fn: Callable[[], object], n: int) -> float:
    """CPU microseconds per call of `fn` on this thread, over `n` calls after a warm-up."""
    for _ in range(min(n, 20)):
        fn()
    started = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - started) / n * 1e6


def paired(before: Callable[[], object], after: Callable[[], object], n: int, rounds: int) -> dict[str, Any]:
    """Both ways, alternating, `rounds` times; medians and the after/before ratio."""
    b: list[float] = []
    a: list[float] = []
    for _ in range(rounds):
        b.append(cpu_us(before, n))
        a.append(cpu_us(after, n))
    before_us, after_us = statistics.median(b), statistics.median(a)
    return {
        "before_us": round(before_us, 2),
        "after_us": round(after_us, 2),
        "after_over_before": round(after_us / before_us, 3),
        "rounds_before_us": [round(x, 2) for x in b],
        "rounds_after_us": [round(x, 2) for x in a],
    }


def result_building(n: int, rounds: int) -> dict[str, Any]:
    completed = dt.datetime.now(dt.UTC)
    cost = Cost(usd=1.2e-6, inference_share_ms=0.3, price_per_hour_usd=0.28, price_basis="spot, assumed")
    attributes = {"client": "bench"}

    def through_the_model() -> bytes:
        encoded = pydantic_core.to_json(OUTPUT)
        assert b"NaN" not in encoded
        timings = Timings.model_construct(queued_ms=1.23, batch_wait_ms=2.34, inference_ms=3.45, total_ms=5.67)
        result = InferenceResult.model_construct(
            request_id="req-123456", message_id="1234567", message_attributes={}, status="ok", timings=timings,
            delivery_attempt=1, worker_id="w-1", model="symbols", model_version="v1", completed_at=completed,
            **carried_from_request(attributes),
        )
        result.output = OUTPUT
        result.cost = cost
        return wire(result)[0]

    shared = BatchAnswers.for_batch("w-1", "symbols", "v1", completed, cost)

    def from_the_template() -> bytes:
        encoded, _ = encode_output(OUTPUT)
        timings = timings_fields(100.0, 1.7e9, 100.004, 3.45, 100.01, 1.7e9)
        attributes_for("ok", "1234567", "req-123456", "bench")
        return shared.ok_body("req-123456", "1234567", 1, attributes, timings, encoded)

    assert json.loads(through_the_model())["output"] == json.loads(from_the_template())["output"]
    return {"what": "one ok result's body and attributes", **paired(through_the_model, from_the_template, n, rounds)}


def decode_output(image: Image.Image, n: int, rounds: int) -> dict[str, Any]:
    return {
        "what": "the decoded 64 px image to what decode hands on",
        "bytes_before": int(image_to_array(image).nbytes),
        "bytes_after": int(image_to_pixels(image).nbytes),
        **paired(lambda: image_to_array(image), lambda: image_to_pixels(image), n, rounds),
    }


def rpcs(n: int, rounds: int) -> dict[str, Any]:
    """Per-call CPU of the generated client against the raw channel, on a local emulator."""
    import os

    from asyncinfer.client.pubsub import publisher_client, subscriber_client
    from asyncinfer.tools.local.emulator import PubSubEmulator
    from asyncinfer.worker.rpc import PUBLISH_REQUEST, PUBSUB_MESSAGE, PublisherRpc, SubscriberRpc

    with tempfile.TemporaryDirectory() as data_dir:
        emulator = PubSubEmulator(PROJECT, data_dir=Path(data_dir))
        emulator.start()
        previous = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        try:
            publisher, subscriber = publisher_client(), subscriber_client()
            topic, subscription = f"projects/{PROJECT}/topics/hot-path", f"projects/{PROJECT}/subscriptions/hot-path"
            publisher.create_topic(name=topic)
            subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
            raw_sub, raw_pub = SubscriberRpc(subscriber, subscription), PublisherRpc(publisher, topic)
            results = [(b"x" * 600, {"status": "ok", "message_id": "1", "request_id": f"r-{i}"}) for i in range(32)]

            def generated_publish() -> None:
                messages = [PUBSUB_MESSAGE(data=d, attributes=a) for d, a in results]
                request = PUBLISH_REQUEST(topic=topic, messages=messages)
                publisher.api.publish(request=pubsub_types.PublishRequest.wrap(request), timeout=30)

            publish = paired(generated_publish, lambda: raw_pub.publish(results), n, rounds)
            # Enough messages on the subscription for every pull below to get its 32 at once.
            for _ in range(((2 * rounds + 1) * (n + 20) * 32) // len(results) + 1):
                raw_pub.publish(results)
            pulled: list[str] = []

            def generated_pull() -> None:
                response = subscriber.pull(request={"subscription": subscription, "max_messages": 32},
                                           timeout=10, retry=None)
                pulled.extend(m.ack_id for m in response.received_messages)

            def raw_pull() -> None:
                pulled.extend(m.ack_id for m in raw_sub.pull(32, timeout_s=10))

            pull = paired(generated_pull, raw_pull, n, rounds)
            chunks = iter([pulled[i : i + 10] for i in range(0, len(pulled), 10)])
            ack = paired(lambda: subscriber.acknowledge(subscription=subscription, ack_ids=next(chunks)),
                         lambda: raw_sub.acknowledge(next(chunks)), n, rounds)
        finally:
            if previous is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = previous
            emulator.stop()
    return {
        "pull_32": {"what": "pull of up to 32 messages (generated client vs raw channel)", **pull},
        "publish_32": {"what": "publish of 32 results in one call", **publish},
        "ack_10": {"what": "acknowledge of 10 ack ids", **ack},
    }


def run(n: int = 2000, rpc_calls: int = 150, rounds: int = 3) -> dict[str, Any]:
    png = render_png(SYMBOL_CLASSES[0], np.random.default_rng(3))
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("L")
    return {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "calls_per_round": n,
        "rpc_calls_per_round": rpc_calls,
        "rounds": rounds,
        "result": result_building(n, rounds),
        "decode_output": decode_output(image, n, rounds),
        **(rpcs(rpc_calls, rounds) if rpc_calls else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round for the in-process pieces")
    parser.add_argument("--rpc-calls", type=int, default=150, help="RPCs per round (0 skips the emulator part)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    report = run(args.calls, args.rpc_calls, args.rounds)
    for name, row in report.items():
        if isinstance(row, dict):
            print(f"{name:14} {row['before_us']:>9.1f} us -> {row['after_us']:>8.1f} us  "
                  f"(x{row['after_over_before']:.2f})  {row['what']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
