"""`execution recover` (st2bridge/recover.py) and how a stuck execution is
shown, against the engine stand-in. The real engine: tests/integration/test_stuck_real.py."""

import json
import time

import pytest

from st2bridge import errors, recover, workflow
from st2bridge.cli import output
from st2bridge.cli import stuck as stuckcli
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store
from st2bridge.tracker import stuck, stuckview
from tests.support.fake_time import FakeTime

T0 = 1_800_000_000.0
WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.sleep seconds=5\n"
SETTINGS = stuck.Settings()


def stamp(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


class Engine(StubEngine):
    """The stand-in, plus what Mistral does when an action execution or a
    sub-workflow is completed through the API."""

    def complete_action_execution(self, action_execution_id, state, output):
        answer = super().complete_action_execution(action_execution_id, state, output)
        eid, task_id = self.owner[action_execution_id]
        for task in self.tasks[eid]:
            if task["id"] == task_id:
                task.update(state=state, updated_at=self._stamp())
        self.set_state(eid, "SUCCESS" if state == "SUCCESS" else "ERROR")
        return answer

    def update_execution_state(self, execution_id, state, state_info=None):
        if execution_id.startswith("child"):  # a finished sub-workflow: Mistral accepts it
            self.calls.append(("update_execution_state", execution_id, state))
            return {"id": execution_id, "state": state}
        return super().update_execution_state(execution_id, state, state_info)


@pytest.fixture
def env(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    t = FakeTime(T0)
    engine = Engine(clock=t)
    engine.owner = {}
    runner = Runner(engine, store, query_interval=5.0, clock=t)
    record = runner.start(workflow.parse(WF), "wf", {})
    eid = record["engine_execution_id"]
    engine.add_task(eid, "t1", "RUNNING")
    t.now += 600
    yield store, engine, t, record, eid
    store.close()


def recovery(engine, store, t, **kw):
    return recover.Recovery(engine, store, SETTINGS, clock=t, sleep=t.sleep, settle=5, **kw)


def report(eid, task_state="RUNNING", actions=(), subs=(), wf_state="RUNNING", extra_tasks=()):
    return {
        "root_workflow_execution": {
            "id": eid,
            "name": "wf",
            "state": wf_state,
            "created_at": stamp(T0),
            "updated_at": stamp(T0),
            "task_executions": [
                {
                    "id": "%s-t1" % eid,
                    "name": "t1",
                    "state": task_state,
                    "created_at": stamp(T0),
                    "updated_at": stamp(T0),
                    "action_executions": list(actions),
                    "workflow_executions": list(subs),
                }
            ]
            + list(extra_tasks),
        }
    }


def lost_action(engine, eid, output=None):
    action = {
        "id": "act1",
        "name": "std.sleep",
        "state": "RUNNING",
        "created_at": stamp(T0),
        "updated_at": stamp(T0),
        "last_heartbeat": stamp(T0 + 2),
    }
    engine.reports[eid] = report(eid, actions=[action])
    engine.action_executions["act1"] = dict(action, output=output)
    engine.owner["act1"] = (eid, "%s-t1" % eid)


def test_a_lost_action_is_failed_then_its_task_re_run(env):
    store, engine, t, record, eid = env
    lost_action(engine, eid)
    r = recovery(engine, store, t)
    plan = r.plan(record["id"])
    assert plan.finding.signature == stuck.LOST_ACTION
    assert [s.text.split(":")[0] for s in plan.steps] == [
        "set action execution act1 (std.sleep, task t1) to ERROR",
        "if that fails the workflow",
    ]
    r.carry_out(plan)
    assert ("complete_action_execution", "act1", "ERROR") in engine.calls
    output_sent = engine.action_executions["act1"]["output"]
    assert output_sent["result"].startswith("st2bridge recover: action execution act1")
    assert ("rerun_task", "%s-t1" % eid, True) in engine.calls
    assert "task t1 (%s-t1) is running again" % eid in plan.done[-1]
    after = store.get_execution(record["id"])
    assert after["stuck"] is None and after["tracked"]


def test_a_lost_action_with_known_output_succeeds_with_it(env):
    store, engine, t, record, eid = env
    lost_action(engine, eid, output={"result": 42})
    r = recovery(engine, store, t)
    plan = r.plan(record["id"])
    assert "to SUCCESS with the output the engine has" in plan.steps[0].text
    r.carry_out(plan)
    assert engine.action_executions["act1"]["output"] == {"result": 42}
    assert "no re-run needed" in plan.done[-1]
    assert engine.count("rerun_task") == 0


def test_a_failed_task_whose_workflow_goes_on_is_not_re_run(env):
    store, engine, t, record, eid = env
    lost_action(engine, eid)
    original = engine.complete_action_execution

    def handled(action_execution_id, state, output):  # an on-error handler takes over
        answer = original(action_execution_id, state, output)
        engine.set_state(eid, "RUNNING")
        return answer

    engine.complete_action_execution = handled
    r = recovery(engine, store, t)
    plan = r.carry_out(r.plan(record["id"]))
    assert "the engine went on (execution RUNNING, task t1 ERROR)" in plan.done[-1]
    assert engine.count("rerun_task") == 0


def test_no_rerun_stops_after_the_action(env):
    store, engine, t, record, eid = env
    lost_action(engine, eid)
    plan = recovery(engine, store, t, rerun=False).plan(record["id"])
    assert len(plan.steps) == 1


def test_a_lost_sub_workflow_result_is_sent_again(env):
    store, engine, t, record, eid = env
    child = {"id": "child1", "name": "sub", "state": "SUCCESS", "updated_at": stamp(T0 + 10)}
    engine.reports[eid] = report(eid, subs=[child])
    r = recovery(engine, store, t)
    plan = r.plan(record["id"])
    assert plan.finding.signature == stuck.LOST_RESULT
    r.carry_out(plan)
    assert ("update_execution_state", "child1", "SUCCESS") in engine.calls


def test_a_lost_action_result_fails_the_workflow_with_the_reason(env):
    store, engine, t, record, eid = env
    done = {
        "id": "act1",
        "name": "std.noop",
        "state": "SUCCESS",
        "created_at": stamp(T0),
        "updated_at": stamp(T0 + 1),
        "last_heartbeat": stamp(T0 + 1),
    }
    engine.reports[eid] = report(eid, actions=[done])
    r = recovery(engine, store, t)
    plan = r.plan(record["id"])
    assert plan.finding.signature == stuck.LOST_RESULT
    r.carry_out(plan)
    assert engine.executions[eid]["state"] == "ERROR"
    assert engine.executions[eid]["state_info"].startswith(
        "st2bridge recover: the result of task t1"
    )


def test_a_lost_continuation_is_paused_and_resumed(env):
    store, engine, t, record, eid = env
    engine.reports[eid] = report(eid, task_state="SUCCESS")
    r = recovery(engine, store, t)
    plan = r.plan(record["id"])
    assert plan.finding.signature == stuck.LOST_CONTINUATION
    # The engine completes the workflow on resume (Mistral's check_and_complete).
    original = engine.update_execution_state

    def resumed(execution_id, state, state_info=None):
        answer = original(execution_id, state, state_info)
        if state == "RUNNING":
            engine.reports[eid] = report(eid, task_state="SUCCESS", wf_state="SUCCESS")
        return answer

    engine.update_execution_state = resumed
    r.carry_out(plan)
    states = [c[2] for c in engine.calls if c[0] == "update_execution_state"]
    assert states == ["PAUSED", "RUNNING"]
    assert plan.done[-1] == "the engine moves again; nothing more to do"


def test_a_continuation_that_stays_lost_is_failed_with_the_reason(env):
    store, engine, t, record, eid = env
    engine.reports[eid] = report(eid, task_state="SUCCESS")
    r = recovery(engine, store, t)
    plan = r.plan(record["id"])
    r.carry_out(plan)
    states = [c[2] for c in engine.calls if c[0] == "update_execution_state"]
    assert states == ["PAUSED", "RUNNING", "ERROR"]
    assert "did not move after a pause and resume" in engine.executions[eid]["state_info"]


def test_refusals_change_nothing(env):
    store, engine, t, record, eid = env
    fresh = {
        "id": "act1",
        "name": "std.sleep",
        "state": "RUNNING",
        "created_at": stamp(T0),
        "updated_at": stamp(T0),
        "last_heartbeat": stamp(t.now - 5),  # alive, 600 s into its work
    }
    engine.reports[eid] = report(eid, actions=[fresh])
    with pytest.raises(errors.Conflict, match="is not stuck: the engine shows it moving"):
        recovery(engine, store, t).plan(record["id"])
    slow = recover.Recovery(
        engine, store, stuck.Settings(no_progress_after=60), clock=t, sleep=t.sleep
    )
    with pytest.raises(errors.Conflict, match="no safe automatic recovery"):
        slow.plan(record["id"])
    engine.set_state(eid, "PAUSED")
    with pytest.raises(errors.Conflict, match="PAUSED in the engine"):
        recovery(engine, store, t).plan(record["id"])
    store.update_execution(record["id"], {"status": "succeeded"})
    with pytest.raises(errors.Conflict, match="it has ended"):
        recovery(engine, store, t).plan(record["id"])
    assert engine.count("complete_action_execution") == 0
    assert engine.count("update_execution_state") == 0


def test_a_flagged_record_shows_signature_evidence_and_fix(env):
    store, engine, t, record, eid = env
    finding, _ = stuck.diagnose(
        report(
            eid,
            actions=[
                {
                    "id": "act1",
                    "name": "std.sleep",
                    "state": "RUNNING",
                    "created_at": stamp(T0),
                    "last_heartbeat": stamp(T0 + 2),
                }
            ],
        ),
        t.now,
        SETTINGS,
    )
    store.update_execution(
        record["id"], {"stuck": stuck.record_value(finding, 0.0, t.now)}, if_active=True
    )
    flagged = store.get_execution(record["id"])
    view = output.execution_view(flagged)["stuck"]
    assert view["signature"] == "lost_action"
    assert view["since"] == "2027-01-15T08:00:02+00:00"
    assert view["command"] == "st2bridge execution recover %s" % record["id"]
    assert view["evidence"]["action_executions"][0]["id"] == "act1"
    json.dumps(view)  # JSON-able
    text = output.execution_text(flagged)
    assert "STUCK:      lost_action since 2027-01-15 08:00:02" in text
    assert "action execution act1 (std.sleep) RUNNING, last heartbeat" in text
    assert "fix: st2bridge execution recover %s" % record["id"] in text
    row = stuckcli.stuck_row(flagged, t.now)
    assert row["stuck"]["signature"] == "lost_action" and row["task"] == "t1"
    assert output.execution_view(store.get_execution(record["id"]))["stuck"] is not None
    store.update_execution(record["id"], {"stuck": None})
    assert output.execution_view(store.get_execution(record["id"]))["stuck"] is None
    assert stuckview.explain(store.get_execution(record["id"])) == []
