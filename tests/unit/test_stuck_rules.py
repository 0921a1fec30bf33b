"""The stuck-execution rules (st2bridge/tracker/stuck.py) on hand-built engine
reports, shaped like Mistral 23's GET /v2/executions/{id}/report."""

import time

import pytest

from st2bridge.tracker import stuck

NOW = 1_800_000_000.0
S = stuck.Settings(heartbeat_timeout=60.0)  # and the default 60 s graces


def ts(seconds_ago):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(NOW - seconds_ago))


def action(
    state="RUNNING", beat_ago=5, created_ago=100, updated_ago=None, name="std.sleep", id_="a1"
):
    return {
        "id": id_,
        "name": name,
        "state": state,
        "created_at": ts(created_ago),
        "updated_at": ts(updated_ago if updated_ago is not None else created_ago),
        "last_heartbeat": ts(beat_ago) if beat_ago is not None else None,
        "accepted": state != "RUNNING",
    }


def task(
    state="RUNNING", actions=(), subs=(), name="t1", created_ago=100, updated_ago=None, id_="t1"
):
    return {
        "id": id_,
        "name": name,
        "state": state,
        "created_at": ts(created_ago),
        "updated_at": None if updated_ago is None else ts(updated_ago),
        "action_executions": list(actions),
        "workflow_executions": list(subs),
    }


def workflow(tasks, state="RUNNING", name="wf", id_="w1", created_ago=200):
    return {
        "id": id_,
        "name": name,
        "state": state,
        "created_at": ts(created_ago),
        "updated_at": ts(created_ago),
        "task_executions": list(tasks),
    }


def diagnose(root, settings=S, bounds=None):
    return stuck.diagnose({"root_workflow_execution": root}, NOW, settings, bounds)


class Known(stuck.Bounds):
    def __init__(self, timeout=None, learnt=None):
        self._timeout, self._learnt = timeout, learnt

    def task_timeout(self, workflow_name, task_name):
        return self._timeout

    def learnt(self, workflow_name, task_name):
        return self._learnt


# -- lost action ------------------------------------------------------------------


def test_a_running_action_with_fresh_heartbeats_is_fine_until_its_heartbeat_is_overdue():
    finding, wake = diagnose(workflow([task(actions=[action(beat_ago=20)])]))
    assert finding is None
    assert wake == pytest.approx(NOW - 20 + S.heartbeat_timeout)


def test_an_overdue_heartbeat_is_a_lost_action_since_the_last_heartbeat():
    finding, _ = diagnose(workflow([task(actions=[action(beat_ago=61)])]))
    assert finding.signature == stuck.LOST_ACTION
    assert finding.since == pytest.approx(NOW - 61)
    assert "no heartbeat for 61 s" in finding.reason
    assert finding.evidence["task"] == {"id": "t1", "name": "t1", "state": "RUNNING"}
    assert finding.evidence["action_executions"][0]["id"] == "a1"
    assert finding.evidence["action_executions"][0]["state"] == "RUNNING"


def test_an_action_no_executor_took_is_lost_only_after_unstarted_timeout():
    # Mistral's placeholder heartbeat: creation + first_heartbeat_timeout (an hour ahead).
    never = dict(action(created_ago=100), last_heartbeat=ts(100 - 3600))
    finding, wake = diagnose(workflow([task(actions=[never])]))
    assert finding is None and wake == pytest.approx(NOW - 100 + S.unstarted_timeout)
    never = dict(action(created_ago=301), last_heartbeat=ts(301 - 3600))
    finding, _ = diagnose(workflow([task(actions=[never])]))
    assert finding.signature == stuck.LOST_ACTION and "none picked it up" in finding.reason


def test_async_actions_are_not_judged_by_heartbeats():
    quiet = action(beat_ago=1000, name="std.async_noop")
    assert diagnose(workflow([task(actions=[quiet])])) == (None, None)


