"""A real HTTP receiver on 127.0.0.1 for webhook tests and the fan-out benchmark."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every POST (path, headers, body, the client's port); answers 500 for the
    first ``fail_first`` requests. ``keep_alive``: HTTP/1.1, connections kept open;
    ``in_flight``/``most``: requests being answered now, the most at once."""

    def __init__(self, fail_first: int = 0, *, keep_alive: bool = False):
        self.fail_first = fail_first
        self.delay = 0.0
        self.pending = 0
        self.in_flight = self.most = 0
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.most = max(receiver.most, receiver.in_flight)
                if receiver.delay:
                    receiver.pending += 1
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.in_flight -= 1
                    receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body, "port": self.client_address[1]})
                    n = len(receiver.requests)
                code = 500 if n <= receiver.fail_first else 200
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()
                if code == 200:
                    receiver.arrived.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
