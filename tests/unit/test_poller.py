"""The tracker's pass, driven with a fixed clock: no test sleeps."""

import time

import pytest

from st2bridge import errors, workflow
from st2bridge import status as st
from st2bridge.concurrency import InlineExecutor
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner
from st2bridge.store import open_store
from st2bridge.tracker.poller import Poller
from tests.support.fake_time import Clock

WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"
T0 = 1_800_000_000.0


@pytest.fixture
def env(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    clock = Clock(T0)
    engine = StubEngine(clock=clock)
    runner = Runner(engine, store, query_interval=5.0, clock=clock)
    poller = Poller(
        engine,
        store,
        InlineExecutor(10),
        owner="t1",
        query_interval=5.0,
        jitter_interval=0.5,
        backoff_base=1.0,
        backoff_max=60.0,
        verify_interval=300.0,
        clock=clock,
        rng=lambda: 0.5,
        submit=runner.submit,
    )
    yield store, engine, clock, runner, poller
    store.close()


def start(runner, clock, **kw):
    return runner.start(workflow.parse(WF), "wf", {}, **kw)


def test_nothing_tracked_sleeps_a_full_interval(env):
    store, engine, clock, runner, poller = env
    assert poller.tick(clock.now) == 5.0
    assert engine.calls == []


def test_not_due_yet_sleeps_until_due(env):
    store, engine, clock, runner, poller = env
    start(runner, clock)
    engine.calls.clear()
    assert poller.tick(clock.now + 1) == pytest.approx(4.0)
    assert engine.calls == []


def test_poll_spacing_and_jitter(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    clock.now += 5
    wait = poller.tick(clock.now)
    # Polled once; next due = now + interval + rng * jitter = now + 5.25.
    assert engine.count("get_execution") == 1
    assert store.get_execution(record["id"])["next_poll_at"] == pytest.approx(clock.now + 5.25)
    assert wait == pytest.approx(5.25)
    # Jitter stays within [0, jitter_interval].
    for r in (0.0, 0.999):
        poller.rng = lambda r=r: r
        assert clock.now + 5 <= poller.next_poll_at(clock.now) <= clock.now + 5.5


def test_light_query_then_tasks_only_on_change(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    eid = record["engine_execution_id"]
    engine.add_task(eid, "t1", "RUNNING")
    clock.now += 5
    poller.tick(clock.now)
    # First poll sees RUNNING at the submit's updated_at: unchanged, no task list.
    assert engine.count("list_tasks") == 0
    light = [c for c in engine.calls if c[0] == "get_execution"]
    assert light[0][2] == ("id", "state", "state_info", "updated_at")
    engine.set_state(eid, "RUNNING")  # updated_at moves
    clock.now += 6
    poller.tick(clock.now)
    assert engine.count("list_tasks") == 1
    assert store.get_execution(record["id"])["tasks"][0]["status"] == st.RUNNING


def test_terminal_state_writes_output_once(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    eid = record["engine_execution_id"]
    engine.add_task(eid, "t1", "SUCCESS")
    engine.set_state(eid, "SUCCESS", output={"answer": 42})
    clock.now += 5
    assert poller.tick(clock.now) == 5.0  # nothing left to track
    final = store.get_execution(record["id"])
    assert final["status"] == st.SUCCEEDED and final["output"] == {"answer": 42}
    assert final["finished_by"] == "poll" and final["lease_owner"] is None
    assert final["tasks"][0]["name"] == "t1"
    # A late second writer does not overwrite the final record.
    engine.set_state(eid, "ERROR", state_info="late")
    assert poller.poll(dict(record)) is None
    assert store.get_execution(record["id"])["status"] == st.SUCCEEDED


def test_failed_execution_keeps_engine_error(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    engine.set_state(
        record["engine_execution_id"], "ERROR", state_info="Failure caused by error in tasks: t1"
    )
    clock.now += 5
    poller.tick(clock.now)
    final = store.get_execution(record["id"])
    assert final["status"] == st.FAILED
    assert final["error"] == "Failure caused by error in tasks: t1"


def test_engine_errors_back_off_per_execution(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    delays = []
    for _ in range(8):
        clock.now = store.get_execution(record["id"])["next_poll_at"]
        engine.fail_next = [errors.EngineUnavailable("connection refused")]
        poller.tick(clock.now)
        rec = store.get_execution(record["id"])
        delays.append(rec["next_poll_at"] - clock.now)
    # rng = 0.5 -> 3/4 of min(cap, base * 2**(n-1)): 0.75, 1.5, 3, 6, ... capped at 45.
    assert delays == pytest.approx([0.75, 1.5, 3, 6, 12, 24, 45, 45])
    assert rec["poll_failures"] == 8 and rec["status"] == st.RUNNING
    # Recovery resets the count and returns to the normal interval.
    clock.now = rec["next_poll_at"]
    poller.tick(clock.now)
    rec = store.get_execution(record["id"])
    assert rec["poll_failures"] == 0
    assert rec["next_poll_at"] == pytest.approx(clock.now + 5.25)


def test_404_is_confirmed_before_abandoning(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    del engine.executions[record["engine_execution_id"]]
    for expected in (1, 2):
        clock.now = store.get_execution(record["id"])["next_poll_at"]
        poller.tick(clock.now)
        rec = store.get_execution(record["id"])
        assert rec["status"] == st.RUNNING and rec["not_found_count"] == expected
    clock.now = rec["next_poll_at"]
    poller.tick(clock.now)
    rec = store.get_execution(record["id"])
    assert rec["status"] == st.ABANDONED
    assert "404 on 3 polls" in rec["error"]


def test_requested_but_never_received_is_submitted(env):
    store, engine, clock, runner, poller = env
    runner.register(workflow.parse(WF))
    # get_workflow answers (unchanged), then the submit's connection fails.
    engine.fail_next = [None, errors.EngineUnavailable("connection refused")]
    with pytest.raises(errors.EngineUnavailable):
        runner.start(workflow.parse(WF), "wf", {})
    (record,) = store.list_executions()
    assert record["engine_execution_id"] not in engine.executions
    clock.now = record["next_poll_at"]
    poller.tick(clock.now)
    assert record["engine_execution_id"] in engine.executions
    assert store.get_execution(record["id"])["status"] == st.RUNNING


def test_timeout_ends_tracking(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock, timeout=12)
    for _ in range(3):
        clock.now = store.get_execution(record["id"])["next_poll_at"]
        poller.tick(clock.now)
    rec = store.get_execution(record["id"])
    assert rec["status"] == st.TIMEOUT
    assert rec["error"] == "tracking timed out after 12 s; the engine execution was canceled"


def test_two_pollers_never_take_the_same_execution(env):
    store, engine, clock, runner, poller = env
    for _ in range(6):
        start(runner, clock)
    clock.now += 5
    taken = {"a": [], "b": []}

    class Recording(InlineExecutor):
        def __init__(self, name):
            super().__init__(3)
            self.name = name

        def submit(self, fn, record):
            taken[self.name].append(record["id"])  # held, not polled: leases stay

    for name in taken:
        Poller(engine, store, Recording(name), owner=name, query_interval=5.0, batch_size=3).tick(
            clock.now
        )
    assert len(taken["a"]) == 3 and len(taken["b"]) == 3
    assert not set(taken["a"]) & set(taken["b"])


# -- batches: one listing checks many executions --------------------------------


def start_many(runner, clock, n):
    wf = workflow.parse(WF)
    return [runner.start(wf, "wf", {}) for _ in range(n)]


def test_a_batch_is_checked_with_one_listing(env):
    store, engine, clock, runner, poller = env
    records = start_many(runner, clock, 10)
    engine.calls.clear()
    clock.now += 5
    poller.tick(clock.now)
    assert engine.count("list_executions") == 1
    assert engine.count("get_execution") == 0 and engine.count("list_tasks") == 0
    # The listing asked for what changed since the batch was last known (minus overlap).
    (call,) = [c for c in engine.calls if c[0] == "list_executions"]
    assert call[1] == "gte:" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 - 3))
    assert poller.stats.polls == 10
    for r in records:
        got = store.get_execution(r["id"])
        assert got["synced_at"] == clock.now and got["lease_owner"] is None
        assert got["next_poll_at"] == pytest.approx(clock.now + 5.25)


def test_a_batch_fetches_more_only_for_what_changed(env):
    store, engine, clock, runner, poller = env
    records = start_many(runner, clock, 6)
    clock.now += 5
    done = records[2]["engine_execution_id"]
    engine.set_state(done, "SUCCESS", output={"n": 2})
    engine.calls.clear()
    poller.tick(clock.now)
    # One listing, then output and tasks of the one that finished: 3 requests for 6 executions.
    assert [c[0] for c in engine.calls] == ["list_executions", "get_execution", "list_tasks"]
    assert store.get_execution(records[2]["id"])["status"] == st.SUCCEEDED
    assert store.count_executions(st.RUNNING) == 5


def test_batches_of_one_round_share_one_listing_window(env):
    """The first round after many executions started: the first batch lists
    from their start, the next ones only what changed since that listing
    (listed batch by batch, the round cost N^2/1000 rows)."""
    store, engine, clock, runner, poller = env
    poller.batch_size = 4
    records = start_many(runner, clock, 12)
    engine.calls.clear()
    clock.now += 5
    for _ in range(3):
        poller.tick(clock.now)
        clock.now += 1
    listings = [c[1] for c in engine.calls if c[0] == "list_executions"]
    assert len(listings) == 3
    assert listings[0] == "gte:" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 - 3))
    # Later batches: from the previous listing's start minus the overlap...
    assert listings[1] == "gte:" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 + 5 - 3))
    # ...but an empty listing proves nothing: the window stays where rows were.
    assert listings[2] == "gte:" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 + 5 - 3))
    synced = [store.get_execution(r["id"])["synced_at"] for r in records]
    assert synced.count(T0 + 5) == 4 and synced.count(None) == 8


