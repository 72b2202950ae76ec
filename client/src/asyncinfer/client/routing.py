"""Results routed to their sender: a client's name, and the subscription filter that selects its results.

A named client sends its name as the `client` attribute of every request; the worker copies it onto
the result's attributes; the client's own subscription on the results topic carries the filter
`attributes.client = "<name>"`, so Pub/Sub delivers it only its own results. A subscription without
a filter (the stack's shared `<model>-results-clients`, or any audit subscription) still sees all.

The official emulator stores a subscription's filter but does not apply it (measured: a subscription
created with `attributes.client = "a"` received messages with client=b and with no client at all), so
the client also drops results whose `client` attribute is not its own. Against Pub/Sub the filter
does the work and the check never fires.
"""

from __future__ import annotations

import re

from asyncinfer.core.contract import CLIENT_ATTRIBUTE, CLIENT_NAME_PATTERN

_CLIENT_NAME = re.compile(CLIENT_NAME_PATTERN)


def check_client_name(name: str) -> str:
    if not _CLIENT_NAME.fullmatch(name):
        raise ValueError(
            f"client name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it travels as an attribute and inside a Pub/Sub filter)"
        )
    return name


def results_filter(name: str) -> str:
    """The Pub/Sub subscription filter that selects the results of client `name`."""
    return f'attributes.{CLIENT_ATTRIBUTE} = "{check_client_name(name)}"'


def is_for(attributes: dict[str, str] | object, name: str) -> bool:
    """Whether a result message (by its attributes) belongs to client `name`."""
    get = getattr(attributes, "get", None)
    return get is not None and get(CLIENT_ATTRIBUTE) == name
