"""Callback endpoint: every bad request is refused and changes nothing;
duplicates, late and reordered events never move a record backwards."""

import calendar
import io
import json

import pytest

from st2bridge import status as st
from st2bridge import workflow
from st2bridge.callbacks import secrets, webhook
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
    secret = notify["headers"][webhook.SECRET_HEADER]
    stored = env.store.get_execution(record["id"])
    assert stored["callback_secret_hash"] == secrets.hash_secret(secret)
    assert secret not in json.dumps(stored)
    assert stored["next_poll_at"] == env.now + 30  # hybrid: polled only once silent


def test_terminal_callback_finishes_with_output_from_the_engine(env):
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
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
            notify["headers"][webhook.SECRET_HEADER],
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
        b["id"],
        wf_event(b, "SUCCESS", "WORKFLOW_SUCCEEDED"),
        notify_a["headers"][webhook.SECRET_HEADER],
    )
    assert status == 403
    # And a's secret with b's event at a's URL: not a's execution tree.
    status, answer = env.post(
        a["id"],
        wf_event(b, "SUCCESS", "WORKFLOW_SUCCEEDED"),
        notify_a["headers"][webhook.SECRET_HEADER],
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
    status, answer = env.post(record["id"], body, notify["headers"][webhook.SECRET_HEADER])
    assert status == 400 and message in answer["error"]
    assert env.store.get_execution(record["id"]) == before


def test_http_level_refusals(env):
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
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
    secret = notify["headers"][webhook.SECRET_HEADER]
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
    secret = notify["headers"][webhook.SECRET_HEADER]
    post = lambda body: env.post(record["id"], body, secret)
    assert post(wf_event(record, "PAUSED", "WORKFLOW_PAUSED", "2026-11-21 12:00:05"))[0] == 200
    assert env.store.get_execution(record["id"])["status"] == st.PAUSED
    status, answer = post(wf_event(record, "RUNNING", "WORKFLOW_LAUNCHED", "2026-11-21 12:00:01"))
    assert answer["result"].startswith("ignored")
    assert env.store.get_execution(record["id"])["status"] == st.PAUSED


def test_sub_workflow_events_update_tasks_not_status(env):
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
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
        notify["headers"][webhook.SECRET_HEADER],
    )
    assert status == 200  # answered at once; the fetch failed afterwards
    stored = env.store.get_execution(record["id"])
    assert stored["status"] == st.RUNNING and stored["next_poll_at"] == env.now
    assert env.handler.counts["left_to_poller"] == 1


# -- the task view is exact: late, concurrent and null events --------------------------


def engine_event(task, event):
    """The payload Mistral posts for one of the fake engine's tasks."""
    return dict({k: task.get(k) for k in task if k != "runtime_context"}, event=event)


