"""The polling core of the results tracker: one pass, `tick(now)`.

A pass claims the executions that are due (with a lease, so several trackers
can share one store), hands each to the executor for one light query, and
returns how long the driver may sleep before anything else is due. All timing
comes from the `now` passed in and the records, so tests drive it with a fixed
clock and never sleep.
"""

import logging
import random
import time

from st2bridge import errors, results
from st2bridge import status as st
from st2bridge.engine.retry import backoff_delay

LOG = logging.getLogger(__name__)

LIGHT_FIELDS = ["id", "state", "state_info", "updated_at"]
TASK_FIELDS = ["id", "name", "state", "state_info", "type", "created_at",
               "updated_at", "started_at", "finished_at"]

# While the pool is full and work is due, wait this long for a free slot
# instead of spinning.
POOL_FULL_WAIT = 0.05


class Poller:
    def __init__(self, engine, store, executor, *, owner, query_interval=5.0,
                 jitter_interval=0.1, lease_seconds=None, backoff_base=1.0,
                 backoff_max=60.0, not_found_confirmations=3, submit=None,
                 clock=time.time, rng=random.random):
        self.engine = engine
        self.store = store
        self.executor = executor
        self.owner = owner
        self.query_interval = query_interval
        self.jitter_interval = jitter_interval
        # A lease must outlast one query (engine read timeout included).
        self.lease_seconds = lease_seconds or max(60.0, 3 * query_interval)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.not_found_confirmations = not_found_confirmations
        self.submit = submit   # re-submits a `requested` execution (Runner.submit)
        self.clock = clock
        self.rng = rng
        self.polls = 0

    # -- the pass ---------------------------------------------------------

    def tick(self, now):
        """Claim what is due and start its queries; return seconds to wait."""
        free = self.executor.free()
        if free:
            for record in self.store.claim_due(self.owner, now, self.lease_seconds, free):
                self.executor.submit(self.poll, record)
        due = self.store.next_due_at()
        if due is None:
            return self.query_interval
        wait = max(0.0, due - now)
        if wait == 0.0 and not self.executor.free():
            return POOL_FULL_WAIT
        return wait

    def next_poll_at(self, now):
        """When an execution polled now is due again: interval plus jitter."""
        return now + self.query_interval + self.rng() * self.jitter_interval

    # -- one execution ----------------------------------------------------

    def poll(self, record):
        """Query one execution and record what changed. Never raises."""
        self.polls += 1
        now = self.clock()
        try:
            if record.get("timeout_at") and now >= record["timeout_at"]:
                self._end(record, st.TIMEOUT, "tracking timed out after %.0f s"
                          % (record["timeout_at"] - record["created_at"]), now)
                return
            execution = self.engine.get_execution(record["engine_execution_id"],
                                                  fields=LIGHT_FIELDS)
            if execution.get("state") in st.ENGINE_TERMINAL:
                if results.finish(self.engine, self.store, record, self.clock(), "poll"):
                    LOG.info("execution %s %s (finished by poll)", record["id"],
                             st.from_engine(execution["state"]))
                return
            self._progress(record, execution, now)
        except errors.EngineNotFound:
            self._not_found(record, now)
        except errors.EngineError as exc:
            self._back_off(record, exc, now)
        except errors.StoreError as exc:
            # The lease lapses and this or another tracker polls it again.
            LOG.warning("store failed while polling execution %s: %s; it is polled "
                        "again when its lease lapses in %.0f s",
                        record["id"], exc, self.lease_seconds)
        except Exception:  # a bug must not kill the green thread silently
            LOG.exception("unexpected error polling execution %s; retrying later",
                          record["id"])
            self._reschedule(record, now + self.backoff_max, {})

    def _progress(self, record, execution, now):
        changes = {"poll_failures": 0, "not_found_count": 0}
        seen = (execution.get("state"), execution.get("updated_at"))
        if seen != (record.get("engine_state"), record.get("engine_updated_at")) \
                or record["status"] == st.REQUESTED:
            tasks = self.engine.list_tasks(record["engine_execution_id"], fields=TASK_FIELDS)
            changes.update(results.progress_changes(execution, tasks, now))
        self._reschedule(record, self.next_poll_at(now), changes)

    def _not_found(self, record, now):
        count = (record.get("not_found_count") or 0) + 1
        if record["status"] == st.REQUESTED and self.submit:
            # The runner recorded it but its submit never reached the engine.
            LOG.info("execution %s was never received by the engine; submitting it now",
                     record["id"])
            try:
                self.submit(record)
            except errors.BridgeError as exc:
                LOG.warning("submitting execution %s failed: %s", record["id"], exc)
            self._reschedule(record, self.next_poll_at(now), {})
            return
        if count >= self.not_found_confirmations:
            self._end(record, st.ABANDONED,
                      "the engine has no execution %s (404 on %d polls): it was "
                      "deleted or expired" % (record["engine_execution_id"], count), now)
            return
        delay = backoff_delay(count, self.backoff_base, self.backoff_max, self.rng)
        LOG.warning("engine answered 404 for execution %s (%d of %d); checking again in %.1f s",
                    record["id"], count, self.not_found_confirmations, delay)
        self._reschedule(record, now + delay, {"not_found_count": count})

    def _back_off(self, record, exc, now):
        failures = (record.get("poll_failures") or 0) + 1
        delay = backoff_delay(failures, self.backoff_base, self.backoff_max, self.rng)
        LOG.warning("polling execution %s failed (%d in a row): %s; retrying in %.1f s",
                    record["id"], failures, exc, delay)
        self._reschedule(record, now + delay, {"poll_failures": failures})

    def _reschedule(self, record, next_poll_at, changes):
        changes = dict(changes, next_poll_at=next_poll_at,
                       lease_owner=None, lease_expires_at=None)
        self.store.update_execution(record["id"], changes, if_lease_owner=self.owner)

    def _end(self, record, status, reason, now):
        written = self.store.update_execution(record["id"], {
            "status": status, "error": reason, "ended_at": now, "updated_at": now,
            "finished_by": "poll", "lease_owner": None, "lease_expires_at": None,
        }, if_active=True)
        if written:
            LOG.warning("execution %s ended as %s: %s", record["id"], status, reason)
