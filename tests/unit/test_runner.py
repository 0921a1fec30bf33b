import pytest

from st2bridge import errors, workflow
from st2bridge import status as st
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store

WF = """version: '2.0'
wf:
  input: [x]
  tasks:
    t1:
      action: std.echo output=<% $.x %>
"""


@pytest.fixture
def store(tmp_path):
    s = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    yield s
    s.close()


@pytest.fixture
def engine():
    return StubEngine()


def make_runner(engine, store):
    clock = iter(range(1000, 100000)).__next__
    return Runner(engine, store, query_interval=5, clock=lambda: float(clock()))


def test_start_records_then_submits_with_its_own_id(engine, store):
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    stored = store.get_execution(record["id"])
    assert stored["status"] == st.RUNNING
    assert stored["tracked"] is True
    assert stored["engine_execution_id"] in engine.executions
    assert engine.executions[stored["engine_execution_id"]]["input"] == {"x": 1}
    assert engine.executions[stored["engine_execution_id"]]["params"]["env"] == {
        "st2bridge_execution_id": record["id"]
    }
    assert stored["next_poll_at"] == stored["created_at"] + 5


def test_register_create_unchanged_update(engine, store):
    runner = make_runner(engine, store)
    wf = workflow.parse(WF)
    assert runner.register(wf) == "created"
    assert runner.register(wf) == "unchanged"
    # Formatting alone is not a change.
    assert (
        runner.register(workflow.parse(WF.replace("input: [x]", "input:\n    - x"))) == "unchanged"
    )
    assert runner.register(workflow.parse(WF.replace("$.x", "$.x + 1"))) == "updated"
    assert engine.count("create_workflows") == 1 and engine.count("update_workflows") == 1


def test_register_mixed_file_registers_each_workflow(engine, store):
    runner = make_runner(engine, store)
    runner.register(workflow.parse(WF))
    two = workflow.parse(WF + "other:\n  tasks:\n    a:\n      action: std.noop\n")
    assert runner.register(two) == "updated"
    assert set(engine.workflows) == {("", "wf"), ("", "other")}


def test_definition_cache_skips_the_engine_until_it_expires(engine, store):
    now = [1000.0]
    runner = Runner(engine, store, definition_cache_seconds=60, clock=lambda: now[0])
    wf = workflow.parse(WF)
    assert runner.register(wf) == "created"
    now[0] += 59
    assert runner.register(wf) == "cached"
    runner.start(wf, "wf", {"x": 1})
    assert engine.count("get_workflow") == 1
    # A changed definition is never taken from the cache.
    changed = workflow.parse(WF.replace("$.x", "$.x + 1"))
    assert runner.register(changed) == "updated"
    assert runner.register(changed) == "cached"
    now[0] += 61
    assert runner.register(changed) == "unchanged"
    assert engine.count("get_workflow") == 3


def test_definition_deleted_in_the_engine_is_registered_again_at_submit(engine, store):
    runner = Runner(engine, store, definition_cache_seconds=60, clock=lambda: 1000.0)
    wf = workflow.parse(WF)
    runner.register(wf)
    del engine.workflows[("", "wf")]  # deleted behind the runner's back
    record = runner.start(wf, "wf", {"x": 1})
    assert store.get_execution(record["id"])["status"] == st.RUNNING
    assert ("", "wf") in engine.workflows
    assert list(engine.executions) == [record["engine_execution_id"]]


def test_cached_definition_rejected_twice_closes_the_record(engine, store):
    runner = Runner(engine, store, definition_cache_seconds=60, clock=lambda: 1000.0)
    wf = workflow.parse(WF)
    runner.register(wf)
    # the cached submit, the definition's read-back, the second submit
    engine.fail_next = [
        errors.EngineBadRequest("Invalid input [x]", 400),
        None,
        errors.EngineBadRequest("Invalid input [x]", 400),
    ]
    with pytest.raises(errors.InputError, match="rejected its input"):
        runner.start(wf, "wf", {"x": 1})
    (record,) = store.list_executions()
    assert record["status"] == st.FAILED and record["tracked"] is False
    assert engine.executions == {}


def test_unknown_input_records_nothing(engine, store):
    runner = make_runner(engine, store)
    with pytest.raises(errors.InputError, match="unknown input 'y'"):
        runner.start(workflow.parse(WF), "wf", {"x": 1, "y": 2})
    assert store.count_executions() == 0
    assert engine.executions == {}


def test_engine_rejection_closes_the_record(engine, store):
    runner = make_runner(engine, store)
    wf = workflow.parse(WF)
    runner.register(wf)
    engine.fail_next = [None, errors.EngineBadRequest("Invalid input [x]", 400)]
    with pytest.raises(errors.InputError, match="rejected its input: Invalid input"):
        runner.start(wf, "wf", {"x": 1})
    (record,) = store.list_executions()
    assert record["status"] == st.FAILED and record["tracked"] is False
    assert "rejected by the engine" in record["error"]


