"""The operator toolkit without services: --since, formatting, the error tree,
and the state rules of cancel/pause/resume and task re-runs (engine stand-in)."""

import datetime

import pytest

from st2bridge import control, errors, errortree, workflow
from st2bridge import status as st
from st2bridge.callbacks import events
from st2bridge.cli import executions, timespec
from st2bridge.concurrency import InlineExecutor
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store
from st2bridge.tracker.poller import Poller
from tests.support.fake_time import Clock

NOW = 1_800_000_000.0
WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"


# -- --since and durations --------------------------------------------------------


@pytest.mark.parametrize(
    "text, back",
    [
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172800),
        ("45s", 45),
        ("1w", 604800),
        ("1h30m", 5400),
        (" 2H ", 7200),
        ("1.5h", 5400),
    ],
)
def test_since_relative(text, back):
    assert timespec.parse_since(text, NOW) == NOW - back


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-21T12:00:00Z", datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)),
        ("2026-11-21 12:00", datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc)),
        (
            "2026-11-21T14:00:00+02:00",
            datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc),
        ),
        ("2026-11-21", datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc)),
    ],
)
def test_since_iso_is_utc_unless_an_offset_is_given(text, expected):
    assert timespec.parse_since(text, NOW) == expected.timestamp()


@pytest.mark.parametrize("text", ["", "yesterday", "1x", "m30", "2026-13-01", "1h 30m"])
def test_since_invalid_is_an_input_error(text):
    with pytest.raises(errors.InputError, match="--since"):
        timespec.parse_since(text, NOW)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.25, "250ms"),
        (4.21, "4.2s"),
        (185, "3m05s"),
        (7440, "2h04m"),
        (266400, "3d02h"),
        (None, None),
        (-1, "0ms"),
    ],
)
def test_duration(seconds, text):
    assert timespec.duration(seconds) == text


def test_list_rows_and_table():
    done = {
        "id": "a",
        "workflow_name": "wf",
        "status": "succeeded",
        "created_at": NOW - 100,
        "ended_at": NOW - 95.5,
        "finished_by": "callback",
        "engine_execution_id": "e1",
    }
    live = dict(
        done, id="b", status="running", ended_at=None, finished_by=None, created_at=NOW - 65
    )
    rows = [executions.list_row(r, NOW) for r in (live, done)]
    assert rows[1]["duration_s"] == 4.5 and rows[1]["finished_by"] == "callback"
    assert rows[0]["duration_s"] == 65 and rows[0]["ended_at"] is None
    lines = executions.list_text(rows).splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION", "FINISHED_BY"]
    assert lines[1].split()[5:] == ["1m05s+", "-"]  # still running: so far
    assert lines[2].split()[5:] == ["4.5s", "callback"]
    assert executions.list_text([]) == "no executions"


def test_status_filter_is_checked():
    assert executions.parse_statuses("failed, canceled") == ["failed", "canceled"]
    with pytest.raises(errors.InputError, match="unknown status bogus"):
        executions.parse_statuses("failed,bogus")


def test_task_rows_retries_and_sub_workflow_order():
    engine = StubEngine()
    engine.executions = {
        "root": {"id": "root", "updated_at": "x"},
        "sub": {
            "id": "sub",
            "workflow_name": "child",
            "root_execution_id": "root",
            "task_execution_id": "t-call",
            "updated_at": "x",
        },
    }
    engine.list_executions = lambda root_execution_id, fields: [engine.executions["sub"]]
    engine.tasks = {
        "root": [
            {
                "id": "t-call",
                "name": "call",
                "state": "RUNNING",
                "created_at": "2026-11-21 12:00:01",
                "started_at": "2026-11-21 12:00:01",
                "finished_at": None,
            },
            {
                "id": "t-first",
                "name": "first",
                "state": "SUCCESS",
                "created_at": "2026-11-21 12:00:00",
                "started_at": "2026-11-21 12:00:00",
                "finished_at": "2026-11-21 12:00:01",
            },
        ],
        "sub": [
            {
                "id": "t-boom",
                "name": "boom",
                "state": "RUNNING",
                "created_at": "2026-11-21 12:00:02",
                "started_at": "2026-11-21 12:00:02",
                "finished_at": None,
                "runtime_context": {"retry_task_policy": {"retry_no": 2}},
            }
        ],
    }
    now = datetime.datetime(2026, 11, 21, 12, 0, 12, tzinfo=datetime.timezone.utc).timestamp()
    rows = executions.task_rows(engine, "root", now)
    assert [(r["name"], r["workflow"], r["retries"], r["duration_s"]) for r in rows] == [
        ("first", None, None, 1.0),
        ("call", None, None, 11.0),
        ("boom", "child", 2, 10.0),
    ]
    table = executions.tasks_text(rows).splitlines()
    # The bridge's vocabulary first, the engine's state beside it (issue 15 #11);
    # the TASK column is the task's label, its place in the run.
    assert table[0].split()[:3] == ["TASK", "STATUS", "ENGINE_STATE"]
    assert [r["label"] for r in rows] == ["first", "call", "call > boom"]
    boom = table[3].split()[2:]  # after "call > boom"
    assert table[3].startswith("call > boom ") and boom[1:3] == ["running", "RUNNING"]
    assert table[1].split()[5] == "1.0s" and boom[5:8] == ["10.0s+", "2", "child"]


