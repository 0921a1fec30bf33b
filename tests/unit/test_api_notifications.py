"""The webhook outbox: signing, turning change-log entries into
notifications, delivery, retries with back-off, the deadline, ordering per
sink, leases after a crash, and resend."""

import json

import pytest

from st2bridge import status as st
from st2bridge.api import signing
from st2bridge.api.notifications import Notifier, backoff, resend
from st2bridge.api.stream import LogFollower
from st2bridge.client import verify_webhook
from st2bridge.store.base import new_execution_record
from st2bridge.store.sqlite import SqliteStore
from tests.support.fake_time import Clock
from tests.support.receiver import Receiver

SECRET = "a-secret-of-16-characters"


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "b.db"))
    yield s
    s.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def execution(store, i, sinks=(), status=st.RUNNING):
    store.create_execution(
        new_execution_record(
            id="ex-%d" % i,
            workflow_name="wf",
            engine_execution_id="en-%d" % i,
            status=status,
            created_at=1.0,
            updated_at=1.0,
            sinks=[dict(url=u, secret=SECRET, every_status=e) for u, e in sinks],
        )
    )
    return "ex-%d" % i


def notifier(store, clock, **kw):
    feed = LogFollower(store, clock=clock).start()
    kw.setdefault("retry_first", 1.0)
    kw.setdefault("retry_max", 8.0)
    kw.setdefault("deadline", 30.0)
    return Notifier(store, feed, "me", clock=clock, timeout=2.0, **kw)


def run(n):
    """One pass, as the daemon's loop makes it."""
    n.feed.poll()
    n.expand()
    return n.deliver_due()


def test_signature_round_trip_and_what_verify_refuses():
    body = b'{"a": 1}'
    headers = signing.sign(SECRET, body, now=1000)
    assert headers["X-St2bridge-Timestamp"] == "1000"
    mac = headers["X-St2bridge-Signature"]
    assert mac.startswith("sha256=") and len(mac) == 7 + 64
    assert signing.verify(SECRET, "1000", body, mac, now=1100)
    assert not signing.verify(SECRET, "1000", body + b" ", mac, now=1100)  # body changed
    assert not signing.verify("another-secret-16ch", "1000", body, mac, now=1100)
    assert not signing.verify(SECRET, "1000", body, mac, now=2000)  # too old: a replay
    assert not signing.verify(SECRET, "999", body, mac, now=1000)  # timestamp swapped
    assert not signing.verify(SECRET, None, body, mac)


def test_backoff_doubles_up_to_the_cap_with_jitter():
    assert [backoff(a, 1.0, 8.0, rng=lambda: 0.5) for a in range(1, 6)] == [1, 2, 4, 8, 8]
    assert 0.8 <= backoff(1, 1.0, 8.0) <= 1.2


def test_an_end_is_delivered_signed_to_each_sink_once(store, receiver):
    clock = Clock(100.0)
    n = notifier(store, clock, global_sinks=[{"url": receiver.url + "/g", "secret": SECRET}])
    rid = execution(store, 1, sinks=[(receiver.url, False)])
    store.update_execution(rid, {"status": st.RUNNING, "engine_state": "RUNNING"})
    store.update_execution(rid, {"status": st.SUCCEEDED, "output": {"r": 1}})
    assert run(n) == 2
    got = receiver.wait_for(2)
    for _, headers, body in got:
        assert verify_webhook(SECRET, headers, body, tolerance=10**10)
        doc = json.loads(body)
        assert doc["event"] == "end" and doc["status"] == st.SUCCEEDED
        assert doc["execution"]["id"] == rid and doc["execution"]["output"] == {"r": 1}
        assert headers["X-St2bridge-Delivery"].endswith(tuple("0123456789abcdef"))
    _wait_done(n)
    assert store.count_notifications() == {"delivered": 2}
    assert run(n) == 0 and n.expand() == 0  # nothing twice
    assert store.get_cursor("notify") == store.last_change_seq()


