"""Following tasks that are still going when their workflow has ended.

A workflow can end while some of its tasks still run (an engine command such
as `succeed`, a failure in another branch): the engine finishes those tasks
later, and the terminal record's task rows must follow. Callbacks report them
when task events are on; otherwise (and in poll mode, where nothing reports)
the tracker re-reads the task view after 1, 2, 4 ... up to MAX_GAP seconds,
until every task has ended or `timeout` has passed.

The queue lives in the tracker's memory: a tracker that dies forgets it (the
record's status, output and error are final and complete already; only
those tasks' rows stay as last read).
"""

import heapq
import itertools
import logging

from st2bridge import results

LOG = logging.getLogger(__name__)

FIRST_GAP = 1.0
MAX_GAP = 30.0
TIMEOUT = 600.0


class Settler:
    def __init__(self, engine, store, clock, timeout=TIMEOUT):
        self.engine = engine
        self.store = store
        self.clock = clock
        self.timeout = timeout
        self._queue = []  # (due, seq, record id, engine execution id, gap, deadline)
        self._seq = itertools.count()
        self._queued = set()

    def later(self, record):
        """Re-read `record`'s tasks until they have all ended (idempotent)."""
        if record["id"] in self._queued:
            return
        now = self.clock()
        self._queued.add(record["id"])
        heapq.heappush(
            self._queue,
            (
                now + FIRST_GAP,
                next(self._seq),
                record["id"],
                record["engine_execution_id"],
                FIRST_GAP,
                now + self.timeout,
            ),
        )
        LOG.info(
            "execution %s ended with tasks still going in the engine; following them "
            "for up to %.0f s",
            record["id"],
            self.timeout,
        )

    def next_due(self):
        return self._queue[0][0] if self._queue else None

    def take_due(self, now, limit):
        """Entries due by `now`, at most `limit`."""
        out = []
        while self._queue and self._queue[0][0] <= now and len(out) < limit:
            out.append(heapq.heappop(self._queue))
        return out

    def run(self, entry):
        """Re-read one execution's tasks; queue it again while some still go.
        Never raises."""
        _, _, record_id, engine_id, gap, deadline = entry
        try:
            still = results.refresh_tasks(
                self.engine, self.store, {"id": record_id, "engine_execution_id": engine_id}
            )
        except Exception:  # a bug must not kill the green thread silently
            LOG.exception("following the tasks of execution %s failed", record_id)
            still = None
        now = self.clock()
        if still == 0:
            self._queued.discard(record_id)
            LOG.info("execution %s: every task has ended; its task view is final", record_id)
            return
        if now >= deadline:
            self._queued.discard(record_id)
            LOG.warning(
                "execution %s: tasks still going %.0f s after the end; no longer followed "
                "(its task view shows them as last read)",
                record_id,
                self.timeout,
            )
            return
        gap = min(MAX_GAP, gap * 2)
        heapq.heappush(
            self._queue, (now + gap, next(self._seq), record_id, engine_id, gap, deadline)
        )
