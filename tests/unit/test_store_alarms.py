"""The store contract of alarms (schema version 7) on every backend: events,
the alarm state's compare-and-set, execution summaries, the start queue."""

import pytest

from st2bridge import status as st
from st2bridge.errors import Conflict, NotFound
from tests.unit import test_store_contract as contract
from tests.unit.test_store_contract import T0, rec

backend = contract.backend


@pytest.fixture
def store(backend):
    return backend.open()


def event(i, **fields):
    return dict(
        {
            "id": "ev%03d" % i,
            "source": "alertmanager",
            "received_at": T0 + i,
            "payload": {"a.b": {"$x": 1}},
            "alerts": [{"status": "firing", "labels": {"instance": "h:1"}}],
        },
        **fields,
    )


def test_events_round_trip_list_newest_first_and_filter(store):
    for i in range(5):
        store.add_event(event(i, outcome="started" if i % 2 else "joined"))
    with pytest.raises(Conflict):
        store.add_event(event(1))
    got = store.get_event("ev001")
    assert got["payload"] == {"a.b": {"$x": 1}} and got["status"] == "received"
    assert got["attempts"] == 0 and got["processed_at"] is None
    assert [e["id"] for e in store.list_events()] == ["ev004", "ev003", "ev002", "ev001", "ev000"]
    assert [e["id"] for e in store.list_events(outcome="started")] == ["ev003", "ev001"]
    assert [e["id"] for e in store.list_events(since=T0 + 3)] == ["ev004", "ev003"]
    assert [e["id"] for e in store.list_events(limit=2, before=(T0 + 3, "ev003"))] == [
        "ev002",
        "ev001",
    ]
    assert store.list_events(source="aodh") == []
    with pytest.raises(NotFound):
        store.get_event("nope")


def test_update_event_under_its_lease(store):
    store.add_event(event(1, lease_owner="a", lease_expires_at=T0 + 30))
    assert not store.update_event("ev001", {"status": "processed"}, if_lease_owner="b")
    assert store.update_event(
        "ev001", {"status": "processed", "outcome": "started"}, if_lease_owner="a"
    )
    assert store.get_event("ev001")["outcome"] == "started"
    assert store.list_events(outcome="started")[0]["id"] == "ev001"
    with pytest.raises(NotFound):
        store.update_event("nope", {"status": "processed"})
    with pytest.raises(ValueError):
        store.update_event("ev001", {"colour": "red"})


def test_events_left_received_are_claimed_once_their_lease_lapses(backend):
    one, two = backend.open(), backend.open()
    one.add_event(event(1, lease_owner="dead", lease_expires_at=T0 + 10))
    one.add_event(event(2, lease_owner="alive", lease_expires_at=T0 + 100))
    one.add_event(event(3, status="processed"))
    assert one.claim_events("me", T0 + 5, 30, 10) == []
    got = one.claim_events("me", T0 + 20, 30, 10)
    assert [e["id"] for e in got] == ["ev001"] and got[0]["lease_owner"] == "me"
    assert two.claim_events("other", T0 + 21, 30, 10) == []  # leased by me now
    assert [e["id"] for e in two.claim_events("other", T0 + 200, 30, 10)] == ["ev001", "ev002"]


def test_prune_events_keeps_those_not_processed(store):
    store.add_event(event(1, status="processed"))
    store.add_event(event(2))
    store.add_event(event(50, status="processed"))
    assert store.prune_events(T0 + 10) == 1
    assert {e["id"] for e in store.list_events()} == {"ev002", "ev050"}


def test_state_compare_and_set(backend):
    one, two = backend.open(), backend.open()
    assert one.get_state("dedup", "r\x1fk") == (None, 0)
    assert one.put_state("dedup", "r\x1fk", {"event": "a"}, 0, T0)
    assert not two.put_state("dedup", "r\x1fk", {"event": "b"}, 0, T0)  # exists: lost
    doc, version = two.get_state("dedup", "r\x1fk")
    assert doc == {"event": "a"} and version == 1
    assert two.put_state("dedup", "r\x1fk", {"event": "b"}, 1, T0 + 1)
    assert not one.put_state("dedup", "r\x1fk", {"event": "c"}, 1, T0 + 2)  # stale version
    assert one.get_state("dedup", "r\x1fk") == ({"event": "b"}, 2)
    assert one.get_state("policy", "r\x1fk") == (None, 0)  # kinds are apart
    one.put_state("dedup", "old", {}, 0, T0 - 100)
    assert one.prune_state("dedup", T0 - 10) == 1
    assert one.get_state("dedup", "old") == (None, 0)


def test_execution_summaries_by_id_and_idempotency_key(store):
    a = rec(status=st.RUNNING)
    b = rec(status=st.SUCCEEDED, ended_at=T0 + 5, idempotency_key="alarm:x")
    store.create_execution(a)
    store.create_execution(b)
    got = {
        s["id"]: s
        for s in store.execution_summaries(ids=[a["id"], "unknown"], idempotency_keys=["alarm:x"])
    }
    assert got[a["id"]] == {
        "id": a["id"],
        "status": st.RUNNING,
        "ended_at": None,
        "idempotency_key": None,
    }
    assert got[b["id"]]["status"] == st.SUCCEEDED and got[b["id"]]["ended_at"] == T0 + 5
    assert got[b["id"]]["idempotency_key"] == "alarm:x"
    assert len(got) == 2
    assert store.execution_summaries() == []


def item(i, policy="p", key="h1", **fields):
    return dict(
        {
            "id": "q%03d" % i,
            "policy": policy,
            "key": key,
            "created_at": T0 + i,
            "event_id": "ev",
            "alert": i,
            "rule": policy,
            "start": {"workflow": "wf", "input": {"host": key}},
        },
        **fields,
    )


def test_queue_fifo_claim_update_and_counts(backend):
    one, two = backend.open(), backend.open()
    assert one.enqueue(item(2))
    assert one.enqueue(item(1, key="h2"))
    assert not one.enqueue(item(1))  # the same id: kept once
    assert one.enqueue(item(3, policy="other"))
    assert [q["id"] for q in one.list_queue(policy="p", status="pending")] == ["q001", "q002"]
    assert one.count_queue() == {"p": 2, "other": 1}
    got = one.claim_queue_item("q001", "me", T0, 30)
    assert got["lease_owner"] == "me" and got["start"]["input"] == {"host": "h2"}
    assert two.claim_queue_item("q001", "other", T0 + 1, 30) is None  # leased
    assert not two.update_queue_item("q001", {"status": "started"}, if_lease_owner="other")
    assert one.update_queue_item(
        "q001", {"status": "started", "execution_id": "x"}, if_lease_owner="me", if_status="pending"
    )
    assert not one.update_queue_item("q001", {"status": "canceled"}, if_status="pending")
    assert two.claim_queue_item("q001", "other", T0 + 100, 30) is None  # started: not pending
    assert one.get_queue_item("q001")["execution_id"] == "x"
    assert one.count_queue() == {"p": 1, "other": 1}
    assert one.count_queue("started") == {"p": 1}
    assert two.claim_queue_item("q002", "other", T0 + 1, 30)["lease_owner"] == "other"
    assert one.claim_queue_item("q002", "me", T0 + 100, 30)["lease_owner"] == "me"  # lapsed
    with pytest.raises(NotFound):
        one.get_queue_item("nope")
    with pytest.raises(NotFound):
        one.update_queue_item("nope", {"status": "canceled"})