def test_status_changes_go_only_to_sinks_that_ask(store, receiver):
    clock = Clock(100.0)
    n = notifier(store, clock)
    rid = execution(store, 1, sinks=[(receiver.url + "/all", True), (receiver.url + "/end", False)])
    store.update_execution(rid, {"status": st.PAUSED})
    store.update_execution(rid, {"status": st.FAILED})
    run(n)
    _wait_done(n)
    run(n)  # the end waits behind the status change of the same sink
    _wait_done(n)
    paths = sorted((json.loads(b)["event"], h.get("Host")) for _, h, b in receiver.requests)
    assert [e for e, _ in paths] == ["end", "end", "status"]


def test_a_failing_sink_is_retried_with_backoff_then_failed_and_resent(store, receiver):
    clock = Clock(100.0)
    n = notifier(store, clock, deadline=5.0)
    receiver.status = 500
    rid = execution(store, 1, sinks=[(receiver.url, False)])
    store.update_execution(rid, {"status": st.SUCCEEDED})
    run(n)
    _wait_done(n)
    [note] = store.list_notifications()
    assert note["status"] == "pending" and note["attempts"] == 1
    assert note["last_error"] == "HTTP 500" and 100.8 <= note["next_attempt_at"] <= 101.2
    assert run(n) == 0  # not due yet
    clock.now += 1.3
    run(n)
    _wait_done(n)
    clock.now += 10
    run(n)
    _wait_done(n)
    [note] = store.list_notifications()
    assert note["status"] == "failed" and "deadline" in note["last_error"]
    assert store.count_notifications() == {"failed": 1}
    receiver.status = 200
    resend(store, note["id"], clock(), 60.0)
    run(n)
    _wait_done(n)
    assert store.get_notification(note["id"])["status"] == "delivered"
    assert len(receiver.requests) == 4


def test_one_sink_gets_one_executions_notifications_in_order(store, receiver):
    clock = Clock(100.0)
    n = notifier(store, clock)
    rid = execution(store, 1, sinks=[(receiver.url, True)])
    store.update_execution(rid, {"status": st.PAUSED})
    store.update_execution(rid, {"status": st.RUNNING})
    store.update_execution(rid, {"status": st.SUCCEEDED})
    for _ in range(3):
        assert run(n) == 1  # one at a time: the next waits for the one before
        _wait_done(n)
    assert [json.loads(b)["status"] for _, _, b in receiver.requests] == [
        st.PAUSED,
        st.RUNNING,
        st.SUCCEEDED,
    ]


def test_a_notification_of_a_killed_process_is_sent_after_its_lease(store, receiver):
    clock = Clock(100.0)
    dead = notifier(store, clock, lease_seconds=10.0)
    dead.spawn = lambda fn, *args: None  # claims, then "dies" before sending
    rid = execution(store, 1, sinks=[(receiver.url, False)])
    store.update_execution(rid, {"status": st.SUCCEEDED})
    assert run(dead) == 1
    alive = notifier(store, clock, lease_seconds=10.0)
    alive.owner = "other"
    assert run(alive) == 0  # leased by the dead one
    clock.now += 11
    assert run(alive) == 1
    _wait_done(alive)
    assert store.count_notifications() == {"delivered": 1}


def _wait_done(n):
    # spawn runs inline here: deliveries are done when deliver_due returns
    assert not n.in_flight


def test_status_changes_nobody_wants_cost_no_record_read(store, receiver):
    clock = Clock(100.0)
    n = notifier(store, clock)
    reads = []
    real = store.get_execution
    store.get_execution = lambda i: reads.append(i) or real(i)
    rid = execution(store, 1, sinks=[(receiver.url, False)])
    store.update_execution(rid, {"status": st.PAUSED})
    store.update_execution(rid, {"status": st.RUNNING})
    store.update_execution(rid, {"status": st.SUCCEEDED})
    run(n)
    assert reads == [rid]  # the end's body only
    assert [json.loads(b)["event"] for _, _, b in receiver.wait_for(1)] == ["end"]