def test_a_task_still_running_at_the_end_reports_its_end_later(env):
    # A `succeed` engine command ends the workflow while `slow` still runs.
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
    eid = record["engine_execution_id"]
    quick = env.engine.add_task(eid, "quick", "SUCCESS")
    slow = env.engine.add_task(eid, "slow", "RUNNING")
    for task, event in ((quick, "TASK_SUCCEEDED"), (slow, "TASK_LAUNCHED")):
        assert env.post(record["id"], engine_event(task, event), secret)[0] == 200
    env.engine.set_state(eid, "SUCCESS", output={"x": 1})
    assert (
        env.post(record["id"], wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"), secret)[0] == 200
    )
    final = env.store.get_execution(record["id"])
    assert final["status"] == st.SUCCEEDED
    assert {t["name"]: t["state"] for t in final["tasks"]} == {
        "quick": "SUCCESS",
        "slow": "RUNNING",
    }
    # Seconds later the engine finishes `slow` and says so.
    env.now += 2
    done = env.engine.set_task(slow["id"], "SUCCESS")
    status, answer = env.post(record["id"], engine_event(done, "TASK_SUCCEEDED"), secret)
    assert (status, answer) == (200, {"result": "task slow SUCCESS"})
    after = env.store.get_execution(record["id"])
    assert {t["name"]: t["state"] for t in after["tasks"]} == {
        "quick": "SUCCESS",
        "slow": "SUCCESS",
    }
    assert after["status"] == st.SUCCEEDED and after["output"] == {"x": 1}
    assert after["ended_at"] == final["ended_at"] and after["next_poll_at"] == final["next_poll_at"]


@pytest.mark.parametrize("order", [("SUCCESS", "ERROR"), ("ERROR", "SUCCESS")])
def test_succeeded_and_failed_in_the_same_second_records_the_failure(env, order):
    # Mistral posts TASK_SUCCEEDED then TASK_FAILED (a publish that failed)
    # in one second over concurrent webhooks: either may arrive last.
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
    task = env.engine.add_task(record["engine_execution_id"], "call", "ERROR", type="WORKFLOW")
    names = {"SUCCESS": "TASK_SUCCEEDED", "ERROR": "TASK_FAILED"}
    for state in order:
        env.post(record["id"], engine_event(dict(task, state=state), names[state]), secret)
    (stored,) = env.store.get_execution(record["id"])["tasks"]
    assert (stored["state"], stored["status"]) == ("ERROR", st.FAILED)
    assert env.engine.count("get_task") == 0  # decided without asking the engine


def test_views_the_second_cannot_order_are_re_read_from_the_engine(env):
    # pause-before: RUNNING then IDLE in one second, posted concurrently.
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
    task = env.engine.add_task(record["engine_execution_id"], "c", "IDLE")
    idle = dict(engine_event(task, None), state_info="Set by 'pause-before' policy")
    assert env.post(record["id"], idle, secret)[0] == 200
    status, answer = env.post(
        record["id"], engine_event(dict(task, state="RUNNING"), "TASK_LAUNCHED"), secret
    )
    assert status == 200 and answer["result"] == "task c IDLE (re-read from the engine)"
    (stored,) = env.store.get_execution(record["id"])["tasks"]
    assert stored["state"] == "IDLE" and env.handler.counts["rereads"] == 1


def test_a_null_event_of_a_waiting_task_is_accepted(env):
    # Exactly what Mistral 23 posted for a wait-before task (event: null).
    record, notify = env.start()
    payload = {
        "id": "707515a0-0bda-4933-a4a4-57ec50d48dd7",
        "name": "b",
        "workflow_execution_id": record["engine_execution_id"],
        "workflow_name": "wf",
        "workflow_namespace": "",
        "workflow_id": "df52a62e-d9e5-4cde-9470-4339963b3fd1",
        "state": "DELAYED",
        "state_info": "Delayed by 'wait-before' policy [delay=1]",
        "type": "ACTION",
        "project_id": "<default-project>",
        "created_at": "2026-11-21 12:00:00",
        "updated_at": "2026-11-21 12:00:00",
        "started_at": "2026-11-21 12:00:00",
        "finished_at": None,
        "event": None,
    }
    status, answer = env.post(record["id"], payload, notify["headers"][webhook.SECRET_HEADER])
    assert (status, answer) == (200, {"result": "task b DELAYED"})
    (stored,) = env.store.get_execution(record["id"])["tasks"]
    assert stored["state"] == "DELAYED" and stored["status"] == st.RUNNING


NESTED = b"[" * 2000 + b"]" * 2000  # past any recursion limit; under max_body


@pytest.mark.parametrize(
    "body, message",
    [
        ({"event": [], "id": "x", "state": "RUNNING"}, "'event' must be a string or null"),
        ({"event": {}, "id": "x", "state": "RUNNING"}, "'event' must be a string or null"),
        (b'{"event": ' + NESTED + b"}", "nested too deep"),
        (NESTED, "nested too deep"),
        (b'{"event": "WORKFLOW_LAUNCHED", "id": "x", "state": NaN}', "not a JSON number"),
        (
            b'{"event": "WORKFLOW_LAUNCHED", "id": "x", "state": "RUNNING", "n": Infinity}',
            "not a JSON number",
        ),
        (b'{"event": "WORKFLOW_LAUNCHED", "id": "\xff"}', "not JSON"),
        ({"event": "WORKFLOW_LAUNCHED", "id": "x", "state": "EXPLODED"}, "unknown state"),
        (
            {
                "event": "TASK_LAUNCHED",
                "id": "t",
                "state": "RUNNING",
                "workflow_execution_id": "w",
                "updated_at": 5,
            },
            "'updated_at'",
        ),
        ({"event": "WORKFLOW_LAUNCHED", "id": "x", "state": "RUNNING", "name": ["a"]}, "'name'"),
    ],
)
def test_every_malformed_body_is_a_400_after_the_secret(env, body, message):
    record, notify = env.start()
    before = env.store.get_execution(record["id"])
    assert env.post(record["id"], body)[0] == 401  # the secret first, the body never parsed
    status, answer = env.post(record["id"], body, notify["headers"][webhook.SECRET_HEADER])
    assert status == 400 and message in answer["error"], answer
    assert env.store.get_execution(record["id"]) == before
    assert env.handler.counts["errors"] == 0


class Unreadable:
    def read(self, *args):
        raise AssertionError("the body of an unauthenticated request was read")


def test_the_secret_is_checked_before_any_body_is_read(env):
    record, notify = env.start()
    for secret, expected in ((None, 401), ("forged", 403)):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/v1/callbacks/mistral/%s" % record["id"],
            "CONTENT_LENGTH": str(50 * 1024 * 1024),
            "wsgi.input": Unreadable(),
        }
        if secret:
            environ["HTTP_X_ST2BRIDGE_SECRET"] = secret
        seen = {}
        env.app(environ, lambda status, headers, seen=seen: seen.update(status=status))
        assert seen["status"].startswith(str(expected))