def test_unreachable_engine_leaves_it_requested_for_the_tracker(engine, store):
    runner = make_runner(engine, store)
    wf = workflow.parse(WF)
    runner.register(wf)
    engine.fail_next = [None, errors.EngineUnavailable("cannot reach the engine", None)]
    with pytest.raises(errors.EngineUnavailable, match="stays 'requested'"):
        runner.start(wf, "wf", {"x": 1})
    (record,) = store.list_executions()
    assert record["status"] == st.REQUESTED and record["tracked"] is True
    # Submitting again later uses the same engine id: one engine execution.
    runner.submit(record)
    runner.submit(record)
    assert list(engine.executions) == [record["engine_execution_id"]]


def test_wait_follows_to_the_end(engine, store):
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    eid = record["engine_execution_id"]
    seen = []
    steps = iter(
        [
            lambda: engine.add_task(eid, "t1", "RUNNING"),
            lambda: (
                engine.tasks[eid][0].update(state="SUCCESS"),
                engine.set_state(eid, "SUCCESS", output={"y": 1}),
            ),
        ]
    )

    def sleep(_):
        next(steps)()

    final = runner.wait(record["id"], on_progress=seen.append, sleep=sleep)
    assert final["status"] == st.SUCCEEDED
    assert final["output"] == {"y": 1}
    assert final["finished_by"] == "wait"
    assert [t["name"] for t in final["tasks"]] == ["t1"]
    assert seen and seen[-1]["tasks"][0]["status"] == st.RUNNING


def test_wait_keeps_the_sub_workflow_tasks_callbacks_added(engine, store):
    # A join with a sub-workflow branch: callbacks recorded the child's tasks;
    # --wait must not write the root's task list over them.
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    eid = record["engine_execution_id"]
    call = engine.add_task(eid, "call", "RUNNING", type="WORKFLOW")
    child = engine.add_sub(call["id"], "child")
    inner = engine.add_task(child, "inner", "SUCCESS")
    from st2bridge import taskview

    store.update_task(record["id"], None, dict(taskview.row(inner), workflow_name="child"))
    seen = []
    steps = iter(
        [
            lambda: (
                engine.set_task(call["id"], "SUCCESS"),
                engine.set_state(eid, "SUCCESS", output={}),
            )
        ]
    )
    final = runner.wait(record["id"], sleep=lambda _: next(steps)(), on_progress=seen.append)
    assert [t["name"] for t in seen[0]["tasks"]] == ["call", "inner"]
    assert [t["label"] for t in final["tasks"]] == ["call", "call > inner"]


def test_wait_follows_tasks_still_going_after_the_end(engine, store):
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    eid = record["engine_execution_id"]
    engine.add_task(eid, "quick", "SUCCESS")
    slow = engine.add_task(eid, "slow", "RUNNING")
    engine.set_state(eid, "SUCCESS", output={})
    rounds = iter([lambda: None, lambda: engine.set_task(slow["id"], "SUCCESS")])
    final = runner.wait(record["id"], sleep=lambda _: next(rounds)())
    assert final["status"] == st.SUCCEEDED
    assert [t["state"] for t in final["tasks"]] == ["SUCCESS", "SUCCESS"]


def test_wait_gives_up_following_tasks_after_settle_timeout(engine, store, caplog):
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    eid = record["engine_execution_id"]
    engine.add_task(eid, "slow", "RUNNING")
    engine.set_state(eid, "SUCCESS", output={})
    final = runner.wait(record["id"], sleep=lambda _: None, settle_timeout=20)
    assert final["status"] == st.SUCCEEDED and final["tasks"][0]["state"] == "RUNNING"
    assert "1 tasks still going in the engine" in caplog.text


def test_wait_never_records_a_malformed_answer(engine, store):
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    before = store.get_execution(record["id"])
    engine.malformed["get_execution"] = {"state": None}
    with pytest.raises(errors.EngineMalformed):
        runner.wait(record["id"], sleep=lambda _: None)
    assert store.get_execution(record["id"]) == before


def test_submit_records_when_the_engine_accepted_it(engine, store):
    runner = make_runner(engine, store)
    record = runner.start(workflow.parse(WF), "wf", {"x": 1})
    stored = store.get_execution(record["id"])
    assert stored["created_at"] < stored["submitted_at"]  # the bridge's own clock
    assert (
        stored["engine_created_at"]
        == engine.executions[stored["engine_execution_id"]]["created_at"]
    )
