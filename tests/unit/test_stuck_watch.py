"""The stuck watch inside the tracker's pass (st2bridge/tracker/stuckwatch.py):
what it costs, what it writes, when it clears. A fixed clock; no test sleeps."""

import logging
import time

import pytest

from st2bridge import errors, workflow
from st2bridge.concurrency import InlineExecutor
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store
from st2bridge.tracker import stuck
from st2bridge.tracker.poller import Poller
from st2bridge.tracker.stuckwatch import EngineBounds, StuckWatch, timeouts_of
from tests.support.fake_time import Clock

WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.sleep seconds=600\n"
T0 = 1_800_000_000.0
SETTINGS = stuck.Settings(probe_after=30, probe_interval=60, heartbeat_timeout=60)


def stamp(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


@pytest.fixture
def env(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    clock = Clock(T0)
    engine = StubEngine(clock=clock)
    runner = Runner(engine, store, query_interval=5.0, clock=clock)
    watch = StuckWatch(engine, store, SETTINGS, clock=clock, max_probes_per_second=100)
    poller = Poller(
        engine,
        store,
        InlineExecutor(10),
        owner="t1",
        query_interval=5.0,
        jitter_interval=0.0,
        verify_interval=10_000.0,
        clock=clock,
        rng=lambda: 0.0,
        submit=runner.submit,
        stuck=watch,
    )
    yield store, engine, clock, runner, poller, watch
    store.close()


def start(runner, engine, clock, n=1):
    records = [runner.start(workflow.parse(WF), "wf", {}) for _ in range(n)]
    clock.now += 5
    return records


def sleeping(engine, record, beat):
    """The engine's report: one task running std.sleep, last heartbeat at `beat`."""
    eid = record["engine_execution_id"]
    engine.reports[eid] = {
        "root_workflow_execution": {
            "id": eid,
            "name": "wf",
            "state": "RUNNING",
            "created_at": stamp(T0),
            "updated_at": stamp(T0),
            "task_executions": [
                {
                    "id": "task-" + eid,
                    "name": "t1",
                    "state": "RUNNING",
                    "created_at": stamp(T0),
                    "updated_at": stamp(T0),
                    "action_executions": [
                        {
                            "id": "act-" + eid,
                            "name": "std.sleep",
                            "state": "RUNNING",
                            "created_at": stamp(T0),
                            "updated_at": stamp(T0),
                            "last_heartbeat": stamp(beat),
                        }
                    ],
                    "workflow_executions": [],
                }
            ],
        }
    }


def run_until(poller, clock, until, step=5.0):
    while clock.now < until:
        poller.tick(clock.now)
        clock.now += step


def test_executions_that_move_cost_no_engine_request(env):
    store, engine, clock, runner, poller, watch = env
    records = start(runner, engine, clock, n=6)  # a batch: one listing
    for _ in range(10):
        for r in records:  # a callback or a poll saw each move within probe_after
            store.update_execution(r["id"], {"updated_at": clock.now})
        poller.tick(clock.now)
        clock.now += 5
    assert engine.count("execution_tree") == 0 and watch.probes == 0
    assert all(store.get_execution(r["id"])["stuck"] is None for r in records)


def test_a_quiet_execution_is_looked_at_once_then_when_a_heartbeat_would_be_overdue(env):
    store, engine, clock, runner, poller, watch = env
    (record,) = start(runner, engine, clock)
    sleeping(engine, record, beat=T0 + 25)
    run_until(poller, clock, T0 + 40)  # quiet since T0: a suspect from T0 + 30
    assert engine.count("execution_tree") == 1
    assert store.get_execution(record["id"])["stuck_probe_at"] == pytest.approx(T0 + 25 + 60)
    run_until(poller, clock, T0 + 80)
    assert engine.count("execution_tree") == 1  # nothing could fire before T0 + 85
    sleeping(engine, record, beat=T0 + 82)  # the executor is alive: beats again
    run_until(poller, clock, T0 + 100)
    assert engine.count("execution_tree") == 2
    assert store.get_execution(record["id"])["stuck"] is None


def test_a_lost_action_is_flagged_on_the_record_and_logged(env, caplog):
    store, engine, clock, runner, poller, watch = env
    (record,) = start(runner, engine, clock)
    sleeping(engine, record, beat=T0 + 10)  # then the executor died
    caplog.set_level(logging.WARNING, "st2bridge.tracker.stuckwatch")
    run_until(poller, clock, T0 + 75)
    flagged = store.get_execution(record["id"])["stuck"]
    assert flagged["signature"] == stuck.LOST_ACTION
    assert flagged["since"] == pytest.approx(T0 + 10)
    assert flagged["detected_at"] == pytest.approx(T0 + 70)  # the look due at beat + 60
    assert (
        flagged["evidence"]["action_executions"][0]["id"] == "act-" + record["engine_execution_id"]
    )
    assert "st2bridge execution recover %s" % record["id"] in caplog.text
    assert store.count_stuck() == {"lost_action": 1}
    # The record stays running: stuck is a mark, not a status.
    assert store.get_execution(record["id"])["status"] == "running"
    # Looked at again every probe_interval while flagged, detection time kept.
    run_until(poller, clock, T0 + 140)
    again = store.get_execution(record["id"])["stuck"]
    assert again["detected_at"] == flagged["detected_at"]
    assert watch.flagged == 1


def test_the_mark_clears_when_the_engine_moves(env):
    store, engine, clock, runner, poller, watch = env
    (record,) = start(runner, engine, clock)
    sleeping(engine, record, beat=T0 + 10)
    run_until(poller, clock, T0 + 75)
    assert store.get_execution(record["id"])["stuck"]
    sleeping(engine, record, beat=clock.now)  # the executor came back
    engine.set_state(record["engine_execution_id"], "RUNNING")  # a new updated_at
    poller.tick(clock.now)
    assert store.get_execution(record["id"])["stuck"] is None


def test_an_ended_execution_is_not_stuck(env):
    store, engine, clock, runner, poller, watch = env
    (record,) = start(runner, engine, clock)
    sleeping(engine, record, beat=T0 + 10)
    run_until(poller, clock, T0 + 75)
    assert store.get_execution(record["id"])["stuck"]
    engine.set_state(
        record["engine_execution_id"], "ERROR", state_info="Heartbeat wasn't received."
    )
    poller.tick(clock.now)
    ended = store.get_execution(record["id"])
    assert ended["status"] == "failed" and ended["stuck"] is None
    assert store.count_stuck() == {}


def test_a_batch_flags_each_suspect_with_one_look_each(env):
    store, engine, clock, runner, poller, watch = env
    records = start(runner, engine, clock, n=5)
    for r in records[:2]:
        sleeping(engine, r, beat=T0 + 1)  # lost
    for r in records[2:]:
        sleeping(engine, r, beat=T0 + 30)  # alive: its next heartbeat is not due yet
    run_until(poller, clock, T0 + 70)
    flagged = [store.get_execution(r["id"])["stuck"] for r in records]
    assert [bool(f) for f in flagged] == [True, True, False, False, False]
    # One look at each once quiet; the lost two once more when their heartbeat was overdue.
    assert engine.count("execution_tree") == 5 + 2


def test_engine_errors_while_looking_do_not_disturb_tracking(env):
    store, engine, clock, runner, poller, watch = env
    (record,) = start(runner, engine, clock)
    real = engine.execution_tree

    def broken(execution_id):
        raise errors.EngineUnavailable("connection refused")

    engine.execution_tree = broken
    run_until(poller, clock, T0 + 40)
    after = store.get_execution(record["id"])
    assert after["status"] == "running" and after["stuck"] is None
    assert after["stuck_probe_at"] == pytest.approx(T0 + 35 + 60)  # looked at again later
    engine.execution_tree = real


def test_a_bug_in_the_watch_never_stops_tracking(env, caplog):
    store, engine, clock, runner, poller, watch = env
    (record,) = start(runner, engine, clock)
    engine.reports[record["engine_execution_id"]] = {"root_workflow_execution": "garbage"}
    run_until(poller, clock, T0 + 40)
    assert "unexpected error looking at execution" in caplog.text
    engine.set_state(record["engine_execution_id"], "SUCCESS")
    poller.tick(clock.now)
    assert store.get_execution(record["id"])["status"] == "succeeded"


def test_looks_are_rate_limited(env):
    store, engine, clock, runner, poller, watch = env
    watch.rate, watch._tokens = 2.0, 2.0
    records = start(runner, engine, clock, n=6)
    for r in records:
        sleeping(engine, r, beat=T0 + 30)
    clock.now = T0 + 31
    poller.tick(clock.now)
    assert engine.count("execution_tree") == 2  # the others wait for a later pass


def test_task_timeouts_come_from_the_definition():
    text = (
        "version: '2.0'\nwf:\n  task-defaults:\n    timeout: 30\n  tasks:\n"
        "    a:\n      action: std.noop\n      timeout: 5\n    b:\n      action: std.noop\n"
        "    c:\n      action: std.noop\n      timeout: <% $.t %>\n"
    )
    assert timeouts_of(text, "wf") == {"a": 5.0, "b": 30.0}
    assert timeouts_of("not: [yaml", "wf") == {}


def test_learnt_bounds_come_from_succeeded_runs(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "h.db"))
    from st2bridge.store.base import new_execution_record

    for i in range(6):
        store.create_execution(
            new_execution_record(
                id="r%d" % i,
                workflow_name="wf",
                engine_execution_id="e%d" % i,
                status="succeeded",
                created_at=T0 + i,
                tasks=[
                    {
                        "name": "t1",
                        "state": "SUCCESS",
                        "started_at": stamp(T0),
                        "finished_at": stamp(T0 + 20 + 10 * i),  # 20 .. 70 s
                    }
                ],
            )
        )

    class Conf:
        learn_from_history, history_runs, history_min_runs = True, 50, 5
        history_factor, history_floor = 3.0, 60.0

    bounds = EngineBounds(StubEngine(), store, Conf(), clock=lambda: T0)
    assert bounds.learnt("wf", "t1") == pytest.approx(3 * 70)
    assert bounds.learnt("wf", "other") is None
    Conf.history_min_runs = 7
    assert EngineBounds(StubEngine(), store, Conf(), clock=lambda: T0).learnt("wf", "t1") is None
    store.close()


def test_the_watch_follows_the_stuck_options(tmp_path):
    from st2bridge import config

    conf_file = tmp_path / "bridge.conf"
    conf_file.write_text(
        "[stuck]\nheartbeat_timeout = 45\nresult_grace = 20\nasync_actions = my.async\n"
        "max_probes_per_second = 3\n"
    )
    conf = config.load(["--config-file", str(conf_file)])
    watch = StuckWatch.from_config(conf, StubEngine(), None)
    assert watch.settings.heartbeat_timeout == 45 and watch.settings.result_grace == 20
    assert watch.settings.continuation_grace == 60  # a default
    assert watch.settings.async_actions == ("my.async",) and watch.rate == 3
    conf_file.write_text("[stuck]\nenabled = false\n")
    assert (
        StuckWatch.from_config(config.load(["--config-file", str(conf_file)]), None, None) is None
    )
    conf_file.write_text("[stuck]\nheartbeat_timeout = -1\n")
    with pytest.raises(errors.ConfigError, match=r"\[stuck\] heartbeat_timeout"):
        config.load(["--config-file", str(conf_file)])
