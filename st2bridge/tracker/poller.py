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
tasks (and their sub-workflows' tasks) are read, and on a terminal state
output and tasks are fetched once. Every engine answer is checked first: a
malformed one is an engine error (back off, the record unchanged).

When an execution is due comes from st2bridge.schedule. In callback mode the
poller is only the safety net (tracker/safety.py): a due execution whose
callbacks went to a tracker that is still alive is not checked; one whose
tracker is gone (or that never sent a callback) is checked once, and again
`stale_after` later. Tasks still going after their workflow ended are
followed (tracker/settle.py).
All timing comes from `now` and the records, so tests use a fixed clock.
"""

import logging
import random
import time

from st2bridge import concurrency, control, errors, results, taskview
from st2bridge import status as st
from st2bridge.schedule import Schedule
from st2bridge.tracker import safety
from st2bridge.tracker.changefeed import ChangeFeed
from st2bridge.tracker.settle import Settler
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
        mode="poll",
        stale_after=30.0,
        heartbeat_interval=5.0,
        settle_timeout=None,
        stuck=None,
    ):
        self.engine = engine
        self.store = store
        self.executor = executor
        self.owner = owner
        self.query_interval = query_interval
        self.schedule = Schedule(
            mode,
            query_interval=query_interval,
            stale_after=stale_after,
            jitter_interval=jitter_interval,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            rng=rng,
        )
        # A lease must outlast one check (engine read timeout included); the
        # daemon's heartbeat renews it for longer ones.
        self.lease_seconds = lease_seconds or max(60.0, 3 * query_interval)
        self.batch_size = batch_size
        self.batch_window = batch_window
        self.sync_overlap = sync_overlap
        self.verify_interval = verify_interval
        self.backoff_max = backoff_max
        self.not_found_confirmations = not_found_confirmations
        self.submit = submit  # re-submits a `requested` execution (Runner.submit)
        self.heartbeat_interval = heartbeat_interval
        self.stuck = stuck  # StuckWatch (st2bridge/tracker/stuckwatch.py) or None
        self.clock = clock
        self.stats = PollStats()
        self.settler = Settler(engine, store, clock, **_given(timeout=settle_timeout))
        self._syncs = 0
        self._syncs_lock = concurrency.current().lock()
        # Changes are kept for a few intervals; older batches list afresh.
        # Batches within a fifth of an interval (at most 1 s) share a listing.
        self.feed = ChangeFeed(
            engine,
            sync_overlap=sync_overlap,
            retain=max(60.0, 4 * query_interval) + sync_overlap,
            clock=clock,
            fresh_for=min(1.0, query_interval / 5),
        )

    @property
    def rng(self):
        return self.schedule.rng

    @rng.setter
    def rng(self, rng):
        self.schedule.rng = rng

    def settle_later(self, record):
        """Follow the tasks of an ended execution that are still going."""
        self.settler.later(record)

    # -- the pass ---------------------------------------------------------

    def tick(self, now):
        """Claim what is due and start its checks; return seconds to wait."""
        for entry in self.settler.take_due(now, max(0, self.executor.free() - 1)):
            self.executor.submit(self.settler.run, entry)
        free = self.executor.free()
        if not free or self._syncs >= MAX_SYNCS:
            # Busy: nothing could be started, so the store is not asked either
            # (under load this pass runs every POOL_FULL_WAIT).
            return POOL_FULL_WAIT
        claimed = self.store.claim_due(self.owner, now, self.lease_seconds, self.batch_size)
        if claimed:
            self._dispatch(self._safety_net(claimed, now), now, free)
        due = min(
            (t for t in (self.store.next_due_at(), self.settler.next_due()) if t is not None),
            default=None,
        )
        if due is None:
            return self.query_interval
        if due > now:
            # Sleep a little past the first due time: whatever falls due
            # meanwhile is claimed with it and checked by the same listing.
            return due - now + self.batch_window
        return 0.0 if self.executor.free() and self._syncs < MAX_SYNCS else POOL_FULL_WAIT

    def _safety_net(self, claimed, now):
        """Callback mode: check only what the safety net must (tracker/safety.py);
        hand the others back until they have been silent for stale_after again."""
        if self.schedule.mode != "callback":
            return claimed
        check, skip = safety.split(self.store, claimed, self.owner, now, self.heartbeat_interval)
        if skip:
            due = self.schedule.after_skip(now)
            self.store.update_many(
                [(r["id"], dict(RELEASE, next_poll_at=due)) for r in skip],
                if_lease_owner=self.owner,
            )
        if check:
            LOG.info(
                "%d executions silent for %.0f s whose callbacks went to a tracker that is "
                "gone (or never came): checking them with the engine",
                len(check),
                self.schedule.stale_after,
            )
        return check

    def _dispatch(self, claimed, now, free):
        single, batch = [], []
        for record in claimed:
            (single if self._needs_own_query(record, now) else batch).append(record)
        if len(batch) < SMALL_BATCH:
            single, batch = single + batch, []
        if batch:
            free -= 1
            with self._syncs_lock:  # a sync worker lowers it
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
            or safety.overdue(record, now)
            or now - (record.get("verified_at") or record["created_at"]) >= self.verify_interval
        )

    def next_poll_at(self, now, due=None):
        """When an execution checked now is due again (st2bridge.schedule)."""
        return self.schedule.after_check(now, due)

    # -- a batch: one listing -------------------------------------------------

    def sync(self, records):
        """Check a batch with one change listing. Never raises."""
        try:
            self._sync(records)
        finally:
            with self._syncs_lock:
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
                update = dict(
                    RELEASE,
                    next_poll_at=self.next_poll_at(started, record.get("next_poll_at")),
                    poll_failures=0,
                    **self._stuck_changes(record, started),
                )
                if listed_at is not None:
                    # None: the listing was empty, which proves nothing (an
                    # engine that lost its data, a proxy answering empty).
                    update["synced_at"] = listed_at
                unchanged.append((record["id"], update))
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
            if listed_at is not None and listed_at < started and _not_newer(row, record):
                # A shared listing from before this batch, no newer than the
                # record (a callback or a GET wrote it since): not applied, lest
                # an older state overwrite a newer one; the record's own GET decides.
                self.executor.submit(self.poll, record)
            else:
                self.executor.submit(
                    self._safely, self._apply, record, row, started, False, listed_at
                )

    def _back_off_batch(self, records, exc, now):
        updates, longest = [], 0.0
        for record in records:
            failures = (record.get("poll_failures") or 0) + 1
            due = self.schedule.after_failure(now, failures)
            longest = max(longest, due - now)
            updates.append((record["id"], dict(RELEASE, next_poll_at=due, poll_failures=failures)))
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
            execution = results.get_light(self.engine, record["engine_execution_id"])
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
        """Record what a checked light query or listing row says about one
        execution (`synced_at`: when the listing it comes from started;
        default `now`)."""
        if execution.get("state") in st.ENGINE_TERMINAL:
            # The two reads one after the other: at scale the tracker is bound by
            # its CPU, and reading them side by side costs a hand-over more.
            done = results.finish(self.engine, self.store, record, self.clock, "poll")
            if done.written:
                LOG.info("execution %s %s (finished by poll)", record["id"], done.status)
                if done.open_tasks:
                    self.settle_later(record)
            if done.ended:
                return
            execution = results.get_light(self.engine, record["engine_execution_id"])
        changes = dict(
            RELEASE,
            poll_failures=0,
            not_found_count=0,
            synced_at=synced_at or now,
            next_poll_at=self.next_poll_at(now, record.get("next_poll_at")),
        )
        if verified:
            changes["verified_at"] = now
        seen = (execution.get("state"), execution.get("updated_at"))
        if (
            seen == (record.get("engine_state"), record.get("engine_updated_at"))
            and record["status"] != st.REQUESTED
        ):
            changes.update(self._stuck_changes(dict(record, **changes), now))
            self.store.update_execution(record["id"], changes, if_lease_owner=self.owner)
            return
        # Moved: read the task view too (sub-workflows included; finished
        # sub-workflows are not read again) and write both at once.
        tree = taskview.read_tree(self.engine, record["engine_execution_id"], record.get("tasks"))
        changes.update(results.progress_changes(execution, None, now))
        seen_now = dict(record, **changes, tasks=taskview.merge(record.get("tasks"), tree))
        changes.update(self._stuck_changes(seen_now, now))
        results.write_tasks(
            self.engine,
            self.store,
            record["id"],
            tree,
            changes,
            if_active=True,
            if_lease_owner=self.owner,
        )

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
        due = self.schedule.after_not_found(now, count)
        LOG.warning(
            "engine answered 404 for execution %s (%d of %d); checking again in %.1f s",
            record["id"],
            count,
            self.not_found_confirmations,
            due - now,
        )
        self._reschedule(record, due, {"not_found_count": count})

    def _back_off(self, record, exc, now):
        failures = (record.get("poll_failures") or 0) + 1
        due = self.schedule.after_failure(now, failures)
        LOG.warning(
            "checking execution %s failed (%d in a row): %s; retrying in %.1f s",
            record["id"],
            failures,
            exc,
            due - now,
        )
        self._reschedule(record, due, {"poll_failures": failures})

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


def _not_newer(row, record):
    """Whether a listing row is no newer than what the record holds already."""
    known = results.engine_time(record.get("engine_updated_at"))
    return known is not None and results.engine_time(row.get("updated_at")) <= known


def _given(**values):
    return {k: v for k, v in values.items() if v is not None}