def test_a_shared_listing_older_than_the_record_is_not_applied(env):
    """Batches within a fifth of an interval share a listing; one that started
    before a callback recorded a newer state must not write the older one."""
    store, engine, clock, runner, poller = env
    poller.batch_size = 4
    records = start_many(runner, clock, 8)
    clock.now += 5
    poller.tick(clock.now)  # the first batch: lists at T0 + 5
    later = next(r for r in records if store.get_execution(r["id"])["synced_at"] is None)
    clock.now += 0.5
    engine.set_state(later["engine_execution_id"], "PAUSED")
    newer = engine.get_execution(later["engine_execution_id"])
    # As a callback records it, after that listing started.
    store.update_execution(
        later["id"], {"engine_state": "PAUSED", "engine_updated_at": newer["updated_at"]}
    )
    engine.calls.clear()
    poller.tick(clock.now)  # the second batch, answered from the shared listing
    assert engine.count("list_executions") == 0
    assert engine.count("get_execution") == 1  # its own GET, not the older row
    assert store.get_execution(later["id"])["engine_state"] == "PAUSED"


def test_a_failed_listing_backs_off_the_whole_batch(env):
    store, engine, clock, runner, poller = env
    records = start_many(runner, clock, 5)
    clock.now += 5
    engine.fail_next = [errors.EngineUnavailable("connection refused")]
    poller.tick(clock.now)
    for r in records:
        got = store.get_execution(r["id"])
        assert got["poll_failures"] == 1 and got["status"] == st.RUNNING
        assert got["next_poll_at"] == pytest.approx(clock.now + 0.75)
        assert got["lease_owner"] is None
    # Back again: the next listing resets the failures.
    clock.now += 1
    poller.tick(clock.now)
    assert all(store.get_execution(r["id"])["poll_failures"] == 0 for r in records)


