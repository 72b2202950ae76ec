"""The Python client: submit requests, collect results, wait for answers.

A client owns two subscriptions for its lifetime, one on the results topic and one on the dead-letter
topic, created before anything is submitted so no answer can slip past. Answers are delivered at least
once, not exactly once: the same request can be answered twice (a worker killed between publish and
ack, a lapsed lease, a failed ack), always under the same request id. This client is where that is
made exactly one answer per id: each request id maps to its first answer; later answers for the same
id are counted in `duplicate_answers`, not treated as new results.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import pydantic_core
import structlog
from google.cloud.pubsub_v1.types import BatchSettings
from pydantic import ValidationError

from asyncinfer.client.pubsub import publisher_client
from asyncinfer.client.routing import check_client_name, is_for, results_filter
from asyncinfer.client.tap import PubsubMessage, SubscriptionTap
from asyncinfer.core.contract import CLIENT_ATTRIBUTE, InferenceRequest, InferenceResult
from asyncinfer.core.lanes import LANE_ATTRIBUTE, Lane, LaneSet

log = structlog.get_logger("asyncinfer.client")


@dataclass(frozen=True)
class Answer:
    """The final answer to one request: a result, or the fact that it was dead-lettered."""

    kind: Literal["result", "dead_letter"]
    received_at: float
    result: InferenceResult | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok


class AsyncInferClient:
    def __init__(
        self,
        project: str,
        requests_topic: str,
        results_topic: str,
        dead_letter_topic: str | None = None,
        *,
        lanes: LaneSet | None = None,
        lane_topics: Mapping[str, str] | None = None,
        client_name: str | None = None,
    ):
        """`lanes` and `lane_topics` (lane name -> requests topic, from the stack) route each request
        to its lane's topic; without them every request goes to `requests_topic`, as before lanes.

        `client_name` routes results (asyncinfer.client.routing): every request carries it as the
        `client` attribute and this client's results subscription filters on it, so it receives
        only its own results; without it, the subscription sees every result on the topic."""
        self.client_name = None if client_name is None else check_client_name(client_name)
        self._publisher = publisher_client(
            batch_settings=BatchSettings(max_messages=500, max_bytes=5_000_000, max_latency=0.01)
        )
        self._project = project
        self._requests_topic = self._publisher.topic_path(project, requests_topic)
        if (lanes is None) != (lane_topics is None):
            raise ValueError("give both lanes and lane_topics, or neither.")
        self._lanes = lanes
        self._lane_topics: dict[str, str] = {}
        if lanes is not None and lane_topics is not None:
            missing = sorted(set(lanes.names) - set(lane_topics))
            if missing:
                raise ValueError(f"lane_topics has no topic for lane(s) {', '.join(missing)}.")
            self._lane_topics = {name: self._publisher.topic_path(project, lane_topics[name]) for name in lanes.names}
        self._lock = threading.Condition()
        self.answers: dict[str, Answer] = {}
        self.submitted_at: dict[str, float] = {}
        self.duplicate_answers: Counter[str] = Counter()
        #: Results on the results topic that could not be parsed (they answer nothing we can name).
        self.unreadable_results = 0
        #: Other clients' results that reached this client's subscription and were dropped (only where
        #: filters are not applied: the emulator).
        self.foreign_results = 0
        self._message_to_request: dict[str, str] = {}
        # Both taps exist before anything is submitted, so no answer can slip past.
        results_filter_text = results_filter(self.client_name) if self.client_name else ""
        self._taps = [
            SubscriptionTap.on_topic(
                project, results_topic, "client", self._on_results, message_filter=results_filter_text
            ).start()
        ]
        if dead_letter_topic:
            self._taps.append(
                SubscriptionTap.on_topic(project, dead_letter_topic, "client", self._on_dead_letters).start()
            )

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> AsyncInferClient:
        """Connect to a local stack from `asyncinfer local status --json`."""
        lanes = lane_topics = None
        if status.get("lanes"):
            lanes = LaneSet(
                tuple(
                    Lane(name=x["name"], priority=x["priority"], latency_goal_s=x["latency_goal_s"])
                    for x in status["lanes"]
                ),
                status["default_lane"],
            )
            lane_topics = {x["name"]: x["requests_topic"] for x in status["lanes"]}
        return cls(
            status["project"],
            status["requests_topic"],
            status["results_topic"],
            status["dead_letter_topic"],
            lanes=lanes,
            lane_topics=lane_topics,
        )

    # --- submitting -----------------------------------------------------------------------------

    def submit(self, request: InferenceRequest, lane: str | None = None) -> Future[str]:
        """Publish one request; the future resolves to its Pub/Sub message id.

        With lanes, the request goes to the lane named by `lane`, else to the lane of its
        `priority` (a request that sets neither: the default lane); an unknown lane or a priority no
        lane has raises ValueError naming the valid ones, before anything is published."""
        if self._lanes is None:
            if lane is not None:
                raise ValueError(f"lane {lane!r} given, but this client has no lanes (give lanes and lane_topics).")
            return self.submit_raw(request.model_dump_json(exclude_none=True).encode(), request_id=request.request_id)
        # A priority the caller did not set is no choice: such a request goes to the default lane.
        priority = request.priority if "priority" in request.model_fields_set else None
        chosen = self._lanes.lane_for(lane=lane, priority=priority)
        # The body carries its lane's priority, so a worker can tell a request published to the
        # wrong lane's topic.
        data = request.model_copy(update={"priority": chosen.priority}).model_dump_json(exclude_none=True).encode()
        return self.submit_raw(data, request_id=request.request_id, **{LANE_ATTRIBUTE: chosen.name})

    def submit_raw(self, data: bytes, request_id: str | None = None, **attributes: str) -> Future[str]:
        """Publish arbitrary bytes (tests of bad input use this). Unreadable requests are matched
        back through their message id. With lanes, the `lane` attribute picks the topic (default
        lane without one)."""
        key = request_id or f"raw-{uuid.uuid4().hex}"
        topic = self._requests_topic
        if self._lanes is not None:
            name = attributes.get(LANE_ATTRIBUTE) or self._lanes.default
            topic = self._lane_topics[self._lanes.get(name).name]
        if self.client_name is not None:
            attributes = {**attributes, CLIENT_ATTRIBUTE: self.client_name}
        with self._lock:
            self.submitted_at[key] = time.monotonic()
        future: Future[str] = self._publisher.publish(topic, data, **attributes)

        def remember(done: Future[str]) -> None:
            if done.exception() is None:
                with self._lock:
                    self._message_to_request[done.result()] = key
                    self._lock.notify_all()

        future.add_done_callback(remember)
        return future

    # --- answers --------------------------------------------------------------------------------

    def wait(self, request_ids: Iterable[str], timeout_s: float) -> dict[str, Answer]:
        """Block until every id has an answer or the timeout passes; returns the answers found."""
        wanted = list(request_ids)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._lock.wait_for(
                lambda: all(r in self.answers for r in wanted), timeout=max(0.0, deadline - time.monotonic())
            )
            return {r: self.answers[r] for r in wanted if r in self.answers}

    def count_answered(self, request_ids: Iterable[str]) -> int:
        with self._lock:
            return sum(1 for r in request_ids if r in self.answers)

    def results(self) -> dict[str, Answer]:
        with self._lock:
            return dict(self.answers)

    @property
    def pull_errors(self) -> int:
        """Failed pulls of this client's result and dead-letter subscriptions (each one is logged)."""
        return sum(tap.pull_errors for tap in self._taps)

    def close(self) -> None:
        for tap in self._taps:
            tap.close()
        self._publisher.stop()

    def __enter__(self) -> AsyncInferClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------

    def _on_results(self, messages: list[PubsubMessage], arrived: float) -> None:
        for message in messages:
            if self.client_name is not None and not is_for(message.attributes, self.client_name):
                # Another client's result: Pub/Sub's filter keeps these away; the emulator does not.
                with self._lock:
                    self.foreign_results += 1
                continue
            try:
                result = InferenceResult.model_validate_json(message.data)
            except ValidationError:
                # Not ours to retry: a result we cannot read would come back forever.
                log.warning("unreadable result ignored", message_id=message.message_id)
                with self._lock:
                    self.unreadable_results += 1
                continue
            self._record(result.request_id, result.message_id, Answer("result", arrived, result))

    def _on_dead_letters(self, messages: list[PubsubMessage], arrived: float) -> None:
        for message in messages:
            request_id = None
            try:
                raw = pydantic_core.from_json(message.data)
                if isinstance(raw, dict) and isinstance(raw.get("request_id"), str):
                    request_id = raw["request_id"]
            except ValueError:
                pass
            self._record(request_id, message.message_id, Answer("dead_letter", arrived))

    def _record(self, request_id: str | None, message_id: str, answer: Answer) -> None:
        with self._lock:
            key = request_id
            if key is None or key not in self.submitted_at:
                # Unreadable requests are answered under their message id: map it back.
                deadline = time.monotonic() + 5
                while message_id not in self._message_to_request and time.monotonic() < deadline:
                    self._lock.wait(0.05)
                key = self._message_to_request.get(message_id, key or f"unknown-{message_id}")
            if key in self.answers:
                self.duplicate_answers[key] += 1
            else:
                self.answers[key] = answer
            self._lock.notify_all()
