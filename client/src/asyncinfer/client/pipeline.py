"""Running a pipeline (asyncinfer.core.pipeline): forwarding between stages and joining the answers.

`StageForwarder` reads one stage's results subscription. For an ok answer it publishes one request per
child to the next stage (request id `<root>.<stage>.<index>`, lineage in attributes), waits until
Pub/Sub has every one of them, and only then acknowledges the answer: a forwarder that dies halfway
leaves the answer unacknowledged, Pub/Sub delivers it again, and the children are published again
under the same request ids (the joiner keeps one per index). An error answer, or an answer with no
children, is the pipeline's final answer for that request: it goes to the last stage's results topic
with its lineage naming the stage.

`PipelineJoiner` reads the last stage's results topic and groups answers by their root request until
every child of a fan-out has answered.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import structlog
from google.api_core import exceptions as gexc

from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.client.tap import PubsubMessage, SubscriptionTap
from asyncinfer.core.contract import (
    CLIENT_ATTRIBUTE,
    COUNT_ATTRIBUTE,
    INDEX_ATTRIBUTE,
    ITEM_ATTRIBUTE,
    PARENT_ATTRIBUTE,
    ROOT_ATTRIBUTE,
    STAGE_ATTRIBUTE,
    UPSTREAM_ATTRIBUTE,
    ErrorInfo,
    InferenceRequest,
    InferenceResult,
    Lineage,
    StageTimings,
    utcnow,
)
from asyncinfer.core.pipeline import Pipeline, Stage

log = structlog.get_logger("asyncinfer.pipeline")

PULL_TIMEOUT_S = 2.0


def child_request_id(root: str, stage: Stage, index: int) -> str:
    return f"{root}.{stage.name}.{index}"


class StageForwarder:
    """Turns `stage`'s answers into the next stage's requests (or final answers), on its own thread."""

    def __init__(
        self,
        project: str,
        pipeline: Pipeline,
        stage: Stage,
        results_subscription: str,
        *,
        on_forwarded: Callable[[InferenceResult], None] | None = None,
    ) -> None:
        self.project = project
        self.pipeline = pipeline
        self.stage = stage
        self.next_stage = pipeline.after(stage)
        self._subscriber = subscriber_client()
        self._publisher = publisher_client()
        self._path = f"projects/{project}/subscriptions/{results_subscription}"
        self._next_topic = f"projects/{project}/topics/{self.next_stage.queue}-requests"
        self._final_topic = f"projects/{project}/topics/{pipeline.last.queue}-results"
        self._on_forwarded = on_forwarded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"forward-{stage.name}", daemon=True)
        self.counts: dict[str, int] = {"answers": 0, "children": 0, "final_errors": 0, "retried": 0}

    def start(self) -> StageForwarder:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._publisher.stop()
        self._subscriber.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                response = self._subscriber.pull(
                    request={"subscription": self._path, "max_messages": 50}, timeout=PULL_TIMEOUT_S + 3, retry=None
                )
            except gexc.DeadlineExceeded:
                continue
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("forwarder pull failed", stage=self.stage.name, error=repr(exc))
                    self._stop.wait(1.0)
                continue
            for item in response.received_messages:
                try:
                    self.forward(item.message)
                except Exception as exc:
                    # Not acknowledged: Pub/Sub delivers the answer again and it is forwarded again.
                    self.counts["retried"] += 1
                    log.warning("forwarding failed; the answer comes back", stage=self.stage.name, error=repr(exc))
                    self._subscriber.modify_ack_deadline(
                        subscription=self._path, ack_ids=[item.ack_id], ack_deadline_seconds=0
                    )
                    continue
                self._subscriber.acknowledge(subscription=self._path, ack_ids=[item.ack_id])

    def forward(self, message: PubsubMessage) -> None:
        """Publish what one answer leads to and return once Pub/Sub has all of it (raises otherwise)."""
        result = InferenceResult.model_validate_json(message.data)
        self.counts["answers"] += 1
        lineage = result.lineage
        root = lineage.root_request_id if lineage else (result.request_id or f"message-{result.message_id}")
        upstream = [*(lineage.upstream if lineage else []),
                    StageTimings(stage=self.stage.name, request_id=result.request_id or "", timings=result.timings)]
        base = {k: v for k, v in message.attributes.items() if k == CLIENT_ATTRIBUTE}
        children = self._children(result)
        if isinstance(children, str) or not children:
            final = self._final(result, root, upstream, problem=children if isinstance(children, str) else None)
            attributes = {**base, "status": final.status, "message_id": final.message_id, "request_id": root}
            self._publisher.publish(self._final_topic, final.model_dump_json(exclude_none=True).encode(),
                                    **attributes).result(timeout=60)
            self.counts["final_errors"] += final.status == "error"
        else:
            futures: list[Future[str]] = []
            for index, (payload, scalars) in enumerate(children):
                child_id = child_request_id(root, self.stage, index)
                request = InferenceRequest.inline(child_id, self.next_stage.model, payload)
                attributes = {
                    **base,
                    ROOT_ATTRIBUTE: root,
                    PARENT_ATTRIBUTE: result.request_id or "",
                    STAGE_ATTRIBUTE: self.next_stage.name,
                    INDEX_ATTRIBUTE: str(index),
                    COUNT_ATTRIBUTE: str(len(children)),
                    UPSTREAM_ATTRIBUTE: json.dumps([u.model_dump(mode="json", exclude_none=True) for u in upstream]),
                    ITEM_ATTRIBUTE: json.dumps(scalars),
                }
                futures.append(self._publisher.publish(
                    self._next_topic, request.model_dump_json(exclude_none=True).encode(), **attributes
                ))
            for future in futures:
                future.result(timeout=60)
            self.counts["children"] += len(children)
        if self._on_forwarded is not None:
            self._on_forwarded(result)

    def _children(self, result: InferenceResult) -> list[tuple[bytes, dict[str, Any]]] | str:
        """The child inputs with their items' other scalar fields, or why there are none that can be
        sent on (an error to report)."""
        if not result.ok:
            return ""
        items = (result.output or {}).get(self.stage.fan_out or "")
        if not isinstance(items, list):
            return f"the output has no list {self.stage.fan_out!r} to fan out"
        payloads = []
        for item in items:
            value = item.get(self.stage.input_key) if isinstance(item, dict) else None
            try:
                payload = base64.b64decode(value or "", validate=True)
            except (binascii.Error, ValueError):
                return f"a child of the output has no base64 {self.stage.input_key!r}"
            scalars = {k: v for k, v in item.items()
                       if k != self.stage.input_key and isinstance(v, str | int | float | bool)}
            payloads.append((payload, scalars))
        return payloads

    def _final(
        self, result: InferenceResult, root: str, upstream: list[StageTimings], problem: str | None
    ) -> InferenceResult:
        lineage = Lineage(root_request_id=root, stage=self.stage.name, parent_request_id=result.request_id,
                          index=0, count=0, upstream=upstream[:-1])
        final = result.model_copy(update={"request_id": root, "lineage": lineage, "completed_at": utcnow()})
        if problem:
            final = final.model_copy(update={
                "status": "error", "output": None,
                "error": ErrorInfo(code="stage_output_invalid", message=f"stage {self.stage.name}: {problem}"),
            })
        elif final.error is not None:
            final = final.model_copy(update={"error": final.error.model_copy(
                update={"message": f"stage {self.stage.name}: {final.error.message}"})})
        return final


@dataclass
class JoinedAnswer:
    """Everything the pipeline answered for one submitted request."""

    root_request_id: str
    #: index -> the last stage's answer for that child (the first one that arrived).
    children: dict[int, InferenceResult] = field(default_factory=dict)
    expected: int | None = None
    #: An answer that ends the request early: an error at some stage, or a fan-out to nothing.
    final: InferenceResult | None = None
    duplicates: int = 0

    @property
    def complete(self) -> bool:
        return self.final is not None or (self.expected is not None and len(self.children) >= self.expected)

    @property
    def ok(self) -> bool:
        if self.final is not None:
            return self.final.ok
        return self.complete and all(c.ok for c in self.children.values())

    def ordered(self) -> list[InferenceResult]:
        return [self.children[i] for i in sorted(self.children)]


class PipelineJoiner:
    """Submits to a pipeline's first stage and joins the last stage's answers per submitted request."""

    def __init__(self, project: str, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._publisher = publisher_client()
        self._first_topic = f"projects/{project}/topics/{pipeline.first.queue}-requests"
        self._lock = threading.Condition()
        self.answers: dict[str, JoinedAnswer] = {}
        self.stray = 0
        self._tap = SubscriptionTap.on_topic(project, f"{pipeline.last.queue}-results", "join", self._on_results)
        self._tap.start()

    def submit(self, request: InferenceRequest, **attributes: str) -> Future[str]:
        with self._lock:
            self.answers.setdefault(request.request_id, JoinedAnswer(request.request_id))
        future: Future[str] = self._publisher.publish(
            self._first_topic, request.model_dump_json(exclude_none=True).encode(), **attributes
        )
        return future

    def wait(self, roots: Iterable[str], timeout_s: float) -> dict[str, JoinedAnswer]:
        wanted = list(roots)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._lock.wait_for(lambda: all(self.answers[r].complete for r in wanted),
                                timeout=max(0.0, deadline - time.monotonic()))
            return {r: self.answers[r] for r in wanted}

    def close(self) -> None:
        self._tap.close()
        self._publisher.stop()

    def __enter__(self) -> PipelineJoiner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_results(self, messages: list[PubsubMessage], arrived: float) -> None:
        for message in messages:
            try:
                result = InferenceResult.model_validate_json(message.data)
            except ValueError:
                log.warning("unreadable pipeline answer ignored", message_id=message.message_id)
                continue
            self._record(result)

    def _record(self, result: InferenceResult) -> None:
        lineage = result.lineage
        with self._lock:
            answer = self.answers.get(lineage.root_request_id if lineage else (result.request_id or ""))
            if answer is None or lineage is None:
                self.stray += 1
                return
            if lineage.count == 0:  # an error at an earlier stage, or a fan-out to nothing
                answer.final = answer.final or result
            elif lineage.index in answer.children:
                answer.duplicates += 1
            else:
                answer.children[lineage.index] = result
                answer.expected = lineage.count
            self._lock.notify_all()


def joined_summary(answer: JoinedAnswer) -> dict[str, Any]:
    """A joined answer as plain data: each child's output with its fan-out index (and the stage that
    failed, if one did)."""
    if answer.final is not None:
        final = answer.final
        return {"request_id": answer.root_request_id, "status": final.status,
                "stage": final.lineage.stage if final.lineage else None,
                "error": final.error.model_dump() if final.error else None, "children": []}
    return {
        "request_id": answer.root_request_id,
        "status": "ok" if answer.ok else ("incomplete" if not answer.complete else "error"),
        "children": [
            {"index": i, **(c.lineage.item if c.lineage else {}), "status": c.status,
             **({"output": c.output} if c.output is not None else {"error": c.error.model_dump() if c.error else None})}
            for i, c in sorted(answer.children.items())
        ],
    }
