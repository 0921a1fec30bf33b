"""The API's WSGI application over a SQLite store and the engine simulator,
called in-process (no server): what the API unit tests drive. Every JSON
answer is checked against the OpenAPI document on the way."""

import io
import json
import time
import urllib.parse

from st2bridge.api import auth, routes
from st2bridge.api.starter import Starter
from st2bridge.api.stream import LogFollower
from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.runner import Runner
from st2bridge.store.sqlite import SqliteStore
from tests.support import openapi_check

WF = """version: '2.0'
{name}:
  input: [x]
  tasks:
    a:
      action: std.noop
"""


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self):
        return "Answer(%d, %r)" % (self.status, self.body)


class ApiHarness:
    def __init__(self, tmp_path, sim):
        self.sim = sim
        self.store = SqliteStore(str(tmp_path / "bridge.db"))
        self.engine = MistralClient(
            sim.url, retry=RetryPolicy(exp_msec=10, exp_max_msec=20, stop_max_msec=200)
        )
        self.runner = Runner(self.engine, self.store, mode="poll", definition_cache_seconds=60)
        self.starter = Starter(self.runner, definition_cache_seconds=60)
        self.feed = LogFollower(self.store).start()
        self.app = routes.build(self.store, self.engine, self.starter, self.feed, keepalive=0.2)
        self.key, _ = auth.create(self.store, "rw", False, time.time())
        self.ro_key, _ = auth.create(self.store, "ro", True, time.time())

    def close(self):
        self.feed.stop()
        self.engine.close()
        self.store.close()

    def environ(self, method, path, body=None, headers=None, key="rw", raw=None):
        path, _, query = path.partition("?")
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "wsgi.input": io.BytesIO(data),
            "CONTENT_LENGTH": str(len(data)) if data else "",
        }
        if key:
            environ["HTTP_X_API_KEY"] = {"rw": self.key, "ro": self.ro_key}.get(key, key)
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return environ

    def call(self, method, path, body=None, headers=None, key="rw", raw=None, check=True):
        seen = {}

        def start_response(status, headers):
            seen["status"] = int(status.split()[0])
            seen["headers"] = dict(headers)

        chunks = self.app(self.environ(method, path, body, headers, key, raw), start_response)
        if seen["headers"].get("Content-Type", "").startswith("text/event-stream"):
            if check:
                openapi_check.check(method, path, seen["status"], None, "text/event-stream")
            return Answer(seen["status"], seen["headers"], chunks)
        text = b"".join(chunks)
        answer = Answer(seen["status"], seen["headers"], json.loads(text) if text else None)
        if check:
            openapi_check.check(method, path, answer.status, answer.body)
        return answer

    def register(self, name):
        """A workflow registered in the simulator (for starts by name)."""
        self.engine.create_workflows(WF.format(name=name))
        return name
