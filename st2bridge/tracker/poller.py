"""The polling core of the results tracker: one pass, `tick(now)`.

A pass claims the executions that are due (with a lease, so several trackers
can share one store) and checks them with the engine, then returns how long
the driver may sleep before anything else is due. Two ways to check:

- a batch: the root executions the engine changed since the batch was last
  in sync (`updated_at >= since`), from one change listing that every batch
  shares (tracker/changefeed.py: each listing asks only for what changed
  since the previous one). Every record in the batch that is not in it is
  unchanged, and is rescheduled in one store write. This is what lets one
  tracker follow tens of thousands of executions.
- one by one: a light GET of one execution, for what a listing cannot tell:
  a `requested` record (did the submit arrive?), a 404 being confirmed, a
  timeout, and a periodic check that the execution still exists
  (`verify_interval`; Mistral may expire it).

Only executions whose state or updated_at moved cost more requests: their
tasks are listed, and on a terminal state output and tasks are fetched once.
All timing comes from `now` and the records, so tests use a fixed clock.
"""

import logging
import random
import time

from st2bridge import control, errors, results
from st2bridge import status as st
from st2bridge.engine.retry import backoff_delay
from st2bridge.results import LIGHT_FIELDS, TASK_FIELDS
from st2bridge.tracker.changefeed import ChangeFeed
from st2bridge.tracker.stats import PollStats

LOG = logging.getLogger(__name__)

# While the pool is full and work is due, wait this long for a free slot
# instead of spinning.
POOL_FULL_WAIT = 0.05
# Fewer due records than this are cheaper to GET one by one than to list.
SMALL_BATCH = 4
# Batches being checked at once. More would only hold more records in memory:
# a batch is bound by the store and the tracker's own CPU, not by waiting.
MAX_SYNCS = 2

RELEASE = {"lease_owner": None, "lease_expires_at": None}