def test_an_action_past_its_tasks_timeout_is_lost():
    running = task(actions=[action(beat_ago=2)], created_ago=200)
    finding, _ = diagnose(workflow([running]), bounds=Known(timeout=100))
    assert finding.signature == stuck.LOST_ACTION and "past its task's timeout" in finding.reason
    assert finding.since == pytest.approx(NOW - 100)
    finding, wake = diagnose(workflow([running]), bounds=Known(timeout=150))
    assert finding is None and wake == pytest.approx(NOW - 200 + 150 + S.result_grace)


# -- lost result ------------------------------------------------------------------


def test_a_running_task_whose_actions_all_ended_is_a_lost_result_after_the_grace():
    done = action(state="SUCCESS", created_ago=100, updated_ago=61)
    finding, _ = diagnose(workflow([task(actions=[done])]))
    assert finding.signature == stuck.LOST_RESULT
    assert finding.since == pytest.approx(NOW - 61)
    done = action(state="SUCCESS", created_ago=100, updated_ago=30)
    finding, wake = diagnose(workflow([task(actions=[done])]))
    assert finding is None and wake == pytest.approx(NOW - 30 + S.result_grace)


def test_a_finished_sub_workflow_whose_task_stays_running_is_a_lost_result():
    child = workflow(
        [task(state="SUCCESS", updated_ago=90)], state="SUCCESS", id_="w2", name="child"
    )
    child["updated_at"] = ts(90)
    finding, _ = diagnose(workflow([task(subs=[child])]))
    assert finding.signature == stuck.LOST_RESULT
    assert "sub-workflow" in finding.reason
    assert finding.evidence["workflow_executions"] == [
        {"id": "w2", "name": "child", "state": "SUCCESS", "updated_at": ts(90)}
    ]


def test_a_task_with_one_action_still_running_has_no_lost_result():
    items = [action(state="SUCCESS", updated_ago=100, id_="a%d" % i) for i in range(299)]
    items.append(action(beat_ago=3, id_="a299"))
    assert diagnose(workflow([task(actions=items)]))[0] is None


# -- lost continuation --------------------------------------------------------------


def test_a_running_workflow_whose_tasks_all_ended_lost_its_continuation():
    ended = task(state="SUCCESS", actions=[action(state="SUCCESS", updated_ago=70)], updated_ago=70)
    finding, _ = diagnose(workflow([ended]))
    assert finding.signature == stuck.LOST_CONTINUATION
    assert "all its tasks have ended" in finding.reason
    assert finding.evidence["tasks"] == [{"id": "t1", "name": "t1", "state": "SUCCESS"}]
    ended = task(state="SUCCESS", updated_ago=10)
    finding, wake = diagnose(workflow([ended]))
    assert finding is None and wake == pytest.approx(NOW - 10 + S.continuation_grace)


def test_a_task_created_and_never_started_is_a_lost_continuation():
    first = task(state="SUCCESS", updated_ago=80, id_="t1")
    second = task(state="IDLE", name="t2", id_="t2", created_ago=80)
    finding, _ = diagnose(workflow([first, second]))
    assert finding.signature == stuck.LOST_CONTINUATION
    assert "t2 was created but never started" in finding.reason


@pytest.mark.parametrize("state", ["WAITING", "RUNNING_DELAYED", "DELAYED", "PAUSED"])
def test_waiting_or_delayed_tasks_are_not_a_lost_continuation(state):
    first = task(state="SUCCESS", updated_ago=500)
    join = task(state=state, name="join", id_="t2", created_ago=500)
    assert diagnose(workflow([first, join]))[0] is None


def test_paused_and_finished_workflows_are_never_stuck():
    ended = task(state="SUCCESS", updated_ago=1000)
    lost = task(actions=[action(beat_ago=1000)])
    for state in ("PAUSED", "SUCCESS", "ERROR"):
        assert diagnose(workflow([ended, lost], state=state)) == (None, None)


