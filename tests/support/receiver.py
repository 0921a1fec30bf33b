"""A webhook receiver for tests and benchmarks: records each request (time
of arrival, headers, body) and answers with the status it is told to."""

import http.server
import json
import threading
import time


class Receiver:
    def __init__(self, port=0, status=200):
        self.status = status
        self.requests = []  # (arrived, headers, body bytes)
        self.arrived = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    receiver.requests.append((time.time(), dict(self.headers), body))
                    receiver.arrived.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self):
        return [json.loads(body) for _, _, body in self.requests]

    def wait_for(self, count, timeout=10.0):
        """Wait until `count` requests arrived; the requests."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "%d webhook requests of %d arrived" % (len(self.requests), count)
                    )
                self.arrived.wait(left)
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
