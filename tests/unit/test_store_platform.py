"""The store contract of the platform's side (schema version 6), on every
backend: the change log, labels and paging, API keys and the
notification outbox. (Idempotency keys: test_store_contract.py.)"""

import pytest

from st2bridge import status as st
from st2bridge.errors import Conflict, NotFound
from tests.unit import test_store_contract as contract
from tests.unit.test_store_contract import T0, rec

backend = contract.backend  # the contract suite's backends: SQLite, mongomock, MongoDB


@pytest.fixture
def store(backend):
    return backend.open()


def events(store, after=0):
    return [(c["execution_id"], c["event"], c["status"]) for c in store.read_changes(after)]


# -- the change log -----------------------------------------------------------


def test_every_write_that_moves_status_or_tasks_is_logged_in_order(store):
    r = rec(status=st.REQUESTED, workflow_name="wf.log")
    store.create_execution(r)
    rid = r["id"]
    store.update_execution(rid, {"status": st.RUNNING, "engine_state": "RUNNING"})
    store.update_execution(rid, {"status": st.RUNNING, "updated_at": T0 + 1})  # same: not logged
    store.update_execution(rid, {"next_poll_at": T0 + 5})  # nothing reported
    store.update_execution(rid, {"tasks": [{"id": "t1", "name": "a"}]})
    store.update_task(rid, None, {"id": "t2", "name": "b", "status": st.RUNNING})
    store.update_execution(rid, {"status": st.SUCCEEDED, "output": {"x": 1}})
    assert not store.update_execution(rid, {"status": st.FAILED})  # conditional: lost
    assert events(store) == [
        (rid, "created", st.REQUESTED),
        (rid, "status", st.RUNNING),
        (rid, "task", st.RUNNING),
        (rid, "task", st.RUNNING),
        (rid, "end", st.SUCCEEDED),
    ]
    changes = store.read_changes(0)
    seqs = [c["seq"] for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert all(c["workflow_name"] == "wf.log" for c in changes)
    assert changes[3]["task"] == {"id": "t2", "name": "b", "status": st.RUNNING}
    assert store.last_change_seq() == seqs[-1]
    assert [c["seq"] for c in store.read_changes(seqs[1], limit=2)] == seqs[2:4]


def test_update_many_logs_status_changes_but_not_reschedules(store):
    a, b = rec(), rec()
    store.create_execution(a)
    store.create_execution(b)
    after = store.last_change_seq()
    n = store.update_many(
        [(a["id"], {"next_poll_at": T0 + 9}), (b["id"], {"status": st.FAILED, "error": "x"})]
    )
    assert n == 2
    assert events(store, after) == [(b["id"], "end", st.FAILED)]


def test_reopening_a_record_is_a_status_change(store):
    r = rec(status=st.FAILED)
    store.create_execution(r)
    after = store.last_change_seq()
    assert store.update_execution(r["id"], {"status": st.RUNNING}, if_active=False)
    assert events(store, after) == [(r["id"], "status", st.RUNNING)]


def test_prune_keeps_what_a_cursor_has_not_passed(store):
    records = [rec() for _ in range(4)]
    for r in records:
        store.create_execution(r)
    seqs = [c["seq"] for c in store.read_changes(0)]
    far = 10**12
    assert store.prune_changes(far, keep_after_seq=seqs[1]) == 2
    assert [c["seq"] for c in store.read_changes(0)] == seqs[2:]
    assert store.prune_changes(0) == 0  # nothing older than the epoch


def test_cursors_only_move_forward(store):
    assert store.get_cursor("notify") == 0
    store.advance_cursor("notify", 7)
    store.advance_cursor("notify", 3)
    assert store.get_cursor("notify") == 7
    store.advance_cursor("notify", 9)
    assert store.get_cursor("notify") == 9


# -- labels, paging ------------------------------------------


def test_labels_filter_and_marker_paging(store):
    for i in range(5):
        labels = {"team": "a" if i % 2 else "b", "app.io/name": "x%d" % i}
        store.create_execution(rec(id="id-%d" % i, created_at=T0 + (i // 2), labels=labels))
    everything = [r["id"] for r in store.list_executions(limit=None)]
    assert everything == ["id-4", "id-3", "id-2", "id-1", "id-0"]
    assert [r["id"] for r in store.list_executions(labels={"team": "a"})] == ["id-3", "id-1"]
    assert [r["id"] for r in store.list_executions(labels={"team": "b", "app.io/name": "x2"})] == [
        "id-2"
    ]
    assert store.get_execution("id-2")["labels"] == {"team": "b", "app.io/name": "x2"}
    pages, before = [], None
    while True:
        page = store.list_executions(limit=2, before=before)
        if not page:
            break
        pages.append([r["id"] for r in page])
        before = (page[-1]["created_at"], page[-1]["id"])
    assert pages == [["id-4", "id-3"], ["id-2", "id-1"], ["id-0"]]


# -- API keys -------------------------------------------------------------------


def test_api_keys(store):
    store.create_api_key({"name": "ci", "key_hash": "h1", "read_only": False, "created_at": T0})
    store.create_api_key({"name": "ro", "key_hash": "h2", "read_only": True, "created_at": T0})
    with pytest.raises(Conflict, match="ci"):
        store.create_api_key({"name": "ci", "key_hash": "h3", "created_at": T0})
    assert store.api_key_by_hash("h1")["name"] == "ci"
    assert store.api_key_by_hash("h2")["read_only"] is True
    assert store.api_key_by_hash("nope") is None
    store.revoke_api_key("ci", T0 + 1)
    assert store.api_key_by_hash("h1") is None
    with pytest.raises(NotFound):
        store.revoke_api_key("ci", T0 + 2)
    assert [(k["name"], k["revoked_at"]) for k in store.list_api_keys()] == [
        ("ci", T0 + 1),
        ("ro", None),
    ]
    store.create_api_key({"name": "ci", "key_hash": "h4", "created_at": T0 + 3})  # after revoke
    assert store.api_key_by_hash("h4")["name"] == "ci"


# -- notifications ------------------------------------------------------------------


def note(seq, execution_id="e1", sink="s1", **fields):
    base = dict(
        id="%d-%s" % (seq, sink),
        execution_id=execution_id,
        seq=seq,
        event="end",
        sink=sink,
        url="http://127.0.0.1:1/" + sink,
        secret="shh",
        body="{}",
        status="pending",
        next_attempt_at=T0,
        deadline_at=T0 + 100,
        created_at=T0 + seq,
    )
    base.update(fields)
    return base


def test_adding_a_notification_twice_is_harmless(store):
    assert store.add_notifications([note(1), note(2)]) == ["1-s1", "2-s1"]
    assert store.add_notifications([note(1), note(3)]) == ["3-s1"]
    assert store.get_notification("1-s1")["attempts"] == 0
    with pytest.raises(NotFound):
        store.get_notification("nope")


def test_claims_go_in_order_per_execution_and_sink(store):
    store.add_notifications(
        [note(2), note(1), note(1, sink="s2"), note(5, execution_id="e2"), note(3)]
    )
    claimed = store.claim_notifications("me", T0, 30, 10)
    assert sorted(n["id"] for n in claimed) == ["1-s1", "1-s2", "5-s1"]
    assert store.claim_notifications("other", T0, 30, 10) == []  # leased, or waiting behind
    assert store.update_notification(
        "1-s1", {"status": "delivered", "delivered_at": T0}, if_lease_owner="me"
    )
    assert not store.update_notification("1-s2", {"status": "failed"}, if_lease_owner="other")
    assert [n["id"] for n in store.claim_notifications("other", T0, 30, 10)] == ["2-s1"]
    # a lapsed lease is taken over; a notification not yet due is not
    store.update_notification("2-s1", {"next_attempt_at": T0 + 50, "lease_owner": None})
    assert "2-s1" not in [n["id"] for n in store.claim_notifications("third", T0 + 40, 30, 10)]
    taken = store.claim_notifications("third", T0 + 60, 30, 10)
    assert "2-s1" in [n["id"] for n in taken]


def test_a_failed_notification_no_longer_holds_up_the_next(store):
    store.add_notifications([note(1), note(2)])
    store.update_notification("1-s1", {"status": "failed", "last_error": "deadline"})
    assert [n["id"] for n in store.claim_notifications("me", T0, 30, 10)] == ["2-s1"]


def test_list_and_count_notifications(store):
    store.add_notifications([note(1), note(2), note(3, execution_id="e2")])
    store.update_notification("1-s1", {"status": "failed"})
    assert [n["id"] for n in store.list_notifications()] == ["3-s1", "2-s1", "1-s1"]
    assert [n["id"] for n in store.list_notifications(status="failed")] == ["1-s1"]
    assert [n["id"] for n in store.list_notifications(execution_id="e2")] == ["3-s1"]
    assert store.count_notifications() == {"pending": 2, "failed": 1}
    with pytest.raises(ValueError):
        store.update_notification("1-s1", {"bogus": 1})


def test_mongo_takes_over_entries_a_dead_writer_left_unnumbered(backend):
    if backend.name == "sqlite":
        pytest.skip("SQLite numbers entries in the write's own transaction")
    store = backend.open()
    store.create_execution(rec(id="ex-dead", status=st.RUNNING))
    after = store.last_change_seq()
    # The write happened (entry in the document), the writer died before numbering it.
    store._executions.update_one(
        {"_id": "ex-dead"},
        {
            "$set": {"status": st.SUCCEEDED},
            "$push": {
                "_changes": {
                    "at": 1.0,
                    "execution_id": "ex-dead",
                    "event": "end",
                    "status": st.SUCCEEDED,
                    "workflow_name": None,
                    "event_id": "dead-1",
                }
            },
        },
    )
    got = store.read_changes(after)
    assert [(c["execution_id"], c["event"], c["workflow_name"]) for c in got] == [
        ("ex-dead", "end", "wf.main")
    ]
    assert store.read_changes(got[0]["seq"]) == []  # numbered once
    assert "_changes" not in store.get_execution("ex-dead")
