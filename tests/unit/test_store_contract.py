"""The Store contract (st2bridge/store/base.py), run against every backend.

Backends: SQLite (a file under tmp_path), mongomock, and a real MongoDB when
ST2BRIDGE_TEST_MONGO_URL is set (one database per test, dropped after).
"""

import os
import random
import threading
import time
import uuid

import pytest

from st2bridge import status as st
from st2bridge.errors import Conflict, NotFound, StoreError, StoreUnavailable, StoreVersionMismatch
from st2bridge.store.base import EXECUTION_FIELDS, Store, new_execution_record

MONGO_URL = os.environ.get("ST2BRIDGE_TEST_MONGO_URL")
T0 = 1_700_000_000.0


class Backend:
    """Opens stores on one backing storage, so a test can have two store
    objects (two 'processes') or reopen one; closes them all at the end."""

    def __init__(self, name, tmp_path):
        self.name = name
        self.stores = []
        if name == "sqlite":
            self.path = str(tmp_path / "state" / "st2bridge.db")
        elif name == "mongomock":
            import mongomock

            self.client = mongomock.MongoClient()
            self.database = "st2bridge"
        else:
            import pymongo

            self.client = pymongo.MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
            self.database = "st2bridge_test_%s" % uuid.uuid4().hex[:12]

    def open(self):
        if self.name == "sqlite":
            from st2bridge.store.sqlite import SqliteStore

            store = SqliteStore(self.path, busy_timeout=10.0)
        else:
            from st2bridge.store.mongo import MongoStore

            store = MongoStore(client=self.client, database=self.database)
        self.stores.append(store)
        return store

    def set_schema_version(self, version):
        if self.name == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.path)
            with conn:
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )
            conn.close()
        else:
            self.client[self.database]["meta"].update_one(
                {"_id": "schema_version"}, {"$set": {"value": version}}
            )

    def drop_stored_field(self, execution_id, field):
        """Make a record look as if written before `field` existed."""
        if self.name == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.path)
            with conn:
                conn.execute(
                    "UPDATE executions SET doc = json_remove(doc, ?) WHERE id = ?",
                    ("$." + field, execution_id),
                )
            conn.close()
        else:
            self.client[self.database]["executions"].update_one(
                {"_id": execution_id}, {"$unset": {field: ""}}
            )

    def cleanup(self):
        for store in self.stores:
            store.close()
        if self.name == "mongodb":
            self.client.drop_database(self.database)
            self.client.close()


@pytest.fixture(
    params=[
        "sqlite",
        "mongomock",
        pytest.param(
            "mongodb",
            marks=pytest.mark.skipif(
                not MONGO_URL, reason="set ST2BRIDGE_TEST_MONGO_URL to test a real MongoDB"
            ),
        ),
    ]
)
def backend(request, tmp_path):
    backend = Backend(request.param, tmp_path)
    yield backend
    backend.cleanup()


@pytest.fixture
def store(backend):
    return backend.open()


def rec(**fields):
    defaults = dict(
        id=str(uuid.uuid4()),
        workflow_name="wf.main",
        engine_execution_id=str(uuid.uuid4()),
        status=st.RUNNING,
        created_at=T0,
        updated_at=T0,
    )
    defaults.update(fields)
    return new_execution_record(**defaults)


def tracked(next_poll_at, **fields):
    return rec(tracked=True, next_poll_at=next_poll_at, **fields)


def ids(records):
    return [r["id"] for r in records]


# -- create / get -------------------------------------------------------------