def test_small_batches_and_stale_verification_use_own_queries(env):
    store, engine, clock, runner, poller = env
    start_many(runner, clock, 3)  # fewer than SMALL_BATCH
    clock.now += 5
    engine.calls.clear()
    poller.tick(clock.now)
    assert engine.count("list_executions") == 0 and engine.count("get_execution") == 3
    start_many(runner, clock, 5)
    clock.now += 301  # past verify_interval for all
    engine.calls.clear()
    poller.tick(clock.now)
    assert engine.count("list_executions") == 0 and engine.count("get_execution") == 8
    clock.now += 6  # verified now: batched again
    engine.calls.clear()
    poller.tick(clock.now)
    assert engine.count("list_executions") == 1 and engine.count("get_execution") == 0


def test_lateness_is_measured_against_the_due_time(env):
    store, engine, clock, runner, poller = env
    start_many(runner, clock, 4)
    clock.now += 5.5  # due at +5: half a second late
    poller.tick(clock.now)
    lateness = poller.stats.take_lateness()
    assert lateness["count"] == 4 and lateness["p50"] == 500.0 and lateness["max"] == 500.0
    assert poller.stats.take_lateness()["count"] == 0


def test_batch_window_groups_executions_due_close_together(env):
    store, engine, clock, runner, poller = env
    poller.batch_window = 0.25
    first = start_many(runner, clock, 2)
    clock.now += 0.1
    second = start_many(runner, clock, 3)  # due 0.1 s after the first ones
    assert poller.tick(clock.now) == pytest.approx(4.9 + 0.25)
    clock.now += 4.9 + 0.25
    engine.calls.clear()
    poller.tick(clock.now)
    # All five were claimed together and checked with one listing.
    assert engine.count("list_executions") == 1 and engine.count("get_execution") == 0
    assert all(store.get_execution(r["id"])["synced_at"] == clock.now for r in first + second)