# -- the error tree -----------------------------------------------------------------

REPORT = {
    "root_workflow_execution": {
        "id": "w1",
        "name": "parent",
        "state": "ERROR",
        "state_info": "Failure caused by error in tasks: call\n\n  call -> ...",
        "task_executions": [
            {
                "id": "t1",
                "name": "call",
                "state": "ERROR",
                "state_info": "Failure caused by error in tasks: boom\n...",
                "action_executions": [],
                "workflow_executions": [
                    {
                        "id": "w2",
                        "name": "child",
                        "state": "ERROR",
                        "state_info": "Failure caused by ...",
                        "task_executions": [
                            {
                                "id": "t2",
                                "name": "boom",
                                "state": "ERROR",
                                "state_info": "disk full\non /var",
                                "retry_count": 1,
                                "workflow_executions": [],
                                "action_executions": [
                                    {"id": "a1", "name": "std.fail", "state": "ERROR"},
                                    {"id": "a2", "name": "std.fail", "state": "ERROR"},
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
}


def test_error_tree_from_the_engine_report():
    tree = errortree.from_report(REPORT)
    call = tree["tasks"][0]
    boom = call["workflows"][0]["tasks"][0]
    assert (tree["workflow"], tree["error"]) == ("parent", "Failure caused by error in tasks: call")
    assert call["error"] == "Failure caused by error in tasks: boom"  # first line only
    assert (boom["error"], boom["retry_count"], len(boom["actions"])) == (
        "disk full\non /var",
        1,
        2,
    )
    leaves = errortree.failed_leaves(tree)
    assert [(t["id"], path) for t, path in leaves] == [("t2", ["parent", "child"])]
    assert errortree.from_report({}) is None and errortree.failed_leaves(None) == []


def test_get_text_ends_with_the_rerun_command():
    record = {
        "id": "b1",
        "status": "failed",
        "workflow_name": "parent",
        "engine_execution_id": "w1",
        "engine_state": "ERROR",
        "input": {},
        "error": "Failure caused by error in tasks: call\nmore",
        "output": {"result": "Failure caused by error in tasks: call\nmore"},
        "tasks": [],
        "finished_by": "poll",
        "created_at": NOW,
        "updated_at": NOW,
        "ended_at": NOW + 1,
    }
    text = executions.get_text(record, errortree.from_report(REPORT))
    lines = text.splitlines()
    assert "error:      Failure caused by error in tasks: call" in lines
    assert "          action std.fail x2: disk full" in lines
    assert lines[-2:] == ["re-run the failed task with:", "  st2bridge task rerun t2"]
    assert "more" not in text


# -- cancel / pause / resume -------------------------------------------------------------


@pytest.mark.parametrize(
    "action, status, expected",
    [
        ("pause", "running", True),
        ("pause", "pausing", True),
        ("pause", "paused", False),
        ("pause", "canceling", errors.Conflict),
        ("pause", "requested", errors.Conflict),
        ("pause", "succeeded", errors.Conflict),
        ("resume", "paused", True),
        ("resume", "pausing", True),
        ("resume", "running", False),
        ("resume", "failed", errors.Conflict),
        ("resume", "canceling", errors.Conflict),
        ("cancel", "running", True),
        ("cancel", "paused", True),
        ("cancel", "canceling", True),
        ("cancel", "canceled", False),
        ("cancel", "failed", errors.Conflict),
        ("cancel", "requested", errors.Conflict),
    ],
)
def test_plan(action, status, expected):
    record = {"id": "x", "status": status}
    if expected is errors.Conflict:
        with pytest.raises(errors.Conflict, match="execution x is %s" % status):
            control.plan(control.ACTIONS[action], record)
    else:
        assert control.plan(control.ACTIONS[action], record) is expected


@pytest.mark.parametrize(
    "action, state, ok",
    [
        ("pause", "PAUSED", True),
        ("pause", "RUNNING", False),
        ("resume", "RUNNING", True),
        ("resume", "SUCCESS", True),
        ("resume", "PAUSED", False),
        ("cancel", "CANCELLED", True),
        ("cancel", "SUCCESS", False),
    ],
)
def test_confirmed(action, state, ok):
    assert control.confirmed(control.ACTIONS[action], state) is ok


@pytest.fixture
def env(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    clock = Clock(NOW)
    engine = StubEngine(clock=clock)
    runner = Runner(engine, store, query_interval=5.0, clock=clock)
    poller = Poller(
        engine,
        store,
        InlineExecutor(10),
        owner="t1",
        query_interval=5.0,
        jitter_interval=0.0,
        verify_interval=300.0,
        clock=clock,
        rng=lambda: 0.0,
    )
    record = runner.start(workflow.parse(WF), "wf", {})
    yield store, engine, clock, poller, record
    store.close()


def poll(poller, clock, seconds=6):
    clock.now += seconds
    poller.tick(clock.now)


def test_pause_then_resume_pass_through_and_the_poller_confirms(env):
    store, engine, clock, poller, record = env
    engine_id = record["engine_execution_id"]
    result = control.change_state(engine, store, record["id"], "pause", clock=clock)
    assert (result.status, result.engine_state) == ("pausing", "PAUSED")
    assert engine.executions[engine_id]["state"] == "PAUSED"
    stored = store.get_execution(record["id"])
    assert (stored["status"], stored["engine_state"]) == ("pausing", "RUNNING")
    poll(poller, clock)
    assert store.get_execution(record["id"])["status"] == st.PAUSED
    assert not control.change_state(engine, store, record["id"], "pause", clock=clock).changed

    assert (
        control.change_state(engine, store, record["id"], "resume", clock=clock).status
        == "resuming"
    )
    assert store.get_execution(record["id"])["status"] == "resuming"
    poll(poller, clock)
    assert store.get_execution(record["id"])["status"] == st.RUNNING


def test_cancel_passes_through_canceling_and_the_poller_finishes_it(env):
    store, engine, clock, poller, record = env
    control.change_state(engine, store, record["id"], "cancel", clock=clock)
    assert store.get_execution(record["id"])["status"] == "canceling"
    poll(poller, clock)
    stored = store.get_execution(record["id"])
    assert (stored["status"], stored["finished_by"]) == ("canceled", "poll")
    with pytest.raises(errors.Conflict, match="is canceled; it cannot be paused"):
        control.change_state(engine, store, record["id"], "pause", clock=clock)


@pytest.mark.parametrize(
    "status, event, state, expected",
    [
        ("pausing", "WORKFLOW_PAUSED", "PAUSED", "paused"),
        ("resuming", "WORKFLOW_RESUMED", "RUNNING", "running"),
    ],
)
def test_callbacks_confirm_a_transition(status, event, state, expected):
    record = {
        "id": "b",
        "status": status,
        "engine_execution_id": "e",
        "engine_state": "PAUSED" if status == "resuming" else "RUNNING",
        "engine_updated_at": "2026-11-21 12:00:00",
        "tasks": [],
    }
    outcome = events.apply(
        record, {"event": event, "id": "e", "state": state, "updated_at": "2026-11-21 12:00:01"}
    )
    assert outcome.changes["status"] == expected
    cancel = events.apply(
        dict(record, status="canceling"),
        {
            "event": "WORKFLOW_CANCELLED",
            "id": "e",
            "state": "CANCELLED",
            "updated_at": "2026-11-21 12:00:01",
        },
    )
    assert cancel.finish


def test_engine_refusal_puts_the_status_back(env):
    store, engine, clock, poller, record = env
    engine.set_state(record["engine_execution_id"], "SUCCESS")  # ended meanwhile
    with pytest.raises(errors.Conflict, match="the engine refused to pause"):
        control.change_state(engine, store, record["id"], "pause", clock=clock)
    stored = store.get_execution(record["id"])
    assert stored["status"] == "running" and stored["next_poll_at"] == clock.now
    engine.fail_next = [errors.EngineUnavailable("down")]
    engine.set_state(record["engine_execution_id"], "RUNNING")
    with pytest.raises(errors.EngineUnavailable):
        control.change_state(engine, store, record["id"], "cancel", clock=clock)
    assert store.get_execution(record["id"])["status"] == "running"
    with pytest.raises(errors.NotFound):
        control.change_state(engine, store, "nope", "cancel", clock=clock)


# -- task rerun ----------------------------------------------------------------------------


def failed(env):
    store, engine, clock, poller, record = env
    engine_id = record["engine_execution_id"]
    engine.add_task(engine_id, "t1", "ERROR")
    engine.set_state(engine_id, "ERROR", state_info="t1 failed")
    poll(poller, clock)
    stored = store.get_execution(record["id"])
    assert stored["status"] == st.FAILED
    return stored, engine.tasks[engine_id][0]["id"]


def test_rerun_reopens_the_record_and_tracks_it_to_the_end(env):
    store, engine, clock, poller, record = env
    stored, task_id = failed(env)
    result = control.rerun_task(engine, store, task_id, clock=clock)
    assert (result.execution_id, result.task_name, result.reopened) == (record["id"], "t1", True)
    assert engine.calls[-1] == ("rerun_task", task_id, True)
    reopened = store.get_execution(record["id"])
    assert {
        k: reopened[k]
        for k in ("status", "output", "error", "ended_at", "finished_by", "tracked", "next_poll_at")
    } == {
        "status": "running",
        "output": None,
        "error": None,
        "ended_at": None,
        "finished_by": None,
        "tracked": True,
        "next_poll_at": clock.now,
    }
    assert reopened["callback_secret_hash"] == stored["callback_secret_hash"]
    assert [(t["name"], t["status"]) for t in reopened["tasks"]] == [("t1", "running")]
    # Callbacks of the re-run count again: the task's new run, then the end.
    engine_id = record["engine_execution_id"]
    task_event = {
        "event": "TASK_RERUN",
        "id": task_id,
        "workflow_execution_id": engine_id,
        "name": "t1",
        "state": "RUNNING",
        "updated_at": engine._stamp(),
    }
    assert events.apply(reopened, task_event).task[1]["state"] == "RUNNING"
    assert events.apply(
        reopened, {"event": "WORKFLOW_SUCCEEDED", "id": engine_id, "state": "SUCCESS"}
    ).finish
    engine.tasks[engine_id][0]["state"] = "SUCCESS"
    engine.set_state(engine_id, "SUCCESS", output={"ok": 1})
    poll(poller, clock)
    done = store.get_execution(record["id"])
    assert (done["status"], done["output"], done["finished_by"]) == ("succeeded", {"ok": 1}, "poll")


def test_rerun_refusals(env):
    store, engine, clock, poller, record = env
    engine.add_task(record["engine_execution_id"], "ok", "SUCCESS")
    task_id = engine.tasks[record["engine_execution_id"]][0]["id"]
    with pytest.raises(errors.Conflict, match=r"task ok \(.*\) is SUCCESS: only a failed task"):
        control.rerun_task(engine, store, task_id, clock=clock)
    with pytest.raises(errors.NotFound, match="the engine has no task nope"):
        control.rerun_task(engine, store, "nope", clock=clock)


def test_rerun_refused_by_the_engine_restores_the_record(env):
    store, engine, clock, poller, record = env
    stored, task_id = failed(env)
    engine.fail_next = [
        None,
        None,
        errors.EngineBadRequest("Only with-items task has the option to not reset.", 400),
    ]
    with pytest.raises(errors.Conflict, match="refused to re-run task t1"):
        control.rerun_task(engine, store, task_id, reset=False, clock=clock)
    assert store.get_execution(record["id"]) == stored


def test_rerun_of_an_execution_the_bridge_did_not_start(env):
    store, engine, clock, poller, record = env
    engine.executions["other"] = {"id": "other", "state": "ERROR", "params": {}, "updated_at": "x"}
    engine.tasks["other"] = []
    engine.add_task("other", "t", "ERROR")
    with pytest.raises(errors.NotFound, match="which this bridge did not start"):
        control.rerun_task(engine, store, "other-t", clock=clock)


def test_tasks_of_one_second_are_ordered_by_what_triggered_them():
    second = "2026-11-21 12:00:00"
    tasks = [
        {"id": "c", "created_at": second, "runtime_context": {"triggered_by": [{"task_id": "b"}]}},
        {"id": "b", "created_at": second, "runtime_context": {"triggered_by": [{"task_id": "a"}]}},
        {"id": "a", "created_at": second, "runtime_context": {}},
        {"id": "z", "created_at": "2026-11-21 11:59:59"},
    ]
    assert [t["id"] for t in executions._in_order(tasks)] == ["z", "a", "b", "c"]
