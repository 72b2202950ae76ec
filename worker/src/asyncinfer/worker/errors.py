"""Failure classes the runtime acts on.

The runtime decides between *ack with an error result* and *nack for redelivery* from the class of the
exception alone, so handlers never touch acking.
"""

from __future__ import annotations


class InvalidInputError(Exception):
    """The input can never succeed: answer with an error result and ack (never retried)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TransientError(Exception):
    """A failure that may pass (GPU out of memory, a storage hiccup): nack, Pub/Sub redelivers with
    backoff, and after N deliveries the message is dead-lettered."""