def test_a_late_check_keeps_the_execution_phase(env):
    store, engine, clock, runner, poller = env
    records = start_many(runner, clock, 4)
    due = store.get_execution(records[0]["id"])["next_poll_at"]
    clock.now = due + 0.75  # checked late
    poller.tick(clock.now)
    # Next due one interval (+ jitter 0.25) after the previous due time, not after the check.
    assert store.get_execution(records[0]["id"])["next_poll_at"] == pytest.approx(due + 5.25)
    clock.now = due + 5.25 + 9  # more than an interval late: rebase
    poller.tick(clock.now)
    assert store.get_execution(records[0]["id"])["next_poll_at"] == pytest.approx(clock.now + 5.25)


# -- a lying engine: every answer is checked before it changes a record -------------


def test_an_empty_answer_never_turns_requested_into_running(env):
    store, engine, clock, runner, poller = env
    runner.register(workflow.parse(WF))
    engine.fail_next = [None, errors.EngineUnavailable("connection refused")]
    with pytest.raises(errors.EngineUnavailable):
        runner.start(workflow.parse(WF), "wf", {})
    (record,) = store.list_executions()
    engine.malformed["get_execution"] = {}  # `200 {}`
    for failures in (1, 2, 3, 4):
        clock.now = store.get_execution(record["id"])["next_poll_at"]
        poller.tick(clock.now)
        got = store.get_execution(record["id"])
        assert got["status"] == st.REQUESTED and got["poll_failures"] == failures
        assert got["engine_state"] is None and got["not_found_count"] == 0
    assert engine.count("start_execution") == 1  # never re-submitted on a bad answer
    # A sane engine again: its 404 makes the tracker submit it.
    del engine.malformed["get_execution"]
    clock.now = store.get_execution(record["id"])["next_poll_at"]
    poller.tick(clock.now)
    assert store.get_execution(record["id"])["status"] == st.RUNNING


def test_a_malformed_listing_backs_off_and_keeps_the_window(env):
    store, engine, clock, runner, poller = env
    records = start_many(runner, clock, 5)
    clock.now += 5
    engine.malformed["list_executions"] = [{"id": records[0]["engine_execution_id"]}]
    poller.tick(clock.now)
    for r in records:
        got = store.get_execution(r["id"])
        assert got["poll_failures"] == 1 and got["synced_at"] is None
        assert got["status"] == st.RUNNING and got["engine_state"] == "RUNNING"


def test_an_empty_listing_does_not_move_the_window(env):
    store, engine, clock, runner, poller = env
    records = start_many(runner, clock, 5)
    clock.now += 5
    engine.malformed["list_executions"] = []
    poller.tick(clock.now)
    got = [store.get_execution(r["id"]) for r in records]
    assert all(g["synced_at"] is None and g["poll_failures"] == 0 for g in got)
    assert all(g["next_poll_at"] == pytest.approx(clock.now + 5.25) for g in got)
    # The next listing reaches back to where the batch was last in sync.
    del engine.malformed["list_executions"]
    engine.calls.clear()
    clock.now += 5.25
    poller.tick(clock.now)
    (call,) = [c for c in engine.calls if c[0] == "list_executions"]
    assert call[1] == "gte:" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 - 3))


# -- the task view in poll mode -------------------------------------------------------


