"""Results on the wire: the message body and attributes of each answer.

Error results and replays are rare and go through the `InferenceResult` model (`wire`). The ok
results of a batch, one per request at full load, are written straight to JSON bytes instead
(`BatchAnswers.ok_body`): the fields every result of the batch shares (worker, model, version, time,
cost share) are serialised once per batch, each result adds its own few fields and the output the
worker already serialised to check it. Building a model per result and serialising the output a
second time cost about three times as much CPU per result (`python -m asyncinfer.tools.hotpath_bench`).
`tests/test_answers.py` checks that both paths give the same result for the same inputs.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import pydantic_core

from asyncinfer.core.contract import (
    CLIENT_ATTRIBUTE,
    LANE_ATTRIBUTE,
    REPLAY_ATTRIBUTE,
    ROOT_ATTRIBUTE,
    Cost,
    InferenceResult,
    carried_from_request,
)

#: The request attributes a result copies fields from (`carried_from_request`). Most requests carry
#: none of them, and then the only carried field is `dead_letter_replay: 0`.
_CARRIED_KEYS = frozenset({REPLAY_ATTRIBUTE, CLIENT_ATTRIBUTE, LANE_ATTRIBUTE, ROOT_ATTRIBUTE})


def attributes_for(status: str, message_id: str, request_id: str | None, client: str | None) -> dict[str, str]:
    """A result's message attributes. They let watchers (the local backlog meter, the bench) and a
    client's filtered subscription match results to requests without parsing JSON."""
    attributes = {"status": status, "message_id": message_id}
    if request_id is not None:
        attributes["request_id"] = request_id
    if client is not None:
        attributes[CLIENT_ATTRIBUTE] = client
    return attributes


def wire(result: InferenceResult) -> tuple[bytes, dict[str, str]]:
    """Any result as message body and attributes, through the model."""
    attributes = attributes_for(result.status, result.message_id, result.request_id, result.client)
    return result.model_dump_json(exclude_none=True).encode(), attributes


def encode_output(output: Any) -> tuple[bytes, str | None]:
    """The output as JSON bytes, or empty bytes and why it cannot be sent.

    pydantic-core's Rust serializer: several times faster than json.dumps. Non-finite numbers come
    out as the (non-JSON) tokens NaN / Infinity and unknown types raise: only then is the output
    walked to say what is wrong."""
    try:
        encoded = pydantic_core.to_json(output)
        suspect = b"NaN" in encoded or b"Infinity" in encoded
    except Exception:
        encoded, suspect = b"", True
    problem = output_problem(output) if suspect else None
    if problem or not encoded:
        return b"", problem or "the model produced an output that cannot be sent as JSON"
    return encoded, None


def output_problem(output: Any) -> str | None:
    """Why an output cannot be sent as JSON, or None. NaN and inf are not JSON and usually mean a
    numerically broken model, which a client must hear about instead of parsing garbage."""
    stack = [output]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"the model produced a non-finite number ({value}); the output was withheld"
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif not isinstance(value, str | int | float | bool | type(None)):
            return f"the model produced a {type(value).__name__}, which is not JSON"
    return None


def timings_fields(
    received_at: float, submitted_s: float | None, started: float, inference_ms: float, now: float, wall_now: float
) -> dict[str, float]:
    """A result's timings (ms, 2 decimals), without the ones that are unknown. `received_at`,
    `started` and `now` are time.monotonic(); `submitted_s` and `wall_now` are epoch seconds."""
    fields = {
        "batch_wait_ms": round((started - received_at) * 1000, 2),
        "inference_ms": round(inference_ms, 2),
    }
    if submitted_s is not None:
        fields["queued_ms"] = round(max(0.0, (wall_now - (now - received_at) - submitted_s) * 1000), 2)
        fields["total_ms"] = round(max(0.0, (wall_now - submitted_s) * 1000), 2)
    return fields


@dataclass(frozen=True, slots=True)
class BatchAnswers:
    """The part of a batch's ok results that every one of them shares, serialised once."""

    #: `"schema_version":1, ... "cost":{...}` without the braces: spliced into every ok body.
    shared: bytes

    @classmethod
    def for_batch(
        cls, worker_id: str, model: str | None, model_version: str | None, completed_at: dt.datetime, cost: Cost | None
    ) -> BatchAnswers:
        shared: dict[str, Any] = {"schema_version": 1, "status": "ok", "worker_id": worker_id}
        if model is not None:
            shared["model"] = model
        if model_version is not None:
            shared["model_version"] = model_version
        shared["completed_at"] = completed_at
        shared["replayed"] = False
        if cost is not None:
            shared["cost"] = cost.model_dump(mode="json", exclude_none=True)
        return cls(pydantic_core.to_json(shared)[1:-1])

    def ok_body(
        self,
        request_id: str,
        message_id: str,
        delivery_attempt: int,
        attributes: dict[str, str],
        timings: dict[str, float],
        encoded_output: bytes | None,
        output_uri: str | None = None,
    ) -> bytes:
        """One ok result's body: its own fields, the output (inline, already encoded, or its URI) and
        the batch's shared fields. The same JSON object `wire` would give for the same result,
        keys in another order."""
        own: dict[str, Any] = {
            "request_id": request_id,
            "message_id": message_id,
            "message_attributes": {},
            "timings": timings,
            "delivery_attempt": delivery_attempt,
        }
        if _CARRIED_KEYS.isdisjoint(attributes):
            own[REPLAY_ATTRIBUTE] = 0
        else:
            for key, value in carried_from_request(attributes).items():
                if value is not None:
                    own[key] = value.model_dump(mode="json", exclude_none=True) if key == "lineage" else value
        if output_uri is not None:
            own["output_uri"] = output_uri
        head = pydantic_core.to_json(own)[:-1]
        if encoded_output is not None:
            return b"".join((head, b',"output":', encoded_output, b",", self.shared, b"}"))
        return b"".join((head, b",", self.shared, b"}"))
