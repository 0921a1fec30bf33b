"""Property-based: whatever a client throws at the callback endpoint, it never
gets a 500, and without the execution's secret no record ever changes."""

import calendar
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from st2bridge import workflow
from st2bridge.callbacks import webhook
from st2bridge.callbacks.app import make_app
from st2bridge.callbacks.handler import CallbackHandler
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store

WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"
NOW = float(calendar.timegm((2026, 11, 21, 12, 0, 0)))

json_values = s.recursive(
    s.none() | s.booleans() | s.integers() | s.floats(allow_nan=False) | s.text(max_size=20),
    lambda children: (
        s.lists(children, max_size=4) | s.dictionaries(s.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
event_like = s.fixed_dictionaries(
    {},
    optional={
        "event": s.sampled_from(sorted(webhook.WORKFLOW_EVENTS | webhook.TASK_EVENTS))
        | s.text(max_size=12)
        | json_values,
        "id": s.text(max_size=40) | json_values,
        "state": s.sampled_from(["RUNNING", "SUCCESS", "ERROR", "PAUSED", "CANCELLED"])
        | json_values,
        "updated_at": s.sampled_from(["2026-11-21 12:00:01", "2026-11-21 11:00:00", ""])
        | json_values,
        "root_execution_id": s.none() | s.text(max_size=40) | json_values,
        "workflow_execution_id": s.text(max_size=40) | json_values,
        "name": s.text(max_size=10) | json_values,
        "state_info": json_values,
    },
)
bodies = (
    event_like.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | s.binary(max_size=300)
)


class Endpoint:
    def __init__(self, tmp_path):
        self.store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
        self.engine = StubEngine(clock=lambda: NOW)
        runner = Runner(
            self.engine,
            self.store,
            mode="hybrid",
            callback_url="http://127.0.0.1:9",
            clock=lambda: NOW,
        )
        self.record = runner.start(workflow.parse(WF), "wf", {})
        notify = self.engine.executions[self.record["engine_execution_id"]]["params"]["notify"]
        self.secret = notify[0]["headers"][webhook.SECRET_HEADER]
        self.app = make_app(
            CallbackHandler(self.store, self.engine, clock=lambda: NOW), max_body=4096
        )

    def post(self, path, body, secret, method="POST"):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        if secret is not None:
            environ["HTTP_X_ST2BRIDGE_SECRET"] = secret
        seen = {}
        answer = b"".join(self.app(environ, lambda status, headers: seen.update(status=status)))
        json.loads(answer)  # always a JSON answer
        return int(seen["status"].split()[0])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=bodies,
    secret=s.none() | s.text(max_size=50),
    method=s.sampled_from(["POST", "PUT", "GET"]),
)
def test_no_secret_no_change_and_never_500(tmp_path_factory, body, secret, method):
    endpoint = Endpoint(tmp_path_factory.mktemp("cb"))
    before = endpoint.store.get_execution(endpoint.record["id"])
    status = endpoint.post("/v1/callbacks/mistral/" + endpoint.record["id"], body, secret, method)
    assert status < 500
    assert status in (401, 403, 405), status  # never accepted without the secret
    assert endpoint.store.get_execution(endpoint.record["id"]) == before
    endpoint.store.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_with_the_secret_any_body_is_answered_without_500(tmp_path_factory, body):
    endpoint = Endpoint(tmp_path_factory.mktemp("cb"))
    status = endpoint.post("/v1/callbacks/mistral/" + endpoint.record["id"], body, endpoint.secret)
    assert status in (200, 202, 400), status
    after = endpoint.store.get_execution(endpoint.record["id"])
    if status == 400:
        before = dict(endpoint.record)
        assert after["tasks"] == [] and after["status"] == before["status"]
    endpoint.store.close()
