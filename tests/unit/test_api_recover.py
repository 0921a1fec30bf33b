"""POST /v1/executions/{id}/recover: the CLI's `execution recover` through
the API, against the engine stand-in of tests/unit/test_recover.py (a lost
action: failed, then its task re-run). Answers checked against the OpenAPI
document."""

import io
import json
import time

from st2bridge.api import auth, routes
from st2bridge.tracker import stuck
from tests.support import openapi_check
from tests.unit.test_recover import env, lost_action  # noqa: F401 -- env is a fixture


def call(app, path, key, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(data),
        "CONTENT_LENGTH": str(len(data)) if data else "",
        "HTTP_X_API_KEY": key,
    }
    seen = {}
    chunks = app(environ, lambda status, headers: seen.update(status=int(status.split()[0])))
    answer = json.loads(b"".join(chunks))
    openapi_check.check("POST", path, seen["status"], answer)
    return seen["status"], answer


def test_recover_a_lost_action_through_the_api(env):  # noqa: F811
    store, engine, t, record, eid = env
    lost_action(engine, eid)
    key, _ = auth.create(store, "ops", False, time.time())
    app = routes.build(store, engine, None, None, clock=t)
    path = "/v1/executions/%s/recover" % record["id"]
    status, plan = call(app, path, key, {"dry_run": True})
    assert status == 200 and plan["signature"] == stuck.LOST_ACTION and plan["done"] == []
    assert not any(c[0] == "complete_action_execution" for c in engine.calls)  # dry run
    status, done = call(app, path, key, {"settle": 5})
    assert status == 200 and done["dry_run"] is False, done
    assert ("complete_action_execution", "act1", "ERROR") in engine.calls
    assert ("rerun_task", "%s-t1" % eid, True) in engine.calls
    assert "is running again" in done["done"][-1]
    assert store.get_execution(record["id"])["stuck"] is None
