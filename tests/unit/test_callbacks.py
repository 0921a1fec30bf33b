"""Callback endpoint: every bad request is refused and changes nothing;
duplicates, late and reordered events never move a record backwards."""

import calendar
import io
import json

import pytest

from st2bridge import status as st
from st2bridge import workflow
from st2bridge.callbacks import secrets
from st2bridge.callbacks.app import make_app
from st2bridge.callbacks.handler import CallbackHandler
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store

WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"


class Env:
    def __init__(self, tmp_path, task_events=True):
        self.now = float(calendar.timegm((2026, 11, 21, 12, 0, 0)))  # events below are later
        self.store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
        self.engine = StubEngine(clock=lambda: self.now)
        self.runner = Runner(
            self.engine,
            self.store,
            mode="hybrid",
            callback_url="http://127.0.0.1:9101",
            stale_after=30,
            task_events=task_events,
            clock=lambda: self.now,
        )
        self.handler = CallbackHandler(
            self.store,
            self.engine,
            mode="hybrid",
            stale_after=30,
            clock=lambda: self.now,
            task_events=task_events,
        )
        self.app = make_app(self.handler, max_body=4096)

    def start(self):
        record = self.runner.start(workflow.parse(WF), "wf", {})
        (notify,) = self.engine.executions[record["engine_execution_id"]]["params"]["notify"]
        return record, notify

    def post(self, execution_id, body, secret=None, method="POST", path=None, length=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path or "/v1/callbacks/mistral/%s" % execution_id,
            "CONTENT_LENGTH": str(len(raw) if length is None else length),
            "wsgi.input": io.BytesIO(raw),
        }
        if secret is not None:
            environ["HTTP_X_ST2BRIDGE_SECRET"] = secret
        seen = {}
        out = b"".join(self.app(environ, lambda status, headers: seen.update(status=status)))
        return int(seen["status"].split()[0]), json.loads(out)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.store.close()


def wf_event(record, state, event, updated_at="2026-11-21 12:00:01", **extra):
    return dict(
        {
            "event": event,
            "id": record["engine_execution_id"],
            "state": state,
            "root_execution_id": None,
            "updated_at": updated_at,
            "name": "wf",
        },
        **extra,
    )


def task_event(record, name, state, event, updated_at="2026-11-21 12:00:01", wf_id=None):
    return {
        "event": event,
        "id": "task-" + name,
        "name": name,
        "state": state,
        "workflow_execution_id": wf_id or record["engine_execution_id"],
        "updated_at": updated_at,
        "created_at": "2026-11-21 12:00:00",
        "type": "ACTION",
    }


def test_runner_registers_a_webhook_with_a_secret_it_does_not_store(env):
    record, notify = env.start()
    assert notify["url"] == "http://127.0.0.1:9101/v1/callbacks/mistral/%s" % record["id"]
    secret = notify["headers"][secrets.HEADER]
    stored = env.store.get_execution(record["id"])
    assert stored["callback_secret_hash"] == secrets.hash_secret(secret)
    assert secret not in json.dumps(stored)
    assert stored["next_poll_at"] == env.now + 30  # hybrid: polled only once silent


