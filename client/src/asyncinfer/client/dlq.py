"""Dead letters: list them, show one, replay them onto the requests topic.

What a queue gave up on (after `max_delivery_attempts` failed deliveries) waits on its dead-letter
hold subscription. A replay publishes the same body (so the same request id: the idempotency key)
with the original attributes, marked as a replay, and acknowledges the dead-letter copy only after
Pub/Sub accepted the republished message. A replay that fails halfway therefore loses nothing: what
was not republished stays on the hold subscription, and running the replay again republishes it.
The one duplicate possible (republished, then the dead-letter ack fails) carries the same request id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from google.cloud import pubsub_v1

from asyncinfer.client.pubsub import publisher_client, subscriber_client
from asyncinfer.core.contract import REPLAY_ATTRIBUTE, REPLAY_SOURCE_ATTRIBUTE

#: Pub/Sub adds these to a dead-lettered message (the emulator does too).
SOURCE_PREFIX = "CloudPubSubDeadLetterSource"
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
SOURCE_PROJECT = "CloudPubSubDeadLetterSourceSubscriptionProject"
SOURCE_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
SOURCE_PUBLISH_TIME = "CloudPubSubDeadLetterSourceTopicPublishTime"
#: How long the dead letters a command reads stay leased to it (Pub/Sub's longest ack deadline), so
#: none is handed out twice while a list or replay runs.
LEASE_S = 600
#: Pub/Sub answers an empty pull now and then even when messages wait; this many in a row end a read.
EMPTY_PULLS_TO_STOP = 2
#: A pull's deadline: Pub/Sub (and the emulator) may hold an empty pull until it.
PULL_TIMEOUT_S = 4.0
MAX_PER_PULL = 1000


@dataclass(frozen=True)
class DeadLetter:
    """One message on the dead-letter hold subscription, leased to the reader until released."""

    message_id: str
    ack_id: str
    data: bytes
    attributes: dict[str, str]
    published_at: dt.datetime | None

    @property
    def request_id(self) -> str | None:
        """The body's request id, or None when the body is not a JSON object with one."""
        try:
            raw = pydantic_core.from_json(self.data)
        except ValueError:
            return None
        value = raw.get("request_id") if isinstance(raw, dict) else None
        return value if isinstance(value, str) else None

    @property
    def source_subscription(self) -> str | None:
        return self.attributes.get(SOURCE_SUBSCRIPTION)

    @property
    def source_delivery_count(self) -> int | None:
        return _int_or_none(self.attributes.get(SOURCE_DELIVERY_COUNT))

    @property
    def replay_count(self) -> int:
        """How many times this request was replayed before it came back here."""
        return _int_or_none(self.attributes.get(REPLAY_ATTRIBUTE)) or 0

    @property
    def client_attributes(self) -> dict[str, str]:
        """The attributes its sender set (the dead-letter source attributes removed)."""
        return {k: v for k, v in self.attributes.items() if not k.startswith(SOURCE_PREFIX)}

    def matches(self, wanted: str) -> bool:
        return wanted in (self.message_id, self.request_id)

    def replay_attributes(self) -> dict[str, str]:
        return {
            **self.client_attributes,
            REPLAY_ATTRIBUTE: str(self.replay_count + 1),
            REPLAY_SOURCE_ATTRIBUTE: self.message_id,
        }

    def summary(self) -> dict[str, Any]:
        """What `dlq list` prints per message."""
        return {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "source_subscription": self.source_subscription,
            "source_project": self.attributes.get(SOURCE_PROJECT),
            "delivery_attempts": self.source_delivery_count,
            "first_published_at": self.attributes.get(SOURCE_PUBLISH_TIME),
            "dead_lettered_at": self.published_at.isoformat() if self.published_at else None,
            "replayed_before": self.replay_count,
            "attributes": self.client_attributes,
            "bytes": len(self.data),
        }

    def detail(self) -> dict[str, Any]:
        """What `dlq show` prints: the summary and the body (as JSON when it is JSON)."""
        try:
            body: Any = pydantic_core.from_json(self.data)
        except ValueError:
            body = self.data.decode("utf-8", errors="replace")
        return {**self.summary(), "all_attributes": dict(self.attributes), "body": body}


@dataclass
class ReplayReport:
    """What a replay did; every selected dead letter is in exactly one of the three lists."""

    dry_run: bool
    #: dead-letter message id -> the republished message's id (dry run: the topic it would go to).
    replayed: dict[str, str] = field(default_factory=dict)
    #: dead-letter message id -> why it was not republished; it stays on the hold subscription.
    failed: dict[str, str] = field(default_factory=dict)
    #: Republished, but acknowledging the dead-letter copy failed: a later replay would send it once
    #: more, under the same request id.
    not_acked: dict[str, str] = field(default_factory=dict)
    #: Ids asked for that matched no dead letter.
    not_found: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.not_acked or self.not_found)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "replayed": self.replayed,
            "failed": self.failed,
            "not_acked": self.not_acked,
            "not_found": self.not_found,
        }


