"""A stand-in Mistral API over real HTTP, for the engine client's tests: it
records each request and answers what a test queued (tests/unit/test_engine_client.py,
tests/unit/test_engine_transport.py)."""

import contextlib
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from st2bridge.engine import MistralClient, RetryPolicy


class Stub:
    """Canned responses, consumed in order; `default` once the queue is empty."""

    def __init__(self):
        self.queue = []
        self.requests = []
        self.default = {"status": 200, "body": {}}
        self.lock = threading.Lock()

    def add(self, status=200, body=None, *, raw=None, drop=False, delay=0.0, cut=None, headers=()):
        """`drop`: True hangs up after reading the request, "reset" resets
        the connection; `cut`: send less body than promised, then hang up;
        `headers`: extra (name, value)s."""
        self.queue.append(
            {
                "status": status,
                "body": body,
                "raw": raw,
                "drop": drop,
                "delay": delay,
                "cut": cut,
                "headers": headers,
            }
        )

    def next_action(self, record):
        with self.lock:
            self.requests.append(record)
            return self.queue.pop(0) if self.queue else self.default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server
    disable_nagle_algorithm = True  # no delayed-ACK stalls between writes

    def log_message(self, *args):  # keep test output quiet
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        parts = urlsplit(self.path)
        record = {
            "method": self.command,
            "target": self.path,  # a proxy is sent the whole URL
            "path": parts.path,
            "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
            "headers": dict(self.headers),
            "body": body,
            "client_port": self.client_address[1],
        }
        action = self.server.stub.next_action(record)
        if action.get("drop"):
            # Read the request, then hang up without a word.
            if action["drop"] == "reset":  # RST instead of FIN
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.rfile.close()  # or the socket outlives close(): a FIN follows
                self.connection.close()
            self.close_connection = True
            return
        if action.get("delay"):
            time.sleep(action["delay"])
        if action.get("raw") is not None:
            payload, ctype = action["raw"].encode("utf-8"), "text/html"
        else:
            payload = json.dumps(action.get("body") or {}).encode("utf-8")
            ctype = "application/json"
        cut = action.get("cut")
        self.send_response(action.get("status", 200))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload) + (10 if cut else 0)))
        for name, value in action.get("headers") or ():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        if cut:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@contextlib.contextmanager
def serving(tls=None):
    """A Stub on an ephemeral port; `tls`: an ssl.SSLContext to serve https."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.stub = Stub()
    server.stub.url = "%s://127.0.0.1:%d/v2" % (
        "https" if tls else "http",
        server.server_address[1],
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield server.stub
    finally:
        server.shutdown()
        server.server_close()


def make_client(url, fake_time, stop_max_msec=10000, **kw):
    # 1 s, 2 s, 4 s with rng=1.0: at most 4 attempts in a 10 s budget.
    policy = RetryPolicy(
        exp_msec=1000,
        exp_max_msec=4000,
        stop_max_msec=stop_max_msec,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        rng=lambda: 1.0,
    )
    return MistralClient(url, retry=policy, **kw)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once closed