def test_terminal_callback_finishes_with_output_from_the_engine(env):
    record, notify = env.start()
    secret = notify["headers"][secrets.HEADER]
    env.engine.add_task(record["engine_execution_id"], "t1", "SUCCESS")
    env.engine.set_state(record["engine_execution_id"], "SUCCESS", output={"x": 1})
    env.engine.calls.clear()
    status, answer = env.post(
        record["id"], wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"), secret
    )
    assert (status, answer) == (200, {"result": "finishing"})
    final = env.store.get_execution(record["id"])
    assert final["status"] == st.SUCCEEDED and final["output"] == {"x": 1}
    assert final["finished_by"] == "callback"
    # Two engine requests to finish: the execution and its tasks.
    assert [c[0] for c in env.engine.calls] == ["get_execution", "list_tasks"]
    # A duplicate, and a late RUNNING, change nothing.
    assert (
        env.post(record["id"], wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"), secret)[0] == 200
    )
    status, answer = env.post(
        record["id"], wf_event(record, "RUNNING", "WORKFLOW_LAUNCHED"), secret
    )
    assert status == 200 and answer["result"].startswith("final")
    assert env.store.get_execution(record["id"]) == final


def test_without_task_events_the_webhook_asks_for_workflow_events_and_the_end_reads_tasks(tmp_path):
    env = Env(tmp_path, task_events=False)
    try:
        record, notify = env.start()
        assert notify["event_types"] == sorted(
            e for e in notify["event_types"] if e.startswith("WORKFLOW_")
        )
        assert "WORKFLOW_SUCCEEDED" in notify["event_types"]
        env.engine.add_task(record["engine_execution_id"], "t1", "SUCCESS")
        env.engine.set_state(record["engine_execution_id"], "SUCCESS", output={"x": 1})
        env.engine.calls.clear()
        env.post(
            record["id"],
            wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"),
            notify["headers"][secrets.HEADER],
        )
        final = env.store.get_execution(record["id"])
        assert final["status"] == st.SUCCEEDED and final["output"] == {"x": 1}
        assert [t["name"] for t in final["tasks"]] == ["t1"]  # written with the end
        assert sorted(c[0] for c in env.engine.calls) == ["get_execution", "list_tasks"]
    finally:
        env.store.close()


@pytest.mark.parametrize("secret, expected", [(None, 401), ("", 401), ("forged", 403)])
def test_missing_or_wrong_secret_changes_nothing(env, secret, expected):
    record, notify = env.start()
    before = env.store.get_execution(record["id"])
    status, answer = env.post(
        record["id"], wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"), secret
    )
    assert status == expected and "error" in answer
    assert env.store.get_execution(record["id"]) == before


def test_secret_of_another_execution_is_refused(env):
    a, notify_a = env.start()
    b, _ = env.start()
    before = env.store.get_execution(b["id"])
    status, _ = env.post(
        b["id"], wf_event(b, "SUCCESS", "WORKFLOW_SUCCEEDED"), notify_a["headers"][secrets.HEADER]
    )
    assert status == 403
    # And a's secret with b's event at a's URL: not a's execution tree.
    status, answer = env.post(
        a["id"], wf_event(b, "SUCCESS", "WORKFLOW_SUCCEEDED"), notify_a["headers"][secrets.HEADER]
    )
    assert status == 400 and "not part of this execution" in answer["error"]
    assert env.store.get_execution(b["id"]) == before
    assert env.store.get_execution(a["id"])["status"] == st.RUNNING


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        ({"event": "WORKFLOW_EXPLODED", "id": "x", "state": "RUNNING"}, "unknown event"),
        ({"id": "x", "state": "RUNNING"}, "'event' is missing"),
        ({"event": "WORKFLOW_LAUNCHED", "state": "RUNNING"}, "'id' is missing"),
        ({"event": "TASK_LAUNCHED", "id": "t", "state": "RUNNING"}, "'workflow_execution_id'"),
        (
            {"event": "WORKFLOW_LAUNCHED", "id": "x", "state": 3},
            "'state' is missing or not a string",
        ),
    ],
)
def test_malformed_bodies_are_400(env, body, message):
    record, notify = env.start()
    before = env.store.get_execution(record["id"])
    status, answer = env.post(record["id"], body, notify["headers"][secrets.HEADER])
    assert status == 400 and message in answer["error"]
    assert env.store.get_execution(record["id"]) == before


def test_http_level_refusals(env):
    record, notify = env.start()
    secret = notify["headers"][secrets.HEADER]
    assert env.post("no-such-id", {}, secret)[0] == 404
    assert env.post(record["id"], {}, secret, method="GET")[0] == 405
    assert env.post(record["id"], {}, secret, method="PUT")[0] == 405
    assert env.post(record["id"], b"x" * 5000, secret)[0] == 413
    assert env.post(record["id"], {}, secret, path="/v1/other")[0] == 404
    assert env.post(record["id"], {}, secret, path="/v1/callbacks/mistral/../x")[0] == 404
    assert env.post(record["id"], {}, secret, length="")[0] == 411
    assert env.post(None, {}, None, method="GET", path="/v1/health")[0] == 200


