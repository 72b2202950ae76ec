"""The request/result contract (schema version 1).

Every message on a requests topic gets exactly one final answer: an ok result, an error result, or,
after N failed deliveries, a dead letter. The request id is chosen by the client and is the
idempotency key: a result may arrive twice (at-least-once delivery), always under the same id.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

SCHEMA_VERSION: Literal[1] = 1
ALLOWED_URI_SCHEMES = ("file://", "gs://")

#: Request-message attributes the platform reads (the body stays the client's own).
#: How many times `asyncinfer dlq replay` republished this request from the dead-letter queue.
REPLAY_ATTRIBUTE = "dead_letter_replay"
#: The id of the dead-letter copy a replay came from, to trace it back.
REPLAY_SOURCE_ATTRIBUTE = "dead_letter_message_id"
#: The sender's name. The worker copies it onto the result (body and attribute), so each client's
#: results subscription can filter on `attributes.client = "<name>"` and receive only its own.
CLIENT_ATTRIBUTE = "client"
#: Letters, digits, '.', '_', '-': safe inside a Pub/Sub filter's quoted string and a subscription name.
CLIENT_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
#: The request's priority lane (asyncinfer.core.lanes.LANE_ATTRIBUTE), copied onto the result for cost reports.
LANE_ATTRIBUTE = "lane"
#: Pipeline lineage (asyncinfer.core.pipeline): set on a child request by the stage forwarder and
#: copied into the result's `lineage`.
ROOT_ATTRIBUTE = "pipeline_root"
PARENT_ATTRIBUTE = "pipeline_parent"
STAGE_ATTRIBUTE = "pipeline_stage"
INDEX_ATTRIBUTE = "fanout_index"
COUNT_ATTRIBUTE = "fanout_count"
#: JSON list of the earlier stages' {stage, request_id, timings}.
UPSTREAM_ATTRIBUTE = "pipeline_upstream"
#: JSON object of the fan-out item's scalar fields (a crop's position, say), apart from its payload.
ITEM_ATTRIBUTE = "fanout_item"

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
JsonScalar = str | int | float | bool | None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InferenceRequest(BaseModel):
    """What a client puts on the requests topic. Input travels inline (base64, small) or by URI
    (claim check: the bytes live in object storage because a message is at most 10 MB)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    request_id: RequestId = Field(
        description="Chosen by the client; the idempotency key. Every answer carries it, a duplicate too."
    )
    model: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The model the queue serves; another name gets the error result `unknown_model`."
    )
    input_b64: str | None = Field(default=None, description="The input's bytes, base64 (inline, small inputs).")
    input_uri: str | None = Field(
        default=None, description="The input by reference (file:// locally, gs:// in the cloud): claim check."
    )
    #: 0 (lowest) to 9. Validated and carried, ignored today: one requests topic, served in arrival order.
    priority: Annotated[int, Field(ge=0, le=9)] = Field(default=0, description="0 (lowest) to 9.")
    #: After this instant the answer is useless: the worker answers `deadline_exceeded` instead.
    deadline: dt.datetime | None = Field(
        default=None, description="ISO 8601 with offset; after it the worker answers `deadline_exceeded`."
    )
    params: dict[str, JsonScalar] = Field(default_factory=dict, description="Model parameters (JSON scalars).")
    submitted_at: dt.datetime | None = Field(
        default=None, description="ISO 8601 with offset; when given, results report queued_ms and total_ms."
    )

    @model_validator(mode="after")
    def _one_input(self) -> InferenceRequest:
        if (self.input_b64 is None) == (self.input_uri is None):
            raise ValueError("give exactly one of input_b64 (inline bytes, base64) or input_uri (file:// or gs://)")
        if self.input_uri is not None and not self.input_uri.startswith(ALLOWED_URI_SCHEMES):
            raise ValueError(f"input_uri must start with one of {', '.join(ALLOWED_URI_SCHEMES)}")
        for name in ("deadline", "submitted_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone (ISO 8601 with offset, e.g. ...Z)")
        return self

    @classmethod
    def inline(cls, request_id: str, model: str, payload: bytes, **fields: Any) -> InferenceRequest:
        return cls(
            request_id=request_id,
            model=model,
            input_b64=base64.b64encode(payload).decode("ascii"),
            submitted_at=fields.pop("submitted_at", None) or utcnow(),
            **fields,
        )

    @classmethod
    def by_uri(cls, request_id: str, model: str, uri: str, **fields: Any) -> InferenceRequest:
        return cls(
            request_id=request_id,
            model=model,
            input_uri=uri,
            submitted_at=fields.pop("submitted_at", None) or utcnow(),
            **fields,
        )


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    #: True only when sending the same request again may succeed (the worker itself never answers
    #: with retryable errors: it nacks those, and Pub/Sub retries).
    retryable: bool = False


class Timings(BaseModel):
    """Milliseconds. queued: submit to pulled; batch_wait: pulled to batch start; inference: the
    model call for the whole batch; total: submit to result."""

    queued_ms: float | None = None
    batch_wait_ms: float | None = None
    inference_ms: float | None = None
    total_ms: float | None = None


