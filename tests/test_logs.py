"""Worker logs as Cloud Logging reads them: every line a JSON object whose `severity` is a LogSeverity
name (the Ops Agent moves it onto the LogEntry), with `message`, `time` and the request id of what it
is about. Checked on a real worker process's output against the Pub/Sub emulator."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.contract import InferenceRequest
from tests.conftest import WorkerFactory

#: LogEntry.severity's names (Cloud Logging API reference, LogSeverity).
LOG_SEVERITIES = {"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}


def test_every_level_maps_to_a_cloud_logging_severity() -> None:
    program = (
        "import structlog\n"
        "from asyncinfer.core.logs import configure_logging\n"
        "configure_logging('DEBUG', json_logs=True)\n"
        "log = structlog.get_logger('t')\n"
        "log.debug('d'); log.info('i'); log.warning('w'); log.warn('w2'); log.error('e'); log.critical('c')\n"
        "log.fatal('f')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('x', request_id='r-1')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["severity"] for line in lines] == [
        "DEBUG", "INFO", "WARNING", "WARNING", "ERROR", "CRITICAL", "CRITICAL", "ERROR"
    ]
    assert all(line["severity"] in LOG_SEVERITIES and "time" in line and "message" in line for line in lines)
    assert lines[-1]["request_id"] == "r-1" and "ZeroDivisionError" in lines[-1]["exception"]


def test_library_logging_and_warnings_are_json_lines_too() -> None:
    program = (
        "import logging, warnings\n"
        "from asyncinfer.core.logs import configure_logging\n"
        "configure_logging('INFO', json_logs=True)\n"
        "logging.getLogger('google.api_core.retry').warning('retrying %s', 'pull')\n"
        "logging.getLogger('urllib3').error('connection reset')\n"
        "warnings.warn('deprecated thing', DeprecationWarning, stacklevel=1)\n"
        "warnings.warn('a user warning')\n"
    )
    done = subprocess.run([sys.executable, "-W", "always", "-c", program], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["severity"], line["logger"]) for line in lines[:2]] == [
        ("WARNING", "google.api_core.retry"),
        ("ERROR", "urllib3"),
    ]
    assert lines[0]["message"] == "retrying pull"
    assert [line["logger"] for line in lines[2:]] == ["py.warnings", "py.warnings"]
    assert all(line["severity"] == "WARNING" and "time" in line for line in lines[2:])


def test_a_real_workers_stderr_is_all_json_with_severities_and_request_ids(
    start_worker: WorkerFactory, client: AsyncInferClient
) -> None:
    worker = start_worker()
    good = InferenceRequest.inline("log-ok-1", "faulty", b"ok")
    bad = InferenceRequest.inline("log-bad-1", "faulty", b"not a command")
    for request in (good, bad):
        client.submit(request).result(timeout=30)
    answers = client.wait([good.request_id, bad.request_id], timeout_s=90)
    assert len(answers) == 2
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    text = worker.log_path.read_text()  # type: ignore[attr-defined]
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # a line that is not JSON would reach Cloud Logging as DEFAULT text
        assert isinstance(record, dict) and record["severity"] in LOG_SEVERITIES, line
        records.append(record)
    rejected = [r for r in records if r.get("request_id") == bad.request_id]
    assert rejected and rejected[0]["severity"] == "WARNING"
    batches = [r for r in records if r["message"] == "batch done"]
    assert any(good.request_id in r.get("request_ids", []) for r in batches)
    assert all("batch_id" in r for r in batches)
