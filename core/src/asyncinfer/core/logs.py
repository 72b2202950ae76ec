"""structlog set-up: JSON in Cloud Logging's shape on a non-TTY, a pretty console on a TTY."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SEVERITY = {"warn": "WARNING", "exception": "ERROR", "msg": "INFO"}


def _cloud_logging_fields(_: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Cloud Logging reads `severity` and `message` from a JSON line on stdout.
    event_dict["severity"] = _SEVERITY.get(method_name, method_name.upper())
    event_dict["message"] = event_dict.pop("event", "")
    return event_dict


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    use_json = (not sys.stderr.isatty()) if json_logs is None else json_logs
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    if use_json:
        processors = [
            *shared,
            _cloud_logging_fields,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors = [*shared, structlog.processors.add_log_level, structlog.dev.ConsoleRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