def test_an_authenticated_body_over_the_limit_is_logged_counted_and_read_from_the_engine(
    env, caplog
):
    record, notify = env.start()
    env.now += 7
    body = wf_event(record, "ERROR", "WORKFLOW_FAILED", state_info="x" * 8000)
    status, answer = env.post(record["id"], body, notify["headers"][webhook.SECRET_HEADER])
    assert status == 413 and "read from the engine" in answer["error"]
    stored = env.store.get_execution(record["id"])
    assert stored["status"] == st.RUNNING and stored["tracked"]
    assert stored["next_poll_at"] == env.now and stored["callback_owner"] is None
    assert env.handler.counts["too_large"] == 1 and env.handler.counts["rejected"] == 1
    assert "over [callback] max_body (4096)" in caplog.text


def test_every_answer_is_counted_and_a_bug_is_a_logged_counted_500(env, caplog):
    record, notify = env.start()
    seen = []
    env.handler.observers.append(lambda status, seconds: seen.append(status))

    def broken(*args):
        raise RuntimeError("a bug")

    env.handler.handle = broken
    status, answer = env.post(
        record["id"], {"event": None}, notify["headers"][webhook.SECRET_HEADER]
    )
    assert (status, answer) == (500, {"error": "internal error"})
    assert env.post(record["id"], {}, None, method="GET")[0] == 405
    assert seen == [500, 405]
    assert env.handler.counts["errors"] == 1 and env.handler.counts["rejected"] == 1
    assert "Traceback" in caplog.text and "RuntimeError: a bug" in caplog.text