class Poller:
    def __init__(
        self,
        engine,
        store,
        executor,
        *,
        owner,
        query_interval=5.0,
        jitter_interval=0.1,
        lease_seconds=None,
        batch_size=1000,
        batch_window=0.0,
        sync_overlap=3.0,
        verify_interval=300.0,
        backoff_base=1.0,
        backoff_max=60.0,
        not_found_confirmations=3,
        submit=None,
        clock=time.time,
        rng=random.random,
        stuck=None,
    ):
        self.engine = engine
        self.store = store
        self.executor = executor
        self.owner = owner
        self.query_interval = query_interval
        self.jitter_interval = jitter_interval
        # A lease must outlast one check (engine read timeout included); the
        # daemon's heartbeat renews it for longer ones.
        self.lease_seconds = lease_seconds or max(60.0, 3 * query_interval)
        self.batch_size = batch_size
        self.batch_window = batch_window
        self.sync_overlap = sync_overlap
        self.verify_interval = verify_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.not_found_confirmations = not_found_confirmations
        self.submit = submit  # re-submits a `requested` execution (Runner.submit)
        self.stuck = stuck  # StuckWatch (st2bridge/tracker/stuckwatch.py) or None
        self.clock = clock
        self.rng = rng
        self.stats = PollStats()
        self._syncs = 0
        # Changes are kept for a few intervals; older batches list afresh.
        self.feed = ChangeFeed(
            engine,
            sync_overlap=sync_overlap,
            retain=max(60.0, 4 * query_interval) + sync_overlap,
            clock=clock,
        )

    # -- the pass ---------------------------------------------------------

    def tick(self, now):
        """Claim what is due and start its checks; return seconds to wait."""
        free = self.executor.free()
        if not free or self._syncs >= MAX_SYNCS:
            # Busy: nothing could be started, so the store is not asked either
            # (under load this pass runs every POOL_FULL_WAIT).
            return POOL_FULL_WAIT
        claimed = self.store.claim_due(self.owner, now, self.lease_seconds, self.batch_size)
        if claimed:
            self._dispatch(claimed, now, free)
        due = self.store.next_due_at()
        if due is None:
            return self.query_interval
        if due > now:
            # Sleep a little past the first due time: whatever falls due
            # meanwhile is claimed with it and checked by the same listing.
            return due - now + self.batch_window
        return 0.0 if self.executor.free() and self._syncs < MAX_SYNCS else POOL_FULL_WAIT

    def _dispatch(self, claimed, now, free):
        single, batch = [], []
        for record in claimed:
            (single if self._needs_own_query(record, now) else batch).append(record)
        if len(batch) < SMALL_BATCH:
            single, batch = single + batch, []
        if batch:
            free -= 1
            self._syncs += 1
            self.executor.submit(self.sync, batch)
        if len(single) > free:
            # Hand back what this pass cannot start; the next pass takes it.
            self.store.update_many(
                [(r["id"], RELEASE) for r in single[free:]], if_lease_owner=self.owner
            )
            single = single[:free]
        for record in single:
            self.executor.submit(self.poll, record)

    def _needs_own_query(self, record, now):
        return (
            record["status"] == st.REQUESTED
            or (record.get("not_found_count") or 0) > 0
            or (record.get("timeout_at") is not None and now >= record["timeout_at"])
            or now - (record.get("verified_at") or record["created_at"]) >= self.verify_interval
        )

    def next_poll_at(self, now, due=None):
        """When an execution checked now is due again: one interval plus
        jitter after its previous due time, so executions keep the spread
        their start times gave them instead of bunching up behind a slow
        pass; after it rather than `now` when it is more than an interval late."""
        base = due if due is not None and now - due < self.query_interval else now
        return max(now, base + self.query_interval + self.rng() * self.jitter_interval)

    # -- a batch: one listing -------------------------------------------------

    def sync(self, records):
        """Check a batch with one change listing. Never raises."""
        try:
            self._sync(records)
        finally:
            self._syncs -= 1

    def _sync(self, records):
        started = self.clock()
        since = min(r.get("synced_at") or r["created_at"] for r in records) - self.sync_overlap
        wanted = [r["engine_execution_id"] for r in records]
        try:
            # One listing shared by all batches: only what changed since it
            # last listed (tracker/changefeed.py).
            listed, listed_at = self.feed.changes_since(since, wanted)
        except errors.EngineError as exc:
            self._back_off_batch(records, exc, started)
            return
        except Exception:
            LOG.exception(
                "unexpected error listing changes for %d executions; "
                "their leases lapse and they are checked again",
                len(records),
            )
            return
        unchanged, changed = [], []
        for record in records:
            self.stats.polled(record, started)
            row = listed.get(record["engine_execution_id"])
            if row is None or (row.get("state"), row.get("updated_at")) == (
                record.get("engine_state"),
                record.get("engine_updated_at"),
            ):
                unchanged.append(
                    (
                        record["id"],
                        dict(
                            RELEASE,
                            next_poll_at=self.next_poll_at(started, record.get("next_poll_at")),
                            synced_at=listed_at,
                            poll_failures=0,
                            **self._stuck_changes(record, started),
                        ),
                    )
                )
            else:
                changed.append((record, row))
        try:
            self.store.update_many(unchanged, if_lease_owner=self.owner)
        except errors.StoreError as exc:
            LOG.warning(
                "store failed while rescheduling %d executions: %s; they are "
                "checked again when their leases lapse",
                len(unchanged),
                exc,
            )
        # What changed costs engine reads (a finish: output and tasks): in
        # the pool, side by side, not one after the other in this batch.
        for record, row in changed:
            self.executor.submit(self._safely, self._apply, record, row, started, False, listed_at)

    def _back_off_batch(self, records, exc, now):
        updates, longest = [], 0.0
        for record in records:
            failures = (record.get("poll_failures") or 0) + 1
            delay = backoff_delay(failures, self.backoff_base, self.backoff_max, self.rng)
            longest = max(longest, delay)
            updates.append(
                (record["id"], dict(RELEASE, next_poll_at=now + delay, poll_failures=failures))
            )
        LOG.warning(
            "listing changes for %d executions failed: %s; checking them again within %.1f s",
            len(records),
            exc,
            longest,
        )
        try:
            self.store.update_many(updates, if_lease_owner=self.owner)
        except errors.StoreError as store_exc:
            LOG.warning(
                "store failed too (%s); the leases lapse and the executions are checked again",
                store_exc,
            )

    # -- one execution: a light GET -----------------------------------------

    def poll(self, record):
        """Check one execution on its own. Never raises."""
        self._safely(self._poll, record)

    def _poll(self, record):
        now = self.clock()
        self.stats.polled(record, now)
        if record.get("timeout_at") and now >= record["timeout_at"]:
            # Cancels the engine execution unless --on-timeout leave (control.py).
            self._end(record, st.TIMEOUT, control.time_out(self.engine, record), now)
            return
        try:
            execution = self.engine.get_execution(
                record["engine_execution_id"], fields=LIGHT_FIELDS
            )
        except errors.EngineNotFound:
            self._not_found(record, now)
            return
        self._apply(record, execution, now, verified=True)

    def _safely(self, fn, record, *args):
        try:
            fn(record, *args)
        except errors.EngineError as exc:
            self._back_off(record, exc, self.clock())
        except errors.StoreError as exc:
            # The lease lapses and this or another tracker checks it again.
            LOG.warning(
                "store failed while checking execution %s: %s; it is checked "
                "again when its lease lapses in %.0f s",
                record["id"],
                exc,
                self.lease_seconds,
            )
        except Exception:  # a bug must not kill the green thread silently
            LOG.exception(
                "unexpected error checking execution %s; retrying in %.0f s",
                record["id"],
                self.backoff_max,
            )
            self._reschedule(record, self.clock() + self.backoff_max, {})

    def _apply(self, record, execution, now, verified=False, synced_at=None):
        """Record what a light query or listing row says about one execution
        (`synced_at`: when the listing it comes from started; default `now`)."""
        if execution.get("state") in st.ENGINE_TERMINAL:
            if results.finish(
                self.engine, self.store, record, self.clock, "poll", self.executor.concurrently
            ):
                LOG.info(
                    "execution %s %s (finished by poll)",
                    record["id"],
                    st.from_engine(execution["state"]),
                )
            return
        changes = {"poll_failures": 0, "not_found_count": 0, "synced_at": synced_at or now}
        if verified:
            changes["verified_at"] = now
        seen = (execution.get("state"), execution.get("updated_at"))
        if (
            seen != (record.get("engine_state"), record.get("engine_updated_at"))
            or record["status"] == st.REQUESTED
        ):
            tasks = self.engine.list_tasks(record["engine_execution_id"], fields=TASK_FIELDS)
            changes.update(results.progress_changes(execution, tasks, now))
        changes.update(self._stuck_changes(dict(record, **changes), now))
        self._reschedule(record, self.next_poll_at(now, record.get("next_poll_at")), changes)

    def _stuck_changes(self, record, now):
        """The stuck-execution watch's verdict on a record being rescheduled
        (st2bridge/tracker/stuckwatch.py): no engine request unless it is a suspect."""
        return self.stuck.check(record, now) if self.stuck else {}

    def _not_found(self, record, now):
        count = (record.get("not_found_count") or 0) + 1
        if record["status"] == st.REQUESTED and self.submit:
            # The runner recorded it but its submit never reached the engine.
            LOG.info(
                "execution %s was never received by the engine; submitting it now", record["id"]
            )
            try:
                self.submit(record)
            except errors.BridgeError as exc:
                LOG.warning("submitting execution %s failed: %s", record["id"], exc)
            self._reschedule(record, self.next_poll_at(now), {})
            return
        if count >= self.not_found_confirmations:
            self._end(
                record,
                st.ABANDONED,
                "the engine has no execution %s (404 on %d polls): it was "
                "deleted or expired" % (record["engine_execution_id"], count),
                now,
            )
            return
        delay = backoff_delay(count, self.backoff_base, self.backoff_max, self.rng)
        LOG.warning(
            "engine answered 404 for execution %s (%d of %d); checking again in %.1f s",
            record["id"],
            count,
            self.not_found_confirmations,
            delay,
        )
        self._reschedule(record, now + delay, {"not_found_count": count})

    def _back_off(self, record, exc, now):
        failures = (record.get("poll_failures") or 0) + 1
        delay = backoff_delay(failures, self.backoff_base, self.backoff_max, self.rng)
        LOG.warning(
            "checking execution %s failed (%d in a row): %s; retrying in %.1f s",
            record["id"],
            failures,
            exc,
            delay,
        )
        self._reschedule(record, now + delay, {"poll_failures": failures})

    def _reschedule(self, record, next_poll_at, changes):
        changes = dict(changes, next_poll_at=next_poll_at, **RELEASE)
        self.store.update_execution(record["id"], changes, if_lease_owner=self.owner)

    def _end(self, record, status, reason, now):
        written = self.store.update_execution(
            record["id"],
            dict(
                RELEASE,
                status=status,
                error=reason,
                ended_at=now,
                updated_at=now,
                finished_by="poll",
            ),
            if_active=True,
        )
        if written:
            LOG.warning("execution %s ended as %s: %s", record["id"], status, reason)
