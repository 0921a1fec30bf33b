"""The change listing shared by a tracker's batches (st2bridge/tracker/changefeed.py)."""

import calendar
import time

import pytest

from st2bridge import errors
from st2bridge.tracker.changefeed import ChangeFeed, filter_time
from tests.support.fake_time import Clock

ALL = ["ex%d" % i for i in range(3000)] + ["old", "new", "a"]


def stamp(ts):
    return filter_time(ts)


class ListingEngine:
    """Answers change listings from a table of (id -> (state, updated_at epoch)),
    as Mistral does: every row with updated_at >= the floored filter time."""

    def __init__(self):
        self.rows = {}
        self.listed = []  # the `since` of each listing, as epoch
        self.broken = None

    def set(self, ex_id, state, at):
        self.rows[ex_id] = (state, at)

    def list_executions(self, *, fields, updated_at, nulls):
        assert updated_at.startswith("gte:") and nulls == "task_execution_id"
        since = calendar.timegm(time.strptime(updated_at[4:], "%Y-%m-%d %H:%M:%S"))
        self.listed.append(since)
        if self.broken is not None:
            return [self.broken]
        return [
            {"id": i, "state": s, "state_info": None, "updated_at": stamp(at)}
            for i, (s, at) in self.rows.items()
            if int(at) >= since
        ]


@pytest.fixture
def env():
    clock = Clock(1_800_000_000.0)
    engine = ListingEngine()
    feed = ChangeFeed(engine, sync_overlap=3.0, retain=60.0, clock=clock)
    return clock, engine, feed


def test_the_first_round_lists_the_burst_once_then_only_what_changed(env):
    clock, engine, feed = env
    start = clock()
    for i in range(3000):
        engine.set("ex%d" % i, "RUNNING", start)
    clock.now += 1
    # Three batches of the same round, each asking from the burst's start.
    rows, listed_at = feed.changes_since(start - 3, ALL)
    assert len(rows) == 3000 and listed_at == clock()
    engine.set("ex7", "SUCCESS", clock() + 0.5)
    clock.now += 1
    rows2, _ = feed.changes_since(start - 3, ALL)
    rows3, _ = feed.changes_since(start - 3, ALL)
    assert rows2["ex7"]["state"] == "SUCCESS" and len(rows3) == 3000
    # The later listings asked only for the last seconds, not the burst again.
    assert engine.listed[0] == int(start - 3)
    assert all(since >= engine.listed[0] + 1 - 3 for since in engine.listed[1:])
    assert engine.listed[1] == int(start + 1 - 3)


def test_batches_within_fresh_for_share_one_listing_and_its_start():
    clock, engine = Clock(1_800_000_000.0), ListingEngine()
    feed = ChangeFeed(engine, sync_overlap=3.0, retain=60.0, clock=clock, fresh_for=1.0)
    start = clock()
    engine.set("ex1", "RUNNING", start)
    clock.now += 2
    _, first_at = feed.changes_since(start - 3, ALL)
    engine.set("ex1", "SUCCESS", clock() + 0.2)  # after that listing started
    clock.now += 0.5
    rows, listed_at = feed.changes_since(start - 3, ALL)
    # Answered from the listing of 0.5 s ago: exact up to ITS start, so that
    # start is what the batch records (the change after it is for the next round).
    assert len(engine.listed) == 1 and listed_at == first_at
    assert rows["ex1"]["state"] == "RUNNING"
    clock.now += 0.6  # 1.1 s after the listing: no longer fresh
    rows, listed_at = feed.changes_since(start - 3, ALL)
    assert len(engine.listed) == 2 and listed_at == clock()
    assert rows["ex1"]["state"] == "SUCCESS"


def test_a_batch_older_than_the_window_lists_even_when_the_feed_is_fresh():
    clock, engine = Clock(1_800_000_000.0), ListingEngine()
    feed = ChangeFeed(engine, sync_overlap=3.0, retain=60.0, clock=clock, fresh_for=1.0)
    engine.set("old", "RUNNING", clock() - 20)
    engine.set("new", "RUNNING", clock())
    feed.changes_since(clock() - 3, ALL)
    rows, _ = feed.changes_since(clock() - 30, ALL)  # older than covers_from
    assert len(engine.listed) == 2 and set(rows) == {"old", "new"}


def test_rows_older_than_the_batch_are_not_returned(env):
    clock, engine, feed = env
    engine.set("old", "RUNNING", clock())
    clock.now += 20
    engine.set("new", "RUNNING", clock())
    feed.changes_since(clock() - 30, ALL)
    rows, _ = feed.changes_since(clock() - 5, ALL)
    assert set(rows) == {"new"}


def test_a_batch_older_than_the_window_lists_from_its_own_time_again(env):
    clock, engine, feed = env
    engine.set("a", "RUNNING", clock())
    feed.changes_since(clock() - 3, ALL)
    clock.now += 120  # past `retain`: the window moved on
    feed.changes_since(clock() - 3, ALL)
    assert feed.covers_from == clock() - 60
    engine.listed.clear()
    rows, _ = feed.changes_since(clock() - 200, ALL)
    assert engine.listed == [int(clock() - 200)] and "a" in rows


def test_a_malformed_listing_changes_nothing(env):
    clock, engine, feed = env
    engine.set("a", "RUNNING", clock())
    _, listed_at = feed.changes_since(clock() - 3, ALL)
    clock.now += 5
    for bad in ({}, {"id": "a"}, {"id": "a", "state": "RUNNING", "updated_at": "soon"}, []):
        engine.broken = bad
        with pytest.raises(errors.EngineError):
            feed.changes_since(clock() - 3, ALL)
        assert feed.listed_at == listed_at and set(feed.rows) == {"a"}


def test_an_empty_listing_moves_nothing(env):
    # An engine that lost its data, or a proxy answering an empty list,
    # proves nothing: the batch keeps its synced_at, the window stays.
    clock, engine, feed = env
    engine.set("a", "RUNNING", clock())
    _, listed_at = feed.changes_since(clock() - 3, ALL)
    engine.rows.clear()  # the next listings answer empty
    clock.now += 5
    _, at = feed.changes_since(clock() - 3, ALL)
    assert at is None and feed.listed_at == listed_at
    engine.listed.clear()
    clock.now += 5
    feed.changes_since(clock() - 3, ALL)
    assert engine.listed == [int(listed_at - 3)]  # from where rows were last seen
    fresh = ChangeFeed(engine, sync_overlap=3.0, retain=60.0, clock=clock)
    assert fresh.changes_since(clock() - 3, ALL) == ({}, None) and fresh.covers_from is None
