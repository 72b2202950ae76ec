"""Read a worker's health endpoint (or the boot script's stand-in responder) from a test."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


def probe_health(port: int, timeout_s: float = 30) -> tuple[int, dict[str, Any]]:
    """The first answer of http://127.0.0.1:PORT/healthz once something listens: (status, body)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