def test_an_empty_answer_from_the_engine_at_the_end_changes_nothing(env, caplog):
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
    task = env.engine.add_task(record["engine_execution_id"], "t1", "SUCCESS")
    env.post(record["id"], engine_event(task, "TASK_SUCCEEDED"), secret)
    before = env.store.get_execution(record["id"])
    env.engine.malformed["get_execution"] = {}  # `200 {}` from a broken engine or proxy
    env.now += 1
    assert (
        env.post(record["id"], wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"), secret)[0] == 200
    )
    after = env.store.get_execution(record["id"])
    assert after["status"] == st.RUNNING and after["tasks"] == before["tasks"]
    assert after["next_poll_at"] == env.now  # the poller checks it now
    assert env.handler.counts["left_to_poller"] == 1
    assert "succeeded" not in caplog.text and "treated as an engine error" in caplog.text


def test_a_terminal_callback_the_engine_contradicts_changes_nothing(env):
    record, notify = env.start()
    status, _ = env.post(
        record["id"],
        wf_event(record, "SUCCESS", "WORKFLOW_SUCCEEDED"),
        notify["headers"][webhook.SECRET_HEADER],
    )
    assert status == 200
    stored = env.store.get_execution(record["id"])
    assert stored["status"] == st.RUNNING and stored["next_poll_at"] == env.now


def test_the_end_reads_sub_workflow_tasks_and_labels_them(env):
    record, notify = env.start()
    secret = notify["headers"][webhook.SECRET_HEADER]
    eid = record["engine_execution_id"]
    deploy = env.engine.add_task(eid, "deploy", "ERROR", type="WORKFLOW", with_items=2)
    subs = [env.engine.add_sub(deploy["id"], "per_host", i, {"host": "h%d" % i}) for i in (0, 1)]
    migrate = [env.engine.add_task(sub, "migrate", "ERROR") for sub in subs]
    for task in migrate:  # the sub-workflows' callbacks (notify is inherited)
        env.post(record["id"], engine_event(task, "TASK_FAILED"), secret)
    during = env.store.get_execution(record["id"])
    assert [t["workflow_execution_id"] for t in during["tasks"]] == subs
    env.engine.set_state(eid, "ERROR", state_info="deploy failed")
    env.post(record["id"], wf_event(record, "ERROR", "WORKFLOW_FAILED"), secret)
    final = env.store.get_execution(record["id"])
    assert [t["label"] for t in final["tasks"]] == [
        "deploy",
        "deploy[0 host=h0] > migrate",
        "deploy[1 host=h1] > migrate",
    ]


def test_callback_mode_records_are_tracked_for_the_safety_net(tmp_path):
    env = Env(tmp_path)
    try:
        env.runner = Runner(
            env.engine,
            env.store,
            mode="callback",
            callback_url="http://127.0.0.1:9101",
            stale_after=30,
            clock=lambda: env.now,
        )
        env.handler.owner = "tracker-a"
        record, notify = env.start()
        stored = env.store.get_execution(record["id"])
        assert stored["tracked"] and stored["next_poll_at"] == env.now + 30
        # WORKFLOW_LAUNCHED tells nothing new (the submit's answer did), but
        # says whose listener takes this execution's callbacks.
        engine_ex = env.engine.executions[record["engine_execution_id"]]
        launched = wf_event(
            record, "RUNNING", "WORKFLOW_LAUNCHED", updated_at=engine_ex["updated_at"]
        )
        env.now += 1
        answer = env.post(record["id"], launched, notify["headers"][webhook.SECRET_HEADER])
        assert answer == (200, {"result": "duplicate"})
        stored = env.store.get_execution(record["id"])
        assert stored["callback_owner"] == "tracker-a" and stored["next_poll_at"] == env.now + 30
        env.now += 5
        task = env.engine.add_task(record["engine_execution_id"], "t1", "RUNNING")
        env.post(
            record["id"],
            engine_event(task, "TASK_LAUNCHED"),
            notify["headers"][webhook.SECRET_HEADER],
        )
        stored = env.store.get_execution(record["id"])
        assert stored["callback_owner"] == "tracker-a" and stored["next_poll_at"] == env.now + 30
    finally:
        env.store.close()