def test_round_trip_is_exact(store):
    record = rec(
        input={
            "f": 0.1,
            "third": 1 / 3,
            "tiny": 5e-324,
            "neg": -0.0,
            "big": 2**70,
            "none": None,
            "yes": True,
            "nested": {"list": [1, [2.5, {"x": None}], "é"]},
            "host.example.com": {"$ref": "#/a", "a.b": []},
            "ключ": "ünïcødé ✓ 日本 🚀",
        },
        tasks=[
            {
                "id": "t1",
                "name": "task one",
                "status": "running",
                "state": "RUNNING",
                "state_info": None,
                "created_at": T0 + 0.125,
                "updated_at": None,
            }
        ],
        error="boom: ✗",
        engine_state="RUNNING",
        engine_updated_at=T0 + 1e-6,
        next_poll_at=T0 + 0.3,
        timeout_at=T0 + 3600.5,
        poll_failures=3,
    )
    store.create_execution(record)
    got = store.get_execution(record["id"])
    assert got == record
    assert set(got) == set(EXECUTION_FIELDS)
    assert repr(got["input"]["third"]) == repr(1 / 3)
    assert got["input"]["big"] == 2**70 and isinstance(got["input"]["big"], int)
    assert got["output"] is None


def test_returned_records_are_copies(store):
    record = rec(input={"a": [1]})
    store.create_execution(record)
    record["input"]["a"].append(2)
    got = store.get_execution(record["id"])
    assert got["input"] == {"a": [1]}
    got["input"]["a"].append(3)
    assert store.get_execution(record["id"])["input"] == {"a": [1]}


def test_create_fills_unset_fields(store):
    store.create_execution({"id": "e1", "workflow_name": "wf"})
    got = store.get_execution("e1")
    assert got == new_execution_record(id="e1", workflow_name="wf")
    assert got["tasks"] == [] and got["tracked"] is False and got["poll_failures"] == 0


def test_a_record_stored_before_a_field_existed_reads_back_complete(backend):
    store = backend.open()
    store.create_execution(tracked(T0, id="e1", not_found_count=2, poll_failures=1))
    backend.drop_stored_field("e1", "not_found_count")
    backend.drop_stored_field("e1", "error")
    got = store.get_execution("e1")
    assert set(got) == set(EXECUTION_FIELDS)
    assert (got["not_found_count"], got["error"], got["poll_failures"]) == (0, None, 1)
    assert ids(store.claim_due("t1", T0, 30, 10)) == ["e1"]
    assert store.update_execution("e1", {"poll_failures": 2}, if_lease_owner="t1")
    assert store.get_execution("e1")["not_found_count"] == 0


def test_create_rejects_unknown_fields_and_missing_id(store):
    with pytest.raises(ValueError):
        store.create_execution({"id": "e1", "colour": "red"})
    with pytest.raises(ValueError):
        store.create_execution({"workflow_name": "wf"})
    assert store.count_executions() == 0


def test_get_unknown_is_not_found(store):
    with pytest.raises(NotFound):
        store.get_execution("nope")


def test_duplicate_id_conflicts_and_keeps_the_first(store):
    first = rec(id="e1", workflow_name="first")
    store.create_execution(first)
    with pytest.raises(Conflict):
        store.create_execution(rec(id="e1", workflow_name="second"))
    assert store.get_execution("e1") == first
    assert store.count_executions() == 1


def test_duplicate_engine_execution_id_conflicts(store):
    store.create_execution(rec(id="e1", engine_execution_id="m-1"))
    with pytest.raises(Conflict):
        store.create_execution(rec(id="e2", engine_execution_id="m-1"))
    with pytest.raises(NotFound):
        store.get_execution("e2")
    # Any number of records may have no engine id yet.
    store.create_execution(rec(id="e3", engine_execution_id=None))
    store.create_execution(rec(id="e4", engine_execution_id=None))
    assert store.count_executions() == 3


# -- list / count ---------------------------------------------------------------


