"""A repeated submit that the engine answers with an execution that has ended already (the first
submit got through late, e.g. held up by a RabbitMQ restart, and the tracker submitted the
`requested` record again): the record must end with the engine's output, not with a bare final
status that nothing would ever complete (found by tests/faults/campaign.py's rabbit fault)."""

import calendar

from st2bridge import errors, workflow
from st2bridge import status as st
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store

WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"
T0 = float(calendar.timegm((2026, 11, 21, 12, 0, 0)))


def setup(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    engine = StubEngine(clock=lambda: T0)
    runner = Runner(engine, store, mode="poll", clock=lambda: T0)
    record = runner.start(workflow.parse(WF), "wf", {})
    store.update_execution(record["id"], {"status": st.REQUESTED})  # as if the answer was lost
    engine.set_state(record["engine_execution_id"], "SUCCESS", output={"x": 1})
    engine.add_task(record["engine_execution_id"], "t1", "SUCCESS")
    return store, engine, runner, store.get_execution(record["id"])


def test_resubmit_of_an_ended_execution_records_its_output(tmp_path):
    store, engine, runner, record = setup(tmp_path)
    returned = runner.submit(record)
    final = store.get_execution(record["id"])
    assert (final["status"], final["output"], final["finished_by"]) == (
        st.SUCCEEDED,
        {"x": 1},
        "submit",
    )
    assert [t["name"] for t in final["tasks"]] == ["t1"] and final["ended_at"] is not None
    assert returned["status"] == st.SUCCEEDED
    store.close()


def test_resubmit_of_an_ended_execution_whose_result_fetch_fails_stays_active(tmp_path):
    store, engine, runner, record = setup(tmp_path)
    engine.fail_next = [
        None,
        errors.EngineUnavailable("connection refused"),
    ]  # submit ok, fetch fails
    runner.submit(record)
    assert store.get_execution(record["id"])["status"] == st.REQUESTED  # the tracker finishes it
    store.close()
