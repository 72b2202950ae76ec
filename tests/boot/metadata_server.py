"""A fake GCE metadata server on 127.0.0.1: what the boot scripts read and the guest attributes they write."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/computeMetadata/v1/"


@dataclass
class MetadataState:
    preempted: bool = False
    guest_attributes: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    missing_flavor: int = 0

    def last(self, key: str) -> str | None:
        values = self.guest_attributes.get(key)
        return values[-1] if values else None


class FakeMetadataServer:
    def __init__(self) -> None:
        state = self.state = MetadataState()

        class Handler(BaseHTTPRequestHandler):
            def _check(self) -> bool:
                state.requests.append((self.command, self.path))
                # The real server refuses requests without this header.
                if self.headers.get("Metadata-Flavor") != "Google":
                    state.missing_flavor += 1
                    self._reply(403, "Missing Metadata-Flavor:Google header.")
                    return False
                return True

            def _reply(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if not self._check():
                    return
                if self.path == PREFIX + "instance/preempted":
                    self._reply(200, "TRUE" if state.preempted else "FALSE")
                else:
                    self._reply(404, "not found")

            def do_PUT(self) -> None:
                if not self._check():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                key = self.path.removeprefix(PREFIX + "instance/guest-attributes/")
                state.guest_attributes.setdefault(key, []).append(body)
                self._reply(200, "")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeMetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