def test_list_newest_first_with_filters_and_limit(store):
    specs = [
        ("a", "wf.x", st.RUNNING, 10),
        ("b", "wf.y", st.SUCCEEDED, 30),
        ("c", "wf.x", st.FAILED, 20),
        ("d", "wf.x", st.RUNNING, 40),
        ("e", "wf.y", st.RUNNING, 50),
    ]
    for id_, wf, status, t in specs:
        store.create_execution(rec(id=id_, workflow_name=wf, status=status, created_at=T0 + t))
    assert ids(store.list_executions()) == ["e", "d", "b", "c", "a"]
    assert ids(store.list_executions(status=st.RUNNING)) == ["e", "d", "a"]
    assert ids(store.list_executions(status={st.SUCCEEDED, st.FAILED})) == ["b", "c"]
    assert ids(store.list_executions(status=[st.RUNNING], workflow_name="wf.x")) == ["d", "a"]
    assert ids(store.list_executions(since=T0 + 30)) == ["e", "d", "b"]  # inclusive
    assert ids(store.list_executions(limit=2)) == ["e", "d"]
    assert ids(store.list_executions(workflow_name="wf.y", since=T0 + 40, limit=5)) == ["e"]
    assert store.list_executions(workflow_name="nope") == []
    assert store.list_executions(limit=0) == []
    assert store.list_executions(status=[]) == []
    assert store.list_executions(limit=1)[0] == store.get_execution("e")


def test_list_default_limit_is_50(store):
    for i in range(55):
        store.create_execution(rec(id="e%02d" % i, created_at=T0 + i))
    listed = store.list_executions()
    assert len(listed) == 50
    assert listed[0]["id"] == "e54" and listed[-1]["id"] == "e05"


def test_count_executions(store):
    assert store.count_executions() == 0
    for status in (st.RUNNING, st.RUNNING, st.FAILED, st.SUCCEEDED):
        store.create_execution(rec(status=status))
    assert store.count_executions() == 4
    assert store.count_executions(st.RUNNING) == 2
    assert store.count_executions([st.FAILED, st.SUCCEEDED]) == 2
    assert store.count_executions(st.PAUSED) == 0
    assert store.count_executions([]) == 0
    assert store.count_by_status() == {st.RUNNING: 2, st.FAILED: 1, st.SUCCEEDED: 1}


def test_stuck_records_are_listed_and_counted_by_signature(store):
    flag = lambda sig: {"signature": sig, "since": T0, "detected_at": T0 + 60, "evidence": {}}  # noqa: E731
    a = store.create_execution(rec(created_at=T0 + 1, stuck=flag("lost_action")))
    b = store.create_execution(rec(created_at=T0 + 2, stuck=flag("lost_action")))
    c = store.create_execution(rec(created_at=T0 + 3, stuck=flag("lost_result")))
    store.create_execution(rec(created_at=T0 + 4))  # not stuck
    store.create_execution(rec(status=st.FAILED, stuck=flag("lost_result")))  # ended: not counted
    assert [r["id"] for r in store.list_stuck()] == [c["id"], b["id"], a["id"]]
    assert [r["id"] for r in store.list_stuck(limit=1)] == [c["id"]]
    assert store.list_stuck()[0]["stuck"]["signature"] == "lost_result"
    assert store.count_stuck() == {"lost_action": 2, "lost_result": 1}
    store.update_execution(b["id"], {"stuck": None})
    assert store.count_stuck() == {"lost_action": 1, "lost_result": 1}
    assert Store.count_stuck(store) == store.count_stuck()  # the generic default agrees


def test_callback_view_reads_the_fields_and_one_task(store):
    tasks = [
        {"id": "t%d" % i, "name": "n%d" % i, "state": "RUNNING", "result": None} for i in range(3)
    ]
    store.create_execution(
        rec(
            id="e1",
            engine_execution_id="g1",
            engine_state="RUNNING",
            engine_updated_at="2026-01-01 00:00:01",
            callback_secret_hash="h",
            tasks=tasks,
            output={"big": "x" * 100},
        )
    )
    view = store.callback_view("e1", "t2")
    assert view == {
        "id": "e1",
        "status": st.RUNNING,
        "engine_execution_id": "g1",
        "engine_state": "RUNNING",
        "engine_updated_at": "2026-01-01 00:00:01",
        "callback_secret_hash": "h",
        "tasks": [tasks[2]],
        "tasks_from": 2,
    }
    assert (
        store.callback_view("e1")["tasks"] == [] and store.callback_view("e1", "t9")["tasks"] == []
    )
    store.create_execution(rec(id="e2", tasks=[]))
    assert store.callback_view("e2", "t0")["tasks_from"] is None
    with pytest.raises(NotFound):
        store.callback_view("nope", "t1")


