"""Handling one callback: authenticate, parse, record; finish on a terminal event.

Every rejected request changes nothing. A terminal event triggers one fetch of
the output and tasks; if that fails the record stays active and is marked due
for the poller, so a lost fetch costs a poll, never the result.
"""

import logging
import threading
import time
import weakref

from st2bridge import errors, results
from st2bridge.callbacks import events, secrets

LOG = logging.getLogger(__name__)


class CallbackHandler:
    def __init__(self, store, engine, *, mode="hybrid", stale_after=30.0, clock=time.time):
        self.store = store
        self.engine = engine
        self.mode = mode
        self.stale_after = stale_after
        self.clock = clock
        self.counts = {"accepted": 0, "rejected": 0}
        # One lock per execution: its task events arrive concurrently and each
        # one rewrites the task list (read-modify-write).
        self._locks = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    def _lock(self, execution_id):
        with self._locks_guard:
            lock = self._locks.get(execution_id)
            if lock is None:
                lock = self._locks[execution_id] = threading.Lock()
            return lock

    def handle(self, execution_id, secret, body):
        """(HTTP status, JSON-able answer) for one POST."""
        status, answer = self._handle(execution_id, secret, body)
        self.counts["accepted" if status < 300 else "rejected"] += 1
        return status, answer

    def _handle(self, execution_id, secret, body):
        try:
            record = self.store.get_execution(execution_id)
        except errors.NotFound:
            return 404, {"error": "no execution %s" % execution_id}
        except errors.StoreError as exc:
            LOG.warning("callback for execution %s not recorded: %s", execution_id, exc)
            return 503, {"error": "store unavailable"}
        if not secret:
            return 401, {"error": "missing %s header" % secrets.HEADER}
        if not secrets.matches(secret, record.get("callback_secret_hash")):
            LOG.warning("callback for execution %s with a wrong secret rejected", execution_id)
            return 403, {"error": "wrong secret for execution %s" % execution_id}
        try:
            event = events.parse(body)
        except events.BadEvent as exc:
            return 400, {"error": str(exc)}
        with self._lock(execution_id):
            try:
                return self._record(execution_id, event)
            except events.BadEvent as exc:
                return 400, {"error": str(exc)}
            except errors.StoreError as exc:
                LOG.warning("callback for execution %s not recorded: %s", execution_id, exc)
                return 503, {"error": "store unavailable"}

    def _record(self, execution_id, event):
        record = self.store.get_execution(execution_id)      # fresh, under the lock
        outcome = events.apply(record, event)
        now = self.clock()
        if outcome.finish:
            return self._finish(record, event, now)
        if outcome.changes:
            changes = dict(outcome.changes, last_event_at=now, updated_at=now)
            if self.mode == "hybrid":
                # Heard from: the poller leaves it alone until it goes silent.
                changes["next_poll_at"] = now + self.stale_after
            self.store.update_execution(execution_id, changes, if_active=True)
        LOG.debug("callback %s for execution %s: %s", event["event"], execution_id, outcome.result)
        return 200, {"result": outcome.result}

    def _finish(self, record, event, now):
        try:
            written = results.finish(self.engine, self.store, record, now, "callback")
        except errors.EngineError as exc:
            # Leave it to the poller, now rather than after stale_after.
            self.store.update_execution(record["id"], {
                "tracked": True, "next_poll_at": now, "last_event_at": now}, if_active=True)
            LOG.warning("execution %s ended (%s) but fetching its result failed: %s; "
                        "the poller finishes it", record["id"], event["state"], exc)
            return 202, {"result": "ended; result fetch deferred to the poller"}
        if written:
            LOG.info("execution %s %s (finished by callback)", record["id"],
                     results.st.from_engine(event["state"]))
            return 200, {"result": "finished"}
        return 200, {"result": "final: finished already"}
