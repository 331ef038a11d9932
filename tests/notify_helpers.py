"""A real local HTTP server that receives Apprise's ``json://`` webhooks (tests and the bench)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    at: float  # time.time() when it arrived


@dataclass
class WebhookServer:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    status: int = 200  # what it answers; a test makes it fail with 500
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self.arrived.wait(timeout=max(0.0, deadline - time.monotonic()))
        return list(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_webhook_server() -> WebhookServer:
    holder: dict[str, WebhookServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            hook = holder["hook"]
            self.send_response(hook.status)
            self.end_headers()
            if hook.status != 200:
                return
            with hook.arrived:
                hook.received.append(Received(self.path, json.loads(raw or b"{}"), time.time()))
                hook.arrived.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["hook"] = hook = WebhookServer(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hook
