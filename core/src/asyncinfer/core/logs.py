"""structlog set-up: JSON in Cloud Logging's shape on a non-TTY, a pretty console on a TTY.

On a VM each JSON line goes from the container's stderr to Docker's json-file log, where the Ops Agent
parses it and moves `severity` onto the LogEntry (docs/WORKER.md, "Logs"). A line that is not JSON
would arrive as text with DEFAULT severity, so the standard library's logging (Google's client
libraries log through it) and Python warnings are rendered as the same JSON lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: structlog method / stdlib level name -> Cloud Logging LogSeverity.
_SEVERITY = {"warn": "WARNING", "exception": "ERROR", "msg": "INFO", "fatal": "CRITICAL", "notset": "DEFAULT"}


def _cloud_logging_fields(_: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Cloud Logging reads `severity` and `message` from a JSON line.
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
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    if use_json:
        _route_stdlib_logging(shared, numeric_level)


def _route_stdlib_logging(shared: list[Any], level: int) -> None:
    """Standard-library records and warnings as the same JSON lines, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _cloud_logging_fields,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(level, logging.INFO))
    logging.captureWarnings(True)