# -- update ---------------------------------------------------------------------


def test_update_replaces_top_level_fields(store):
    record = rec(id="e1", input={"keep": 1}, output=None)
    store.create_execution(record)
    assert (
        store.update_execution(
            "e1", {"output": {"r": [1]}, "status": st.PAUSED, "engine_state": "PAUSED"}
        )
        is True
    )
    got = store.get_execution("e1")
    assert got == dict(record, output={"r": [1]}, status=st.PAUSED, engine_state="PAUSED")
    assert got["updated_at"] == T0  # the caller sets it, not the store
    assert ids(store.list_executions(status=st.PAUSED)) == ["e1"]  # indexed fields follow
    assert store.update_execution("e1", {}) is True
    assert store.get_execution("e1") == got


def test_update_unknown_record_and_bad_changes(store):
    with pytest.raises(NotFound):
        store.update_execution("nope", {"status": st.FAILED})
    with pytest.raises(NotFound):
        store.update_execution("nope", {"status": st.FAILED}, if_active=False)
    store.create_execution(rec(id="e1"))
    with pytest.raises(ValueError):
        store.update_execution("e1", {"colour": "red"})
    with pytest.raises(ValueError):
        store.update_execution("e1", {"id": "e2"})
    assert store.get_execution("e1")["status"] == st.RUNNING


def test_update_to_a_taken_engine_execution_id_conflicts(store):
    store.create_execution(rec(id="e1", engine_execution_id="m-1"))
    store.create_execution(rec(id="e2", engine_execution_id="m-2"))
    with pytest.raises(Conflict):
        store.update_execution("e2", {"engine_execution_id": "m-1", "status": st.FAILED})
    assert store.get_execution("e2")["engine_execution_id"] == "m-2"
    assert store.get_execution("e2")["status"] == st.RUNNING


@pytest.mark.parametrize("terminal", sorted(st.TERMINAL))
def test_if_active_stops_writes_after_a_terminal_status(store, terminal):
    store.create_execution(rec(id="e1"))
    assert store.update_execution("e1", {"status": terminal, "finished_by": "poll"})
    late = {"status": st.SUCCEEDED, "finished_by": "callback"}
    assert store.update_execution("e1", late) is False
    assert store.update_execution("e1", {"error": "late"}, if_active=True) is False
    got = store.get_execution("e1")
    assert (got["status"], got["finished_by"], got["error"]) == (terminal, "poll", None)
    # Housekeeping may still write to a finished record when it says so.
    assert store.update_execution("e1", {"tracked": False}, if_active=False) is True
    assert store.get_execution("e1")["tracked"] is False


def test_if_lease_owner(store):
    store.create_execution(tracked(T0, id="e1"))
    assert store.update_execution("e1", {"poll_failures": 1}, if_lease_owner="t1") is False
    store.claim_due("t1", T0, 30, 10)
    assert store.update_execution("e1", {"poll_failures": 2}, if_lease_owner="t2") is False
    assert store.update_execution("e1", {"poll_failures": 3}, if_lease_owner="t1") is True
    assert store.get_execution("e1")["poll_failures"] == 3
    # Both conditions must hold.
    assert store.update_execution("e1", {"status": st.FAILED}, if_lease_owner="t1")
    assert store.update_execution("e1", {"poll_failures": 9}, if_lease_owner="t1") is False
    assert (
        store.update_execution("e1", {"poll_failures": 9}, if_active=False, if_lease_owner="t2")
        is False
    )
    assert store.get_execution("e1")["poll_failures"] == 3


