"""The VM's entry point: one worker process, configured from ASYNCINFER_* environment variables.

Run as `asyncinfer-worker` or `python -m asyncinfer.worker` (what the container's ENTRYPOINT runs). It
needs only this distribution, the core and the client: no Pulumi, rich or developer tools.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import structlog
from pydantic import ValidationError

from asyncinfer.core.logs import configure_logging
from asyncinfer.core.worker_settings import WorkerSettings
from asyncinfer.worker.handler import ModelHandler
from asyncinfer.worker.health import HealthServer
from asyncinfer.worker.lane_transport import LaneTransports
from asyncinfer.worker.lane_worker import LaneWorker
from asyncinfer.worker.loading import load_handler
from asyncinfer.worker.runtime import Worker
from asyncinfer.worker.transport import PubSubTransport

#: Exit codes, named as dramatiq names its own.
RET_OK = 0
RET_LOAD_FAILED = 1
RET_BAD_SETTINGS = 2


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asyncinfer-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--json-logs", action="store_true", default=None, help="force JSON logs on a TTY")
    return parser.parse_args(argv)


def build_worker(settings: WorkerSettings, handler: ModelHandler) -> Worker:
    """One transport per subscription: the queue's own, or one per priority lane."""

    def transport(subscription_path: str) -> PubSubTransport:
        return PubSubTransport(
            subscription_path,
            settings.results_topic_path(),
            max_messages=settings.flow_control_max_messages,
            max_lease_s=settings.max_lease_s,
            max_message_bytes=settings.pubsub_max_message_bytes,
            min_pull_messages=settings.min_pull_messages,
        )

    if not settings.lanes:
        return Worker(settings, handler, transport(settings.subscription_path()))
    lanes = settings.lane_set()
    paths = settings.lane_subscription_paths()
    return LaneWorker(settings, handler, LaneTransports(lanes, {name: transport(paths[name]) for name in lanes.names}))


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    configure_logging(args.log_level, args.json_logs)
    log = structlog.get_logger("asyncinfer.worker")
    try:
        settings = WorkerSettings()  # type: ignore[call-arg]  # required fields come from the environment
    except ValidationError as exc:
        print(f"worker settings are invalid (set them as ASYNCINFER_<NAME> variables):\n{exc}", file=sys.stderr)
        return RET_BAD_SETTINGS
    try:
        handler = load_handler(settings.handler)
    except Exception as exc:  # a missing module, a bad name or weights missing at construction
        print(f"ASYNCINFER_HANDLER={settings.handler!r} cannot be used: {exc}", file=sys.stderr)
        return RET_BAD_SETTINGS
    worker = build_worker(settings, handler)

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        worker.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = None
    if settings.health_port:
        health = HealthServer(settings.health_host, settings.health_port, worker.problems)
        health.start()
    try:
        return worker.run()
    finally:
        if health is not None:
            health.stop()