# -- no progress ----------------------------------------------------------------------


def test_no_progress_needs_a_bound():
    slow = task(actions=[action(beat_ago=2, created_ago=5000)], created_ago=5000)
    assert diagnose(workflow([slow]))[0] is None
    finding, _ = diagnose(workflow([slow]), stuck.Settings(no_progress_after=600))
    assert finding.signature == stuck.NO_PROGRESS and finding.evidence["bound_s"] == 600


def test_no_progress_uses_the_learnt_bound_or_the_smaller_of_both():
    slow = task(actions=[action(beat_ago=2, created_ago=400)], created_ago=400)
    finding, _ = diagnose(workflow([slow]), bounds=Known(learnt=300))
    assert finding.signature == stuck.NO_PROGRESS and finding.evidence["bound_s"] == 300
    finding, wake = diagnose(workflow([slow]), bounds=Known(learnt=500))
    assert finding is None and wake == pytest.approx(NOW - 400 + 500)
    finding, _ = diagnose(
        workflow([slow]), stuck.Settings(no_progress_after=350), bounds=Known(learnt=500)
    )
    assert finding.evidence["bound_s"] == 350


def test_the_most_specific_signature_wins():
    lost = task(actions=[action(beat_ago=200, created_ago=5000)], created_ago=5000)
    finding, _ = diagnose(workflow([lost]), stuck.Settings(no_progress_after=60))
    assert finding.signature == stuck.LOST_ACTION


def test_a_lost_action_deep_in_a_sub_workflow_names_that_sub_workflow():
    child = workflow([task(actions=[action(beat_ago=90)], id_="ct")], id_="w2", name="child")
    finding, _ = diagnose(workflow([task(subs=[child])]))
    assert finding.signature == stuck.LOST_ACTION
    assert finding.evidence["workflow_execution_id"] == "w2"
    assert finding.evidence["workflow_name"] == "child"
    assert finding.evidence["task"]["id"] == "ct"


# -- the screen and the record ----------------------------------------------------------


def record(**fields):
    base = {
        "id": "r1",
        "status": "running",
        "engine_state": "RUNNING",
        "created_at": NOW - 1000,
        "updated_at": NOW - 100,
        "last_event_at": None,
        "stuck": None,
        "stuck_probe_at": None,
    }
    base.update(fields)
    return base


def test_screen_asks_the_engine_only_about_quiet_running_executions():
    assert stuck.screen(record(), NOW, S)
    assert not stuck.screen(record(updated_at=NOW - 10), NOW, S)  # moved lately
    assert not stuck.screen(record(last_event_at=NOW - 10), NOW, S)  # a callback lately
    assert not stuck.screen(record(stuck_probe_at=NOW + 5), NOW, S)  # looked at lately
    for status, state in (("paused", "PAUSED"), ("pausing", "RUNNING"), ("succeeded", "SUCCESS")):
        assert not stuck.screen(record(status=status, engine_state=state), NOW, S)


def test_a_flagged_execution_that_moved_is_looked_at_again_at_once():
    flagged = {"signature": stuck.LOST_ACTION, "detected_at": NOW - 50}
    assert not stuck.screen(record(stuck=flagged, stuck_probe_at=NOW + 30), NOW, S)
    moved = record(stuck=flagged, stuck_probe_at=NOW + 30, updated_at=NOW - 1)
    assert stuck.screen(moved, NOW, S)


def test_a_repeated_finding_keeps_its_detection_time():
    finding, _ = diagnose(workflow([task(actions=[action(beat_ago=61)])]))
    first = stuck.record_value(finding, 2.0, NOW)
    assert first["since"] == pytest.approx(NOW - 61 - 2.0)  # engine clock 2 s ahead
    assert first["detected_at"] == NOW
    again = stuck.record_value(finding, 2.0, NOW + 30, previous=first)
    assert again["detected_at"] == NOW and again["since"] == first["since"]
