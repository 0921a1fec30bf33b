"""`run --timeout`: a timeout cancels the engine execution unless
`--on-timeout leave`, and `cancel` works on a `timeout` record (issue 15 #8)."""

import pytest

from st2bridge import control, errors, workflow
from st2bridge import status as st
from st2bridge.cli.main import build_parser
from st2bridge.concurrency import InlineExecutor
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store
from st2bridge.tracker.poller import Poller
from tests.support.fake_time import Clock

WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"


@pytest.fixture
def env(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    clock = Clock(1_800_000_000.0)
    engine = StubEngine(clock=clock)
    runner = Runner(engine, store, query_interval=5.0, clock=clock)
    poller = Poller(
        engine,
        store,
        InlineExecutor(10),
        owner="t1",
        query_interval=5.0,
        jitter_interval=0.0,
        backoff_base=1.0,
        backoff_max=60.0,
        clock=clock,
        rng=lambda: 0.5,
    )
    yield store, engine, clock, runner, poller
    store.close()


def run_past_timeout(env, **kw):
    store, engine, clock, runner, poller = env
    record = runner.start(workflow.parse(WF), "wf", {}, timeout=12, **kw)
    while clock.now < record["timeout_at"] + 1:
        clock.now = max(clock.now + 1, store.get_execution(record["id"])["next_poll_at"])
        poller.tick(clock.now)
    return store.get_execution(record["id"])


def test_a_timeout_cancels_the_engine_execution_by_default(env):
    store, engine, clock, runner, poller = env
    record = run_past_timeout(env)
    assert record["status"] == st.TIMEOUT
    assert record["error"].endswith("; the engine execution was canceled")
    assert engine.executions[record["engine_execution_id"]]["state"] == "CANCELLED"
    assert (
        "st2bridge: tracking timed out"
        in (engine.executions[record["engine_execution_id"]]["state_info"])
    )


def test_on_timeout_leave_leaves_it_running_and_cancel_then_works(env):
    store, engine, clock, runner, poller = env
    record = run_past_timeout(env, on_timeout="leave")
    assert record["status"] == st.TIMEOUT
    assert "left running (--on-timeout leave)" in record["error"]
    engine_id = record["engine_execution_id"]
    assert engine.executions[engine_id]["state"] == "RUNNING"
    # `cancel` on a timeout record: refused before (terminal), now it cancels.
    result = control.change_state(engine, store, record["id"], "cancel", clock=clock)
    assert (result.status, result.engine_state, result.changed) == (
        st.TIMEOUT,
        "CANCELLED",
        True,
    )
    assert engine.executions[engine_id]["state"] == "CANCELLED"
    after = store.get_execution(record["id"])
    assert after["status"] == st.TIMEOUT and after["engine_state"] == "CANCELLED"


def test_an_engine_down_at_the_timeout_is_asked_again(env):
    store, engine, clock, runner, poller = env
    record = runner.start(workflow.parse(WF), "wf", {}, timeout=12)
    clock.now = record["timeout_at"] + 1
    engine.fail_next = [errors.EngineUnavailable("cannot reach the engine")]
    poller.tick(clock.now)
    # Not ended: the engine was not asked to cancel it yet.
    assert store.get_execution(record["id"])["status"] == st.RUNNING
    clock.now = store.get_execution(record["id"])["next_poll_at"]
    poller.tick(clock.now)
    assert store.get_execution(record["id"])["status"] == st.TIMEOUT
    assert engine.executions[record["engine_execution_id"]]["state"] == "CANCELLED"


def test_a_timeout_after_the_engine_finished_says_so(env):
    store, engine, clock, runner, poller = env
    record = runner.start(workflow.parse(WF), "wf", {}, timeout=12)
    # The engine finished it; nobody has looked yet when the timeout passes.
    engine.executions[record["engine_execution_id"]]["state"] = "SUCCESS"
    reason = control.time_out(engine, store.get_execution(record["id"]))
    # As Mistral 23: cancelling a finished execution returns it unchanged.
    assert (
        reason == "tracking timed out after 12 s; the engine execution had ended already (SUCCESS)"
    )
    engine.fail_next = [errors.EngineBadRequest("set execution to CANCELLED: no (HTTP 400)", 400)]
    reason = control.time_out(engine, store.get_execution(record["id"]))
    assert reason.startswith("tracking timed out after 12 s; the engine refused to cancel it")


def test_run_takes_on_timeout():
    args = build_parser().parse_args(["run", "wf.yaml", "--timeout", "5"])
    assert args.on_timeout == "cancel"
    args = build_parser().parse_args(["run", "wf.yaml", "--on-timeout", "leave"])
    assert args.on_timeout == "leave"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "wf.yaml", "--on-timeout", "maybe"])
