"""HTTP health endpoint for MIG autohealing: unhealthy when the model did not load, the pull stream
died or the processing loop stalled, so the MIG replaces the VM instead of paying for a zombie."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthServer:
    def __init__(self, host: str, port: int, check: Callable[[], list[str]]) -> None:
        """`check` returns the list of problems; empty means healthy."""
        outer_check = check

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in ("/healthz", "/"):
                    self.send_error(404)
                    return
                problems = outer_check()
                body = json.dumps({"healthy": not problems, "problems": problems}).encode()
                self.send_response(503 if problems else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the worker's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
