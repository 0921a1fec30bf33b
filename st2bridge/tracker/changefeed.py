"""One change listing shared by every batch of a tracker.

A batch needs "every root execution the engine changed since S" (S: the
batch's oldest `synced_at`, minus `sync_overlap`). Listed batch by batch,
the first round after N executions start costs N/1000 pages for each of N/1000
batches: N^2/1000 rows (a 30,000-execution burst never settled). The feed
lists once from the oldest S a batch asks for, keeps the rows (id, state,
state_info, updated_at: about 200 bytes each), and from then on lists only
what changed since its previous listing (minus the overlap, which covers the
engine's one-second timestamps and commits that land late). A round then
costs what changed, once.

A listing also answers every batch that asks within `fresh_for` seconds of
its start (a fraction of query_interval): with N executions there are N/1000
batches per interval, and each listing holds `sync_overlap` seconds of
changes, so listing for every batch would cost rows in proportion to N^2
(batches x changes); with the reuse the feed lists at most once per
`fresh_for`, and the rows it reads grow with N. A reused answer is exact up to
its own start, which is what the batch records as `synced_at`: a change after
it is seen by the next round.

What a batch learns is exact up to the START of the listing it was answered
from: that instant, `listed_at`, is the batch's new `synced_at`.
Rows older than `retain` seconds are dropped; a batch asking for older
changes (a record backed off for long, a tracker just started) makes the feed
list from its S again. A malformed listing changes nothing: the feed keeps
its rows and window, and the batch backs off; an empty one moves nothing
either (while nothing changes the next listing reaches back as far: it
costs what changed, which is nothing).
"""

import math
import time

from st2bridge import concurrency, errors
from st2bridge.results import LIGHT_FIELDS, engine_time

PRUNE_SLACK = 10.0


def filter_time(ts):
    """Mistral's filter syntax for a UTC time (one-second resolution)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


class ChangeFeed:
    def __init__(self, engine, *, sync_overlap, retain, clock, fresh_for=0.0):
        self.engine = engine
        self.sync_overlap = sync_overlap
        self.fresh_for = fresh_for
        self.retain = retain
        self.clock = clock
        self.rows = {}  # engine execution id -> light listing row
        self.times = {}  # engine execution id -> its updated_at as epoch seconds
        self.covers_from = None  # every change since this (bridge) time is in `rows`
        self.listed_at = None  # when the last listing started
        self._lock = (
            concurrency.current().lock()
        )  # one listing at a time; the seam makes it cooperative
        self.listings = 0  # listing requests sent (pages count once each listing)

    def changes_since(self, since, wanted):
        """(the rows of the `wanted` engine ids that changed at or after
        `since`, when the listing they come from started). Raises EngineError
        (the caller backs off). An empty listing proves nothing (an engine
        that lost its data, a proxy answering empty): the window stays where
        it was and the time returned is None (the batch keeps its synced_at)."""
        with self._lock:
            now = self.clock()
            self._prune(now)  # before, so that rows listed now for an old batch are kept
            if self.covers_from is None or since < self.covers_from:
                listed = self._list(since)  # raises before anything changes
                if listed:
                    self.covers_from = since
            elif now - self.listed_at < self.fresh_for:
                return self._found(since, wanted), self.listed_at
            else:
                listed = self._list(self.listed_at - self.sync_overlap)
            if listed:
                self._merge(listed)
                self.listed_at = now
            return self._found(since, wanted), (now if listed else None)

    def _found(self, since, wanted):
        """What a listing from `since` would hold: stamps are whole seconds."""
        oldest = math.floor(since)
        times, rows = self.times, self.rows
        return {i: rows[i] for i in wanted if i in rows and times[i] >= oldest}

    def _list(self, since):
        self.listings += 1
        rows = {}
        for row in self.engine.list_executions(
            fields=LIGHT_FIELDS,
            updated_at="gte:" + filter_time(since),
            nulls="task_execution_id",
        ):
            if not (
                isinstance(row, dict)
                and isinstance(row.get("id"), str)
                and isinstance(row.get("state"), str)
                and engine_time(row.get("updated_at")) is not None
            ):
                raise errors.EngineServerError(
                    "the engine's change listing holds a malformed row %.200r" % (row,)
                )
            rows[row["id"]] = row
        return rows

    def _merge(self, rows):
        self.rows.update(rows)
        self.times.update((i, engine_time(r["updated_at"])) for i, r in rows.items())

    def _prune(self, now):
        # Rows are kept up to PRUNE_SLACK seconds past `retain`: pruning
        # rebuilds both maps, so it is done every PRUNE_SLACK seconds, not on
        # every batch.
        oldest = now - self.retain
        if self.covers_from is not None and self.covers_from < oldest - PRUNE_SLACK:
            self.covers_from = oldest
            limit = math.floor(oldest)
            self.times = {i: t for i, t in self.times.items() if t >= limit}
            self.rows = {i: r for i, r in self.rows.items() if i in self.times}
