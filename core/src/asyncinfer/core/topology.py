"""One description of a model's queue topology.

The cloud `Queue` component and the local stack both create exactly what this describes, so a worker
sees the same names and the same delivery semantics in both places.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")


@dataclass(frozen=True, kw_only=True)
class QueueTopology:
    """The topics and subscriptions of one model's queue, with their delivery settings."""

    name: str
    ack_deadline_s: int = 60
    max_delivery_attempts: int = 5
    min_retry_backoff_s: int = 10
    max_retry_backoff_s: int = 600
    message_retention_s: int = 7 * 24 * 3600
    #: Only Pub/Sub's flag on the workers' subscription: the worker does not change with it, so answers
    #: stay at least once and clients still de-duplicate by request id.
    exactly_once_delivery: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"queue name {self.name!r} must be 3-42 lowercase letters, digits or '-', "
                "starting with a letter (it prefixes topic and subscription names)."
            )
        if not 10 <= self.ack_deadline_s <= 600:
            raise ValueError(f"ack_deadline_s is {self.ack_deadline_s}; Pub/Sub allows 10 to 600 seconds.")
        if not 5 <= self.max_delivery_attempts <= 100:
            raise ValueError(
                f"max_delivery_attempts is {self.max_delivery_attempts}; Pub/Sub allows 5 to 100."
            )
        if not 0 <= self.min_retry_backoff_s <= self.max_retry_backoff_s <= 600:
            raise ValueError("retry backoff must satisfy 0 <= min <= max <= 600 seconds.")
        if not 600 <= self.message_retention_s <= 31 * 24 * 3600:
            raise ValueError("message_retention_s must be between 10 minutes and 31 days.")

    @property
    def requests_topic(self) -> str:
        return f"{self.name}-requests"

    @property
    def requests_subscription(self) -> str:
        return f"{self.name}-requests-workers"

    def lane_requests_topic(self, lane: str) -> str:
        """The requests topic of a lane other than the default one (which keeps requests_topic)."""
        return f"{self.name}-requests-{lane}"

    def lane_requests_subscription(self, lane: str) -> str:
        return f"{self.name}-requests-{lane}-workers"

    @property
    def results_topic(self) -> str:
        return f"{self.name}-results"

    @property
    def results_subscription(self) -> str:
        """An optional shared subscription for clients that do not make their own."""
        return f"{self.name}-results-clients"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.name}-dead-letter"

    @property
    def dead_letter_subscription(self) -> str:
        # Without a subscription a dead-letter topic drops what it receives.
        return f"{self.name}-dead-letter-hold"