class DeadLetterQueue:
    """The dead-letter hold subscription of one queue (`<model>-dead-letter-hold`)."""

    def __init__(
        self,
        project: str,
        subscription: str,
        *,
        subscriber: pubsub_v1.SubscriberClient | None = None,
        publisher: pubsub_v1.PublisherClient | None = None,
    ) -> None:
        self.project = project
        self._subscriber = subscriber or subscriber_client()
        self._publisher = publisher
        self.path = subscription if subscription.startswith("projects/") else (
            f"projects/{project}/subscriptions/{subscription}"
        )
        self._source_topics: dict[tuple[str, str], str] = {}

    # --- reading -----------------------------------------------------------------------------------

    def fetch(self, limit: int = 10_000) -> list[DeadLetter]:
        """Up to `limit` dead letters, each leased to this reader for LEASE_S until released, acked
        or replayed. Oldest first, as far as Pub/Sub's pull order goes."""
        letters: dict[str, DeadLetter] = {}
        empty = 0
        while len(letters) < limit and empty < EMPTY_PULLS_TO_STOP:
            try:
                response = self._subscriber.pull(
                    request={"subscription": self.path, "max_messages": min(MAX_PER_PULL, limit - len(letters))},
                    timeout=PULL_TIMEOUT_S,
                    retry=None,
                )
                received = list(response.received_messages)
            except Exception as exc:  # an empty long poll ends in DeadlineExceeded on some servers
                if type(exc).__name__ != "DeadlineExceeded":
                    raise
                received = []
            if not received:
                empty += 1
                continue
            empty = 0
            self._modify([r.ack_id for r in received], LEASE_S)
            for item in received:
                message = item.message
                published = message.publish_time
                letters.setdefault(
                    message.message_id,
                    DeadLetter(
                        message_id=message.message_id,
                        ack_id=item.ack_id,
                        data=bytes(message.data),
                        attributes=dict(message.attributes),
                        published_at=published if isinstance(published, dt.datetime) else None,
                    ),
                )
        return sorted(letters.values(), key=lambda d: (d.published_at or dt.datetime.min.replace(tzinfo=dt.UTC)))

    def release(self, letters: Iterable[DeadLetter]) -> None:
        """Hand leased dead letters back to the hold subscription at once (deadline 0)."""
        self._modify([d.ack_id for d in letters], 0)

    def peek(self, limit: int = 10_000) -> list[DeadLetter]:
        """The dead letters, left where they are."""
        letters = self.fetch(limit)
        self.release(letters)
        return letters

    # --- replaying ---------------------------------------------------------------------------------

    def replay(
        self,
        select: Iterable[str] | None,
        *,
        dry_run: bool = False,
        topic: str | None = None,
        limit: int = 10_000,
        on_published: Callable[[DeadLetter], None] | None = None,
    ) -> ReplayReport:
        """Republish the dead letters whose message id or request id is in `select` (None: all) to
        `topic` (default: the topic of the subscription each one was dead-lettered from).

        Each dead-letter copy is acknowledged only after its republish succeeded; one that fails is
        handed back to the hold subscription. `on_published` runs after each successful republish,
        before its ack (a test's hook for a failure halfway).
        """
        report = ReplayReport(dry_run=dry_run)
        letters = self.fetch(limit)
        wanted = None if select is None else list(dict.fromkeys(select))
        chosen = letters if wanted is None else [d for d in letters if any(d.matches(w) for w in wanted)]
        if wanted is not None:
            report.not_found = [w for w in wanted if not any(d.matches(w) for d in chosen)]
        try:
            for letter in chosen:
                try:
                    target = topic_path(self.project, topic) if topic else self._source_topic(letter)
                except LookupError as exc:
                    report.failed[letter.message_id] = str(exc)
                    continue
                if dry_run:
                    report.replayed[letter.message_id] = target
                    continue
                # One at a time, each acked before the next is sent: a replay killed halfway leaves at
                # most one message both republished and still dead-lettered (same request id).
                future: Future[str] = self._publisher_client().publish(
                    target, letter.data, **letter.replay_attributes()
                )
                self._settle(letter, future, report, on_published)
        finally:
            # Whatever was not acked goes straight back: the unchosen, the failed, a dry run's.
            self.release([d for d in letters if dry_run or d.message_id not in report.replayed])
        return report

    def _settle(
        self,
        letter: DeadLetter,
        future: Future[str],
        report: ReplayReport,
        on_published: Callable[[DeadLetter], None] | None,
    ) -> None:
        try:
            new_id = future.result(timeout=60)
        except Exception as exc:
            report.failed[letter.message_id] = f"republishing failed: {exc!r}"
            return
        if on_published is not None:
            on_published(letter)
        try:
            self._subscriber.acknowledge(subscription=self.path, ack_ids=[letter.ack_id])
        except Exception as exc:
            report.not_acked[letter.message_id] = f"republished as {new_id}, but acking the dead letter failed: {exc!r}"
            return
        report.replayed[letter.message_id] = new_id

    def _source_topic(self, letter: DeadLetter) -> str:
        """The requests topic: the topic of the subscription the message was dead-lettered from."""
        source = letter.source_subscription
        if not source:
            raise LookupError(
                f"dead letter {letter.message_id} names no source subscription ({SOURCE_SUBSCRIPTION}); "
                "give the requests topic with --topic"
            )
        project = letter.attributes.get(SOURCE_PROJECT) or self.project
        key = (project, source)
        if key not in self._source_topics:
            try:
                subscription = self._subscriber.get_subscription(
                    subscription=f"projects/{project}/subscriptions/{source}"
                )
            except Exception as exc:
                raise LookupError(
                    f"cannot read source subscription {source} ({exc!r}); give the requests topic with --topic"
                ) from exc
            self._source_topics[key] = subscription.topic
        return self._source_topics[key]

    def _publisher_client(self) -> pubsub_v1.PublisherClient:
        if self._publisher is None:
            self._publisher = publisher_client()
        return self._publisher

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), MAX_PER_PULL):
            self._subscriber.modify_ack_deadline(
                subscription=self.path, ack_ids=ack_ids[start : start + MAX_PER_PULL], ack_deadline_seconds=seconds
            )

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
        self._subscriber.close()

    def __enter__(self) -> DeadLetterQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def topic_path(project: str, topic: str) -> str:
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

