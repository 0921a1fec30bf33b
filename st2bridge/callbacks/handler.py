"""Handling one callback: authenticate, parse, record; finish on a terminal event.

Every rejected request changes nothing. A terminal event is answered at once
and its result fetched in the background (Mistral sends a run's webhooks one
after the other, so a slow answer would hold up the rest); if the fetch fails
the record stays active and is made due for the poller: a lost fetch costs a
poll, never the result.
"""

import logging
import threading
import time
import weakref

from st2bridge import errors, results
from st2bridge import status as st
from st2bridge.callbacks import events, secrets
from st2bridge.green import InlineExecutor
from st2bridge.store.group_commit import GroupCommit

LOG = logging.getLogger(__name__)


class CallbackHandler:
    def __init__(
        self,
        store,
        engine,
        *,
        mode="hybrid",
        stale_after=30.0,
        clock=time.time,
        executor=None,
        task_events=True,
    ):
        self.store = store
        self.engine = engine
        self.mode = mode
        # With task events the record's task view is current when the
        # workflow ends; without, the tasks are fetched with the output.
        self.task_events = task_events
        self.stale_after = stale_after
        self.clock = clock
        # Runs result fetches after the answer (inline in tests).
        self.executor = executor or InlineExecutor()
        # left_to_poller: terminal events whose result fetch failed.
        self.counts = {"accepted": 0, "rejected": 0, "left_to_poller": 0}
        # Events arriving together share one store transaction.
        self.commits = GroupCommit(store)
        self.observers = []  # metrics hooks: called with (HTTP status, seconds taken)
        self._finishing = set()
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
        started = time.monotonic()
        try:
            status, answer = self._handle(execution_id, secret, body, started)
        except errors.StoreError as exc:
            LOG.warning("callback for execution %s not recorded: %s", execution_id, exc)
            status, answer = 503, {"error": "store unavailable"}
        self.counts["accepted" if status < 300 else "rejected"] += 1
        for observe in self.observers:
            observe(status, time.monotonic() - started)
        return status, answer

    def _handle(self, execution_id, secret, body, arrived):
        # The body is parsed first only to know which task to read; a bad one
        # is answered after the execution and the secret are checked, as ever.
        try:
            event, bad = events.parse(body), None
        except events.BadEvent as exc:
            event, bad = None, exc
        task_id = event["id"] if event and event["event"] in events.TASK_EVENTS else None
        with self._lock(execution_id):
            try:
                record = self.store.callback_view(execution_id, task_id)
            except errors.NotFound:
                return 404, {"error": "no execution %s" % execution_id}
            if not secret:
                return 401, {"error": "missing %s header" % secrets.HEADER}
            if not secrets.matches(secret, record.get("callback_secret_hash")):
                LOG.warning("callback for execution %s with a wrong secret rejected", execution_id)
                return 403, {"error": "wrong secret for execution %s" % execution_id}
            try:
                if bad:
                    raise bad
                outcome = events.apply(record, event)
            except events.BadEvent as exc:
                return 400, {"error": str(exc)}
            now = self.clock()
            if outcome.finish:
                return self._start_finish(record, event, arrived)
            if outcome.changes or outcome.task:
                changes = dict(outcome.changes, last_event_at=now, updated_at=now)
                if self.mode == "hybrid":
                    # Heard from: the poller leaves it alone until it goes silent.
                    changes["next_poll_at"] = now + self.stale_after
                if outcome.task:
                    self.commits.run(
                        lambda: self.store.update_task(
                            execution_id, *outcome.task, changes, if_active=True
                        )
                    )
                else:
                    self.commits.run(
                        lambda: self.store.update_execution(execution_id, changes, if_active=True)
                    )
        LOG.debug("callback %s for execution %s: %s", event["event"], execution_id, outcome.result)
        return 200, {"result": outcome.result}

    def _start_finish(self, record, event, arrived):
        if record["id"] in self._finishing:
            return 200, {"result": "duplicate: finishing already"}
        self._finishing.add(record["id"])
        self.executor.submit(self._finish, record, event, arrived)
        return 200, {"result": "finishing"}

    def _finish(self, record, event, arrived):
        begun = time.monotonic()
        try:
            # Task callbacks kept the task view current: the output is all the
            # terminal record waits for; the tasks are refreshed right after.
            written = results.finish(
                self.engine,
                self.store,
                record,
                self.clock,
                "callback",
                concurrently=self.executor.concurrently,
                tasks_after=self.task_events,
            )
            if written:
                done = time.monotonic()
                LOG.info(
                    "execution %s %s (finished by callback) %.1f ms after its callback "
                    "(%.1f ms waiting to start, %.1f ms fetching and writing)",
                    record["id"],
                    st.from_engine(event["state"]),
                    (done - arrived) * 1000,
                    (begun - arrived) * 1000,
                    (done - begun) * 1000,
                )
                if self.task_events:
                    results.refresh_tasks(self.engine, self.store, record)
        except (errors.EngineError, errors.StoreError) as exc:
            LOG.warning(
                "execution %s ended (%s) but fetching its result failed: %s; "
                "the poller finishes it",
                record["id"],
                event["state"],
                exc,
            )
            self.counts["left_to_poller"] += 1
            try:
                # Due now rather than after stale_after.
                self.store.update_execution(
                    record["id"],
                    {"tracked": True, "next_poll_at": self.clock(), "last_event_at": self.clock()},
                    if_active=True,
                )
            except errors.StoreError:
                pass  # still active and tracked in hybrid mode: polled when silent
        finally:
            self._finishing.discard(record["id"])