def test_task_events_show_progress_and_never_go_backwards(env):
    record, notify = env.start()
    secret = notify["headers"][secrets.HEADER]
    post = lambda body: env.post(record["id"], body, secret)
    # SUCCESS arrives before LAUNCHED (concurrent POSTs): LAUNCHED must not undo it.
    assert (
        post(task_event(record, "t1", "SUCCESS", "TASK_SUCCEEDED", "2026-11-21 12:00:02"))[0] == 200
    )
    status, answer = post(
        task_event(record, "t1", "RUNNING", "TASK_LAUNCHED", "2026-11-21 12:00:01")
    )
    assert status == 200 and answer["result"].startswith("ignored")
    assert (
        post(task_event(record, "t2", "RUNNING", "TASK_LAUNCHED"))[1]["result"] == "task t2 RUNNING"
    )
    assert post(task_event(record, "t2", "RUNNING", "TASK_LAUNCHED"))[1]["result"] == "duplicate"
    tasks = {t["name"]: t["status"] for t in env.store.get_execution(record["id"])["tasks"]}
    assert tasks == {"t1": st.SUCCEEDED, "t2": st.RUNNING}
    stored = env.store.get_execution(record["id"])
    assert stored["last_event_at"] == env.now and stored["next_poll_at"] == env.now + 30


def test_workflow_state_never_moves_backwards(env):
    record, notify = env.start()
    secret = notify["headers"][secrets.HEADER]
    post = lambda body: env.post(record["id"], body, secret)
    assert post(wf_event(record, "PAUSED", "WORKFLOW_PAUSED", "2026-11-21 12:00:05"))[0] == 200
    assert env.store.get_execution(record["id"])["status"] == st.PAUSED
    status, answer = post(wf_event(record, "RUNNING", "WORKFLOW_LAUNCHED", "2026-11-21 12:00:01"))
    assert answer["result"].startswith("ignored")
    assert env.store.get_execution(record["id"])["status"] == st.PAUSED


def test_sub_workflow_events_update_tasks_not_status(env):
    record, notify = env.start()
    secret = notify["headers"][secrets.HEADER]
    child = {"engine_execution_id": "child-1"}
    sub = dict(
        wf_event(child, "ERROR", "WORKFLOW_FAILED"), root_execution_id=record["engine_execution_id"]
    )
    status, answer = env.post(record["id"], sub, secret)
    assert status == 200 and answer["result"] == "sub-workflow child-1 is ERROR"
    assert env.store.get_execution(record["id"])["status"] == st.RUNNING
    assert (
        env.post(
            record["id"],
            task_event(record, "inner", "ERROR", "TASK_FAILED", wf_id="child-1"),
            secret,
        )[0]
        == 200
    )
    # The parent finishes: its own tasks from the engine, the child's kept.
    env.engine.add_task(record["engine_execution_id"], "call_child", "ERROR")
    env.engine.set_state(record["engine_execution_id"], "ERROR", state_info="child failed")
    assert env.post(record["id"], wf_event(record, "ERROR", "WORKFLOW_FAILED"), secret)[0] == 200
    final = env.store.get_execution(record["id"])
    assert final["status"] == st.FAILED and final["error"] == "child failed"
    assert sorted(t["name"] for t in final["tasks"]) == ["call_child", "inner"]


def test_engine_down_at_the_terminal_event_leaves_it_to_the_poller(env):
    from st2bridge import errors

    record, notify = env.start()
    env.engine.fail_next = [errors.EngineUnavailable("connection refused")]
    status, answer = env.post(
        record["id"],
        wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"),
        notify["headers"][secrets.HEADER],
    )
    assert status == 200  # answered at once; the fetch failed afterwards
    stored = env.store.get_execution(record["id"])
    assert stored["status"] == st.RUNNING and stored["next_poll_at"] == env.now
    assert env.handler.counts["left_to_poller"] == 1