def test_poll_mode_records_sub_workflow_tasks_labelled(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    eid = record["engine_execution_id"]
    deploy = engine.add_task(eid, "deploy", "RUNNING", type="WORKFLOW", with_items=2)
    subs = [engine.add_sub(deploy["id"], "per_host", i, {"host": "h%d" % i}) for i in (0, 1)]
    for sub in subs:
        engine.add_task(sub, "migrate", "RUNNING")
    clock.now += 5
    engine.set_state(eid, "RUNNING")  # moved: the poller reads the task view
    poller.tick(clock.now)
    labels = [t["label"] for t in store.get_execution(record["id"])["tasks"]]
    assert labels == ["deploy", "deploy[0 host=h0] > migrate", "deploy[1 host=h1] > migrate"]
    for sub in subs:
        engine.set_task(sub + "-migrate", "ERROR")
    engine.set_task(deploy["id"], "ERROR")
    engine.set_state(eid, "ERROR", state_info="deploy failed")
    clock.now = store.get_execution(record["id"])["next_poll_at"]
    poller.tick(clock.now)
    final = store.get_execution(record["id"])
    assert final["status"] == st.FAILED
    assert [(t["label"], t["state"]) for t in final["tasks"]] == [
        ("deploy", "ERROR"),
        ("deploy[0 host=h0] > migrate", "ERROR"),
        ("deploy[1 host=h1] > migrate", "ERROR"),
    ]


def test_tasks_still_going_after_the_end_are_followed_until_they_end(env):
    store, engine, clock, runner, poller = env
    record = start(runner, clock)
    eid = record["engine_execution_id"]
    engine.add_task(eid, "quick", "SUCCESS")
    slow = engine.add_task(eid, "slow", "RUNNING")
    engine.set_state(eid, "SUCCESS", output={})  # `succeed` while `slow` runs
    clock.now += 5
    assert poller.tick(clock.now) == pytest.approx(1.0)  # the follow-up is due in 1 s
    final = store.get_execution(record["id"])
    assert final["status"] == st.SUCCEEDED
    assert [t["state"] for t in final["tasks"]] == ["SUCCESS", "RUNNING"]
    clock.now += 1
    poller.tick(clock.now)  # still running: looked at again 2 s later
    assert store.get_execution(record["id"])["tasks"][1]["state"] == "RUNNING"
    engine.set_task(slow["id"], "SUCCESS")
    clock.now += 2
    assert poller.tick(clock.now) == 5.0  # done: nothing left to follow
    after = store.get_execution(record["id"])
    assert [t["state"] for t in after["tasks"]] == ["SUCCESS", "SUCCESS"]
    assert after["ended_at"] == final["ended_at"] and after["status"] == st.SUCCEEDED


# -- callback mode: polling is only the safety net ------------------------------------


def test_callback_mode_checks_only_executions_whose_tracker_is_gone(tmp_path):
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    clock = Clock(T0)
    engine = StubEngine(clock=clock)
    runner = Runner(
        engine,
        store,
        mode="callback",
        callback_url="http://127.0.0.1:9",
        stale_after=30,
        clock=clock,
    )
    poller = Poller(
        engine,
        store,
        InlineExecutor(10),
        owner="me",
        mode="callback",
        stale_after=30,
        heartbeat_interval=5,
        clock=clock,
        rng=lambda: 0.5,
    )
    alive, dead = ("tracker-alive", T0 + 28), ("tracker-dead", T0 - 100)
    for service_id, beat in (alive, dead):
        store.register_service(
            {"id": service_id, "name": "st2bridge-resultstracker", "heartbeat_at": beat}
        )
    records = {}
    for owner in ("tracker-alive", "tracker-dead", None, "me"):
        record = runner.start(workflow.parse(WF), "wf", {})
        store.update_execution(record["id"], {"callback_owner": owner})
        records[owner] = record
    engine.calls.clear()
    clock.now += 29
    poller.tick(clock.now)
    assert engine.calls == []  # nothing is due before stale_after
    clock.now += 1
    poller.tick(clock.now)
    checked = {c[1] for c in engine.calls if c[0] == "get_execution"}
    assert checked == {records[o]["engine_execution_id"] for o in ("tracker-dead", None)}
    for owner in records:  # checked or not, looked at again stale_after later
        got = store.get_execution(records[owner]["id"])
        assert got["next_poll_at"] == pytest.approx(clock.now + 30) and got["lease_owner"] is None
    store.close()


def test_a_pass_through_each_backends_pool_finishes_every_execution(tmp_path, backend):
    """The daemon's shape under each backend: the pass hands checks (single and
    batched) to the backend's pool and the loop waits for them; every execution
    ends once, with its output, whatever order the workers ran in."""
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))  # the backend's lock
    clock = Clock(T0)
    engine = StubEngine(clock=clock)
    runner = Runner(engine, store, query_interval=5.0, clock=clock)
    pool = backend.executor(8)
    poller = Poller(
        engine,
        store,
        pool,
        owner="t1",
        query_interval=5.0,
        jitter_interval=0.5,
        backoff_base=1.0,
        backoff_max=60.0,
        verify_interval=300.0,
        clock=clock,
        rng=lambda: 0.5,
        submit=runner.submit,
    )
    records = [start(runner, clock) for _ in range(30)]
    for i, record in enumerate(records):
        engine.set_state(record["engine_execution_id"], "SUCCESS", output={"i": i})
    for _ in range(4):  # a first pass may verify some on their own: a few passes
        clock.now += 6
        poller.tick(clock.now)
        assert pool.wait(10), "checks still running after 10 s"
    ended = [store.get_execution(r["id"]) for r in records]
    assert [e["status"] for e in ended] == [st.SUCCEEDED] * 30
    assert [e["output"] for e in ended] == [{"i": i} for i in range(30)]
    assert all(e["lease_owner"] is None for e in ended)
    assert poller.stats.polls >= 30
    store.close()
