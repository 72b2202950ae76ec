"""`python -m asyncinfer.tools.local.emulator_cost [--json FILE]`: the Pub/Sub emulator's own CPU per
message under two sets of JVM options, side by side.

Each pass starts a fresh emulator, then puts messages through one hop (raw publish calls of 1,000,
a raw pull of up to 160 and its acknowledge, as the worker does) in three stages (5,000, 20,000,
20,000) and divides the emulator process group's CPU by the messages of each stage. The stages show
the JIT warming up: a bench run or a test session lives mostly in the first of them. The option sets
alternate so both see the same background load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

from asyncinfer.tools.local.emulator import DEFAULT_JAVA_OPTIONS, JAVA_OPTIONS_ENV, PubSubEmulator

PROJECT = "emulator-cost"
STAGES = (5_000, 20_000, 20_000)
BODY = b"x" * 2_800  # about one symbol request: a 2 KB PNG in base64 inside JSON


def one_pass(java_options: str) -> dict[str, Any]:
    from asyncinfer.client.pubsub import publisher_client, subscriber_client
    from asyncinfer.tools.proc_cpu import cpu_seconds
    from asyncinfer.worker.rpc import PublisherRpc, SubscriberRpc

    previous = os.environ.get(JAVA_OPTIONS_ENV)
    os.environ[JAVA_OPTIONS_ENV] = java_options
    host_before = os.environ.get("PUBSUB_EMULATOR_HOST")
    emulator = PubSubEmulator(PROJECT, data_dir=Path(tempfile.mkdtemp(prefix="emulator-cost-")))
    try:
        started = time.perf_counter()
        emulator.start()
        start_s = time.perf_counter() - started
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        publisher, subscriber = publisher_client(), subscriber_client()
        topic = publisher.topic_path(PROJECT, "cost-requests")
        publisher.create_topic(name=topic)
        subscription = subscriber.subscription_path(PROJECT, "cost-worker")
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
        publish, pull = PublisherRpc(publisher, topic), SubscriberRpc(subscriber, subscription)
        pids = emulator.pids()
        stages = []
        for count in STAGES:
            cpu_before, wall_before = cpu_seconds(pids), time.perf_counter()
            _one_hop(publish, pull, count)
            wall_s = time.perf_counter() - wall_before
            stages.append({
                "messages": count,
                "emulator_cpu_us_per_message": round((cpu_seconds(pids) - cpu_before) / count * 1e6, 1),
                "messages_per_s": round(count / wall_s, 1),
            })
        publisher.stop()
        subscriber.close()
        return {"java_options": java_options, "start_s": round(start_s, 2), "stages": stages}
    finally:
        emulator.stop()
        for name, value in ((JAVA_OPTIONS_ENV, previous), ("PUBSUB_EMULATOR_HOST", host_before)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _one_hop(publish: Any, pull: Any, count: int) -> None:
    received = 0

    def consume() -> None:
        nonlocal received
        while received < count:
            messages = pull.pull(160, 5.0)
            if messages:
                pull.acknowledge([m.ack_id for m in messages])
                received += len(messages)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    for _ in range(0, count, 1000):
        publish.publish([(BODY, {})] * 1000, timeout_s=60)
    consumer.join(timeout=300)
    if consumer.is_alive():
        raise RuntimeError(f"only {received} of {count} messages came back within 300 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the passes and medians here")
    parser.add_argument("--passes", type=int, default=2, help="passes per option set (default 2)")
    parser.add_argument("--options", default=DEFAULT_JAVA_OPTIONS,
                        help=f"the JVM options measured (default {DEFAULT_JAVA_OPTIONS!r})")
    parser.add_argument("--baseline", default="",
                        help="the JVM options --options is set against (default: none, the JVM's defaults)")
    args = parser.parse_args(argv)
    baseline = args.baseline or "jvm defaults"
    passes: dict[str, list[dict[str, Any]]] = {baseline: [], args.options: []}
    for _ in range(args.passes):
        for label, options in ((baseline, args.baseline), (args.options, args.options)):
            result = one_pass(options)
            passes[label].append(result)
            print(json.dumps(result))
    medians = {
        label: [median(p["stages"][i]["emulator_cpu_us_per_message"] for p in runs) for i in range(len(STAGES))]
        for label, runs in passes.items()
    }
    for label, values in medians.items():
        print(f"{label!r}: emulator CPU us per message, stages of {STAGES}: {values}")
    if args.json is not None:
        args.json.write_text(json.dumps({"stages": STAGES, "passes": passes, "median_us_per_message": medians,
                                         "cpu_count": os.cpu_count()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
