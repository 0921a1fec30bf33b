"""The change feed and its Server-Sent Events: what a subscriber sees, and
what it gets back after a reconnect with Last-Event-ID."""

import json

import pytest

from st2bridge import status as st
from st2bridge.api.stream import LogFollower, events, settled
from st2bridge.store.base import new_execution_record
from st2bridge.store.sqlite import SqliteStore
from tests.support import engine_sim
from tests.support.api_app import ApiHarness


def parse(chunks):
    """SSE bytes -> [(id, event, data)] (comments and retry lines skipped)."""
    out = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            out.append(
                (
                    int(fields["id"]) if "id" in fields else None,
                    fields["event"],
                    json.loads(fields["data"]),
                )
            )
    return out


def take(gen, feed, n):
    """The next n events of a subscriber's generator (polling the feed between)."""
    got = []
    for _ in range(200):
        if len(got) >= n:
            return got
        feed.poll()
        got += parse([next(gen)])
    raise AssertionError("only %d events of %d: %r" % (len(got), n, got))


def rec(i, **fields):
    return new_execution_record(
        id="ex-%d" % i,
        workflow_name="wf",
        engine_execution_id="en-%d" % i,
        status=st.RUNNING,
        created_at=1.0,
        updated_at=1.0,
        **fields,
    )


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "b.db"))
    yield s
    s.close()


def test_settled_waits_for_a_young_gap_and_skips_an_old_one():
    entries = [{"seq": 2, "written_at": 10.0}, {"seq": 4, "written_at": 10.0}]
    assert [e["seq"] for e in settled(entries, 1, now=10.5, gap_wait=1.0)] == [2]
    assert [e["seq"] for e in settled(entries, 1, now=11.5, gap_wait=1.0)] == [2, 4]
    assert settled([{"seq": 3, "written_at": 10.0}], 1, now=10.2, gap_wait=1.0) == []


def test_a_subscriber_sees_each_change_with_its_id(store):
    feed = LogFollower(store).start()
    gen = events(feed, keepalive=0.05)
    assert next(gen) == b"retry: 1000\n\n"
    store.create_execution(rec(1))
    store.update_task("ex-1", None, {"id": "t1", "name": "a", "status": st.RUNNING})
    store.update_execution("ex-1", {"status": st.SUCCEEDED})
    got = take(gen, feed, 3)
    assert [(e, d["execution_id"], d["status"]) for _, e, d in got] == [
        ("created", "ex-1", st.RUNNING),
        ("task", "ex-1", st.RUNNING),
        ("end", "ex-1", st.SUCCEEDED),
    ]
    assert [i for i, _, _ in got] == sorted(i for i, _, _ in got)
    assert got[1][2]["task"]["name"] == "a" and got[2][2]["time"].endswith("+00:00")
    assert feed.subscribers == 1
    gen.close()
    assert feed.subscribers == 0


def test_reconnecting_with_last_event_id_gets_what_was_missed(store):
    feed = LogFollower(store, buffer_size=2).start()
    store.create_execution(rec(1))
    feed.poll()
    first = feed.cursor
    for i in range(2, 8):  # more than the memory keeps: read back from the store
        store.create_execution(rec(i))
    feed.poll()
    gen = events(feed, last_id=first, keepalive=0.05)
    next(gen)
    got = take(gen, feed, 6)
    assert [d["execution_id"] for _, _, d in got] == ["ex-%d" % i for i in range(2, 8)]


def test_a_pruned_window_is_announced_with_a_reset(store):
    feed = LogFollower(store, buffer_size=1).start()
    for i in range(3):
        store.create_execution(rec(i))
    feed.poll()
    store.prune_changes(10**12, keep_after_seq=feed.cursor - 1)
    gen = events(feed, last_id=0, keepalive=0.05)
    next(gen)
    assert b"event: reset" in next(gen)
    assert [d["execution_id"] for _, _, d in take(gen, feed, 1)] == ["ex-2"]


def test_an_idle_stream_sends_keepalives_and_ends_on_stop(store):
    feed = LogFollower(store).start()
    gen = events(feed, keepalive=0.01)
    next(gen)
    assert next(gen) == b": keepalive\n\n"
    feed.stop()
    assert list(gen) == []


def test_the_stream_endpoint_filters_by_execution_and_resumes(tmp_path):
    sim = engine_sim.start_in_thread(duration=600)
    api = ApiHarness(tmp_path, sim)
    try:
        a = api.call("POST", "/v1/executions", {"definition": WF_A, "input": {}}).body
        b = api.call("POST", "/v1/executions", {"definition": WF_A, "input": {}}).body
        api.feed.poll()
        answer = api.call(
            "GET", "/v1/stream?execution=" + b["id"][:8], headers={"Last-Event-ID": "0"}
        )
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        got = take(iter(answer.body), api.feed, 2)
        assert {d["execution_id"] for _, _, d in got} == {b["id"]}
        assert [e for _, e, _ in got] == ["created", "status"]
        assert a["id"] != b["id"]
    finally:
        api.close()
        sim.stop()


WF_A = "version: '2.0'\nwf_a:\n  tasks:\n    t:\n      action: std.noop\n"


def test_retention_keeps_what_the_notifier_has_not_expanded_until_the_deadline(store):
    import time
    from types import SimpleNamespace

    from st2bridge.api import retention

    conf = SimpleNamespace(
        api=SimpleNamespace(stream_window=100.0), notify=SimpleNamespace(deadline_seconds=1000.0)
    )
    for i in range(4):
        store.create_execution(rec(i))
    seqs = [c["seq"] for c in store.read_changes(0)]
    store.advance_cursor("notify", seqs[1])
    now = time.time()
    assert retention.prune(store, conf, now) == 0  # inside the window
    assert retention.prune(store, conf, now + 500) == 2  # past it: the expanded ones
    assert [c["seq"] for c in store.read_changes(0)] == seqs[2:]
    assert retention.prune(store, conf, now + 2000) == 2  # past the deadline: all
    assert store.read_changes(0) == []
