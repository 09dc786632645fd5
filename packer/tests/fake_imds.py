"""A local stand-in for the EC2 instance metadata service, IMDSv2 only
(LocalStack and moto serve no IMDS to a process outside an instance)."""

from __future__ import annotations

import secrets
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Union

# A path's value: fixed text, or a function asked on every GET (None: 404),
# for facts that change while a script runs (the public IP after an
# Elastic IP association).
Value = Union[str, Callable[[], Union[str, None]]]


class FakeImds(BaseHTTPRequestHandler):
    """IMDSv2's protocol: PUT /latest/api/token, then GETs with the token."""

    token = secrets.token_hex(16)
    data: dict[str, Value] = {}

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_PUT(self) -> None:
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._send(200, self.token)
        else:
            self._send(400, "bad token request")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._send(401, "")  # IMDSv1-style request: refused, like http_tokens=required
            return
        value = self.data.get(self.path.removeprefix("/latest/"))
        if callable(value):
            value = value()
        if value is None:
            self._send(404, "")
        else:
            self._send(200, value)

    def _send(self, code: int, body: str) -> None:
        raw = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextmanager
def imds_server() -> Iterator[tuple[str, dict[str, Value]]]:
    """(URL, data): a fake IMDS on a free loopback port serving `data`,
    which the caller fills in (paths relative to /latest/)."""
    data: dict[str, Value] = {}
    handler = type("Handler", (FakeImds,), {"data": data})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", data
    finally:
        server.shutdown()
        server.server_close()