class Cost(BaseModel):
    """What answering one request cost: its share of its batch's inference time (the batch's model
    call divided by the items in it) times the VM's price. A worker's idle time is not in any request's
    cost; the worker reports it separately (its `usage` log line)."""

    usd: float = Field(description="inference_share_ms x price_per_hour_usd / 3,600,000.")
    inference_share_ms: float = Field(description="The batch's inference time divided by its size.")
    price_per_hour_usd: float = Field(description="The VM's price the worker was given (0: none was).")
    price_basis: str = Field(description="Where the price came from, e.g. 'spot, assumed list price'.")


class StageTimings(BaseModel):
    """One earlier stage of a pipeline: its request and how long each part took there."""

    stage: str
    request_id: str
    timings: Timings = Field(default_factory=Timings)


class Lineage(BaseModel):
    """Where a pipeline answer comes from: the original request, the stage, the fan-out position."""

    root_request_id: str = Field(description="The request the client submitted to the pipeline's first stage.")
    stage: str = Field(description="The stage that produced this answer (or failed).")
    parent_request_id: str | None = Field(default=None, description="The request the previous stage answered.")
    index: int = Field(default=0, ge=0, description="This child's position in its parent's fan-out.")
    count: int = Field(default=1, ge=0, description="How many children the parent fanned out to (0: none).")
    upstream: list[StageTimings] = Field(default_factory=list, description="The earlier stages, first first.")
    item: dict[str, JsonScalar] = Field(
        default_factory=dict, description="The fan-out item's other fields (e.g. where a crop was cut)."
    )


class InferenceResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    #: None only when the request could not be read; then message_id and attributes identify it.
    request_id: str | None = Field(
        default=None, description="The request's id; absent only when the request could not be read."
    )
    message_id: str = Field(description="The Pub/Sub message id of the request this answers.")
    message_attributes: dict[str, str] = Field(
        default_factory=dict, description="The request's attributes, copied when its request_id is unreadable."
    )
    status: Literal["ok", "error"]
    output: dict[str, Any] | None = Field(default=None, description="The model's answer (status ok).")
    #: Set instead of `output` when the output is too large for a message (claim check).
    output_uri: str | None = Field(default=None, description="Where the output lies when it is too large to inline.")
    error: ErrorInfo | None = Field(default=None, description="Why the request failed (status error).")
    timings: Timings = Field(default_factory=Timings)
    delivery_attempt: int = 1
    worker_id: str = ""
    model: str | None = None
    model_version: str | None = None
    completed_at: dt.datetime = Field(default_factory=utcnow)
    #: True when this answers a request id the worker had already answered (no second inference).
    replayed: bool = Field(
        default=False, description="True when the worker answered this request id before (no second inference)."
    )
    dead_letter_replay: int = Field(
        default=0,
        ge=0,
        description="How many times the request was replayed from the dead-letter queue (0: it never was).",
    )
    client: str | None = Field(default=None, description="The sender's name (request attribute `client`).")
    lane: str | None = Field(default=None, description="The priority lane the request came through (attribute `lane`).")
    cost: Cost | None = Field(default=None, description="The request's share of its batch's inference cost.")
    lineage: Lineage | None = Field(default=None, description="Set on the answers of a pipeline's stages.")

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def carried_from_request(attributes: dict[str, str]) -> dict[str, Any]:
    """The result fields a worker copies from its request message's attributes."""
    try:
        replays = max(0, int(attributes.get(REPLAY_ATTRIBUTE, "0")))
    except ValueError:
        replays = 1  # marked as a replay, with a count someone mangled: still a replay
    return {
        "dead_letter_replay": replays,
        "client": attributes.get(CLIENT_ATTRIBUTE),
        "lane": attributes.get(LANE_ATTRIBUTE),
        "lineage": lineage_from(attributes),
    }


def lineage_from(attributes: dict[str, str]) -> Lineage | None:
    """The lineage a stage forwarder put on a child request, or None outside a pipeline. Never raises:
    a mangled attribute must not cost the request its answer."""
    root = attributes.get(ROOT_ATTRIBUTE)
    if not root:
        return None
    try:
        upstream = [StageTimings.model_validate(x) for x in json.loads(attributes.get(UPSTREAM_ATTRIBUTE, "[]"))]
    except (ValueError, TypeError):
        upstream = []
    try:
        raw_item = json.loads(attributes.get(ITEM_ATTRIBUTE, "{}"))
        item: dict[str, JsonScalar] = {
            str(k): v for k, v in raw_item.items() if isinstance(v, str | int | float | bool)
        }
    except (ValueError, TypeError, AttributeError):
        item = {}
    try:
        index, count = int(attributes.get(INDEX_ATTRIBUTE, "0")), int(attributes.get(COUNT_ATTRIBUTE, "1"))
        return Lineage(
            root_request_id=root,
            stage=attributes.get(STAGE_ATTRIBUTE, ""),
            parent_request_id=attributes.get(PARENT_ATTRIBUTE),
            index=index,
            count=count,
            upstream=upstream,
            item=item,
        )
    except ValueError:
        return Lineage(root_request_id=root, stage=attributes.get(STAGE_ATTRIBUTE, ""), upstream=upstream)
