"""An HTTP proxy in front of the real engine that forwards a request and then
drops its response (closes the connection unanswered): the case where a
client cannot know whether its submit arrived."""

import http.server
import threading

import requests


class DroppingProxy:
    def __init__(
        self, upstream, drop_method="POST", drop_path="/v2/executions", drops=1, before=None
    ):
        """`before(method, path)` is called as each request arrives, before
        it is forwarded (a test can break something just then)."""
        self.upstream = upstream.rstrip("/")
        self.seen = []
        self.remaining = drops
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append((self.command, self.path))
                if before:
                    before(self.command, self.path.split("?")[0])
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                answer = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=60
                )
                drop = (
                    self.command == drop_method
                    and self.path.split("?")[0] == drop_path
                    and proxy.remaining > 0
                )
                if drop:
                    proxy.remaining -= 1
                    self.close_connection = True  # the engine acted; the client never hears
                    return
                self.send_response(answer.status_code)
                for key in ("Content-Type",):
                    if key in answer.headers:
                        self.send_header(key, answer.headers[key])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, method, path):
        return sum(1 for m, p in self.seen if m == method and p.split("?")[0] == path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