def test_terminal_status_is_written_exactly_once_under_races(backend):
    if backend.name == "mongomock":
        pytest.skip("mongomock does not make one update atomic across threads")
    stores = [backend.open() for _ in range(6)]
    records = [rec() for _ in range(20)]
    for record in records:
        stores[0].create_execution(record)
    wins = []
    barrier = threading.Barrier(len(stores))

    def writer(n, store):
        barrier.wait()
        for record in random.Random(n).sample(records, len(records)):
            if store.update_execution(
                record["id"], {"status": st.SUCCEEDED, "finished_by": "writer-%d" % n}
            ):
                wins.append((record["id"], "writer-%d" % n))

    threads = [threading.Thread(target=writer, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(i for i, _ in wins) == sorted(ids(records))
    for id_, winner in wins:
        assert stores[0].get_execution(id_)["finished_by"] == winner


# -- claim_due / release_leases -------------------------------------------------


def test_claim_due_takes_only_due_active_tracked_records(store):
    store.create_execution(tracked(T0 - 5, id="due"))
    store.create_execution(tracked(T0, id="due-now"))  # next_poll_at <= now
    store.create_execution(tracked(T0 + 1, id="later"))
    store.create_execution(tracked(T0 - 5, id="done", status=st.SUCCEEDED))
    store.create_execution(rec(id="untracked", next_poll_at=T0 - 5))
    store.create_execution(tracked(None, id="no-poll-time"))
    claimed = store.claim_due("t1", T0, 30, 10)
    assert ids(claimed) == ["due", "due-now"]
    for record in claimed:
        assert record["lease_owner"] == "t1" and record["lease_expires_at"] == T0 + 30
        assert store.get_execution(record["id"]) == record
    assert store.get_execution("later")["lease_owner"] is None


def test_a_final_record_leaves_the_due_index(store):
    # Finished records would otherwise stay at the front of the due index,
    # and every claim would walk the whole history before reaching work.
    store.create_execution(tracked(T0 - 5, id="e1"))
    store.create_execution(tracked(T0 - 5, id="born-final", status=st.FAILED))
    assert store.get_execution("born-final")["next_poll_at"] is None
    assert store.update_execution("e1", {"status": st.SUCCEEDED, "ended_at": T0})
    assert store.get_execution("e1")["next_poll_at"] is None
    assert store.next_due_at() is None and store.claim_due("t1", T0, 30, 10) == []
    store.create_execution(tracked(T0 - 5, id="e2"))
    assert store.update_many([("e2", {"status": st.CANCELED})]) == 1
    assert store.get_execution("e2")["next_poll_at"] is None


def test_claim_due_orders_by_next_poll_at_and_honours_limit(store):
    times = [T0 - 7, T0 - 1, T0 - 9, T0 - 3, T0 - 5]
    for n, t in enumerate(times):
        store.create_execution(tracked(t, id="e%d" % n))
    assert ids(store.claim_due("t1", T0, 30, 2)) == ["e2", "e0"]
    assert ids(store.claim_due("t2", T0, 30, 10)) == ["e4", "e3", "e1"]
    assert store.claim_due("t3", T0, 30, 10) == []
    assert store.claim_due("t1", T0, 30, 0) == []


def test_valid_lease_excludes_every_owner_and_lapsed_lease_is_taken_over(store):
    store.create_execution(tracked(T0, id="e1"))
    assert ids(store.claim_due("t1", T0, 30, 10)) == ["e1"]
    assert store.claim_due("t2", T0 + 29.9, 30, 10) == []
    # Its holder too: the tracker ticks while that poll is still running and
    # must not start a second one (a stricter reading of base.py; see report).
    assert store.claim_due("t1", T0 + 10, 30, 10) == []
    assert store.get_execution("e1")["lease_expires_at"] == T0 + 30
    taken = store.claim_due("t2", T0 + 30, 30, 10)  # lapsed: lease_expires_at <= now
    assert ids(taken) == ["e1"] and taken[0]["lease_owner"] == "t2"
    assert store.get_execution("e1")["lease_expires_at"] == T0 + 60
    assert store.update_execution("e1", {"poll_failures": 1}, if_lease_owner="t1") is False
    # A lease cleared by its holder (a poll rescheduled) frees the record.
    assert store.update_execution(
        "e1", {"lease_owner": None, "lease_expires_at": None}, if_lease_owner="t2"
    )
    assert ids(store.claim_due("t3", T0 + 31, 30, 10)) == ["e1"]


def test_claims_by_racing_owners_never_overlap(backend):
    if backend.name == "mongomock":
        pytest.skip("mongomock does not make find_one_and_update atomic across threads")
    stores = [backend.open() for _ in range(4)]
    for n in range(120):
        stores[0].create_execution(tracked(T0 - n, id="e%03d" % n))
    claims = {}
    barrier = threading.Barrier(len(stores))

    def tracker(n, store):
        # Like a tracker: claim, "poll", reschedule and drop the lease.
        owner = "t%d" % n
        mine = claims.setdefault(owner, [])
        barrier.wait()
        while True:
            batch = store.claim_due(owner, T0, 300, 7)
            if not batch:
                return
            mine.extend(ids(batch))
            time.sleep(0.002)  # the polls themselves: lets the others interleave
            for record in batch:
                assert store.update_execution(
                    record["id"],
                    {"next_poll_at": T0 + 1000, "lease_owner": None, "lease_expires_at": None},
                    if_lease_owner=owner,
                )

    threads = [threading.Thread(target=tracker, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for mine in claims.values() for i in mine]
    assert sorted(everything) == ["e%03d" % n for n in range(120)]  # each exactly once
    assert sum(1 for mine in claims.values() if mine) >= 2  # they really competed
    assert stores[0].next_due_at() == T0 + 1000  # every holder's write went through


def test_release_leases(store):
    for n in range(3):
        store.create_execution(tracked(T0 - n, id="a%d" % n))
    store.create_execution(tracked(T0, id="b0"))
    assert len(store.claim_due("t1", T0, 300, 3)) == 3
    assert ids(store.claim_due("t2", T0, 300, 10)) == ["b0"]
    assert store.release_leases("t1") == 3
    assert store.release_leases("t1") == 0
    assert store.release_leases("nobody") == 0
    for n in range(3):
        got = store.get_execution("a%d" % n)
        assert got["lease_owner"] is None and got["lease_expires_at"] is None
    assert store.get_execution("b0")["lease_owner"] == "t2"
    assert sorted(ids(store.claim_due("t3", T0 + 1, 300, 10))) == ["a0", "a1", "a2"]


def test_update_many_applies_each_change_under_the_conditions(store):
    for n in range(4):
        store.create_execution(tracked(T0, id="m%d" % n))
    store.update_execution("m3", {"status": st.SUCCEEDED})
    claimed = ids(store.claim_due("t1", T0, 300, 2))  # m0, m1 leased by t1
    assert sorted(claimed) == ["m0", "m1"]
    changes = {"next_poll_at": T0 + 5, "lease_owner": None, "lease_expires_at": None}
    updates = [(i, changes) for i in ("m0", "m1", "m2", "m3", "missing")]
    # Only t1's leases are released: m2 is not t1's, m3 is terminal, "missing" is skipped.
    assert store.update_many(updates, if_lease_owner="t1") == 2
    for i in ("m0", "m1"):
        got = store.get_execution(i)
        assert got["next_poll_at"] == T0 + 5 and got["lease_owner"] is None
    assert store.get_execution("m2")["next_poll_at"] == T0
    # Without a lease condition every active record is updated; terminal ones never.
    assert store.update_many([(i, {"poll_failures": 7}) for i in ("m2", "m3")]) == 1
    assert store.get_execution("m2")["poll_failures"] == 7
    assert store.get_execution("m3")["poll_failures"] == 0
    assert store.update_many([]) == 0
    with pytest.raises(ValueError):
        store.update_many([("m0", {"bogus": 1})])


def test_renew_leases_moves_only_the_owners_expiry(store):
    for n in range(3):
        store.create_execution(tracked(T0, id="r%d" % n))
    store.claim_due("t1", T0, 60, 2)
    store.claim_due("t2", T0, 60, 1)
    assert store.renew_leases("t1", T0 + 500) == 2
    assert store.renew_leases("nobody", T0 + 500) == 0
    leases = {
        r["id"]: (r["lease_owner"], r["lease_expires_at"])
        for r in (store.get_execution("r%d" % n) for n in range(3))
    }
    assert sorted(v for v in leases.values()) == [
        ("t1", T0 + 500),
        ("t1", T0 + 500),
        ("t2", T0 + 60),
    ]
    # A renewed lease still excludes everyone until it lapses; t2's lapsed at T0 + 60.
    assert store.claim_due("t3", T0 + 30, 60, 10) == []
    assert ids(store.claim_due("t3", T0 + 100, 60, 10)) == ["r2"]
    assert sorted(ids(store.claim_due("t4", T0 + 500, 60, 10))) == ["r0", "r1", "r2"]


# -- next_due_at -------------------------------------------------------------------


def test_next_due_at_is_none_when_nothing_is_tracked(store):
    assert store.next_due_at() is None
    store.create_execution(rec(next_poll_at=T0))  # untracked
    store.create_execution(tracked(T0 - 1, status=st.FAILED))  # terminal
    store.create_execution(tracked(None))  # never due
    assert store.next_due_at() is None


def test_next_due_at_values(store):
    store.create_execution(rec(next_poll_at=T0 - 100))  # untracked: ignored
    store.create_execution(tracked(T0 + 50, id="e1"))
    store.create_execution(tracked(T0 + 20, id="e2"))
    assert store.next_due_at() == T0 + 20
    store.claim_due("t1", T0 + 20, 60, 10)  # e2 leased until T0 + 80
    assert store.next_due_at() == T0 + 50
    store.update_execution("e1", {"status": st.SUCCEEDED})
    assert store.next_due_at() == T0 + 80
    store.release_leases("t1")
    assert store.next_due_at() == T0 + 20


def test_next_due_at_is_never_late(store):
    """Before next_due_at nobody can claim anything; at it someone can (both
    backends are exact although the contract lets them be early)."""
    rnd = random.Random(7)
    for n in range(60):
        store.create_execution(
            tracked(
                T0 + rnd.uniform(-50, 50),
                id="e%02d" % n,
                status=rnd.choice([st.RUNNING, st.RUNNING, st.FAILED]),
            )
        )
    now, rounds = T0 - 60, 0
    for round_ in range(40):
        due = store.next_due_at()
        if due is None:
            break
        rounds += 1
        for owner in ("probe", "t0", "t1", "t2"):  # holders of leases included
            assert store.claim_due(owner, due - 1e-6, 10, 100) == []
        batch = store.claim_due("t%d" % (round_ % 3), max(now, due), rnd.choice([5, 30]), 4)
        assert batch
        now = max(now, due)
        for record in batch[:2]:  # finish some, reschedule others
            store.update_execution(
                record["id"],
                rnd.choice([{"status": st.SUCCEEDED}, {"next_poll_at": now + rnd.uniform(1, 40)}]),
            )
    assert rounds >= 20


# -- services ------------------------------------------------------------------------


def svc(id_, name, host, **fields):
    record = dict(
        id=id_,
        name=name,
        host=host,
        pid=100,
        version="0.1.0",
        started_at=T0,
        heartbeat_at=T0,
        info={"threads": 4, "a.b": ["ü"]},
    )
    record.update(fields)
    return record


def test_services_register_heartbeat_list_remove(store):
    assert store.list_services() == []
    store.register_service(svc("s1", "tracker", "host-b"))
    store.register_service(svc("s2", "tracker", "host-a"))
    store.register_service(svc("s3", "api", "host-z"))
    assert ids(store.list_services()) == ["s3", "s2", "s1"]  # by name then host
    assert store.list_services()[0] == svc("s3", "api", "host-z")

    assert store.heartbeat_service("s2", T0 + 5.5) is True
    assert store.heartbeat_service("nope", T0) is False
    assert [s["heartbeat_at"] for s in store.list_services()] == [T0, T0 + 5.5, T0]

    store.register_service(svc("s1", "tracker", "host-b", pid=200, info=None))  # replaces
    s1 = [s for s in store.list_services() if s["id"] == "s1"]
    assert s1 == [svc("s1", "tracker", "host-b", pid=200, info=None)]

    store.remove_service("s2")
    store.remove_service("s2")  # missing: not an error
    assert ids(store.list_services()) == ["s3", "s1"]


# -- housekeeping -------------------------------------------------------------------


def test_schema_version_and_persistence_across_reopen(backend):
    store = backend.open()
    assert store.schema_version() == Store.SCHEMA_VERSION
    record = rec(input={"x": 1.5})
    store.create_execution(record)
    store.register_service(svc("s1", "tracker", "h"))
    store.close()
    again = backend.open()
    assert again.schema_version() == Store.SCHEMA_VERSION
    assert again.get_execution(record["id"]) == record
    assert ids(again.list_services()) == ["s1"]


@pytest.mark.parametrize("delta", [-1, +1])
def test_a_different_schema_version_is_refused(backend, delta):
    backend.open().close()
    backend.set_schema_version(Store.SCHEMA_VERSION + delta)
    with pytest.raises(StoreVersionMismatch) as info:
        backend.open()
    message = str(info.value)
    assert "st2bridge db-upgrade" in message and "\n" not in message
    assert str(Store.SCHEMA_VERSION + delta) in message


def test_close_twice_and_use_after_close(backend):
    with backend.open() as store:
        store.create_execution(rec(id="e1"))
    store.close()  # second close: harmless
    with pytest.raises(StoreUnavailable):
        store.get_execution("e1")
    with pytest.raises(StoreError):
        store.create_execution(rec(id="e2"))
    assert backend.open().get_execution("e1")["id"] == "e1"


def test_update_task_sets_one_entry_under_the_condition(store):
    store.create_execution(rec(id="t0", tasks=[{"id": "a", "state": "RUNNING"}]))
    assert store.update_task("t0", None, {"id": "b", "state": "RUNNING"}, {"last_event_at": T0 + 1})
    assert store.update_task("t0", 0, {"id": "a", "state": "SUCCESS"})
    got = store.get_execution("t0")
    assert got["tasks"] == [{"id": "a", "state": "SUCCESS"}, {"id": "b", "state": "RUNNING"}]
    assert got["last_event_at"] == T0 + 1
    store.update_execution("t0", {"status": st.SUCCEEDED})
    assert store.update_task("t0", None, {"id": "c"}) is False
    assert len(store.get_execution("t0")["tasks"]) == 2
    assert store.update_task("t0", None, {"id": "c"}, if_active=False) is True
    with pytest.raises(NotFound):
        store.update_task("missing", None, {"id": "x"})
    with pytest.raises(ValueError):
        store.update_task("t0", 0, {"id": "a"}, {"tasks": []})


# -- idempotency keys and definitions ---------------------------------------------


def test_an_idempotency_key_is_unique_and_finds_its_record(backend):
    a, b = backend.open(), backend.open()
    first = rec(idempotency_key="key-1", env={"a.b": 1, "$x": [1]}, labels={"team": "x"})
    a.create_execution(first)
    assert b.get_execution_by_idempotency_key("key-1") == first
    with pytest.raises(Conflict, match="idempotency key 'key-1' belongs to execution"):
        b.create_execution(rec(idempotency_key="key-1"))
    assert b.count_executions() == 1  # the refused one left nothing behind
    a.create_execution(rec())  # records without a key: any number
    a.create_execution(rec())
    with pytest.raises(NotFound):
        a.get_execution_by_idempotency_key("key-2")
    with pytest.raises(ValueError):
        a.update_execution(first["id"], {"idempotency_key": "other"})


def test_definitions_are_kept_once_by_content_id(backend):
    a, b = backend.open(), backend.open()
    definition = {
        "id": "d" * 64,
        "kind": "workbook",
        "name": "wb",
        "text": "version: '2.0'\nname: wb\n",
        "workflows": ["wb.main"],
        "created_at": T0,
    }
    assert a.put_definition(definition) is True
    assert b.put_definition(dict(definition, created_at=T0 + 1)) is False  # the same content
    assert b.get_definition("d" * 64) == definition
    with pytest.raises(NotFound):
        a.get_definition("nope")
