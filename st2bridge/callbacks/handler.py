"""Handling one callback: authenticate, parse, record; finish on a terminal event.

The secret is checked first, from the header alone, before any body is read
(st2bridge.callbacks.app), so an unauthenticated client costs one cached hash
comparison. Every rejected request changes nothing. A terminal event is
answered at once and its result fetched in the background (Mistral sends a
run's webhooks one after the other, so a slow answer would hold up the rest);
if the fetch fails, or the body could not be taken, the execution is made due
for the poller at once: a lost fetch costs a poll, never the result.
"""

import collections
import logging
import time

from st2bridge import concurrency, errors, logs, results, taskview
from st2bridge.callbacks import events, secrets, webhook
from st2bridge.schedule import Schedule
from st2bridge.store.group_commit import GroupCommit

LOG = logging.getLogger(__name__)
# A wrong-secret flood costs a line a minute, with the count of the others.
WRONG_SECRET = logs.RateLimitedLog(LOG)

# Secret hashes of recently seen executions, so a flood of requests for one
# execution costs no store read each.
HASH_CACHE = 10000


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
        owner=None,
        schedule=None,
        settle=None,
    ):
        self.store = store
        self.engine = engine
        self.mode = mode
        self.schedule = schedule or Schedule(mode, stale_after=stale_after)
        # With task events the record's task view is current when the
        # workflow ends; without, the tasks are fetched with the output.
        self.task_events = task_events
        self.clock = clock
        # The tracker this handler runs in (recorded as callback_owner: the
        # callback-mode safety net checks an execution once its owner is gone).
        self.owner = owner
        # settle(record): follow the tasks still going after the end.
        self.settle = settle
        # Runs result fetches after the answer (inline in tests).
        self.executor = executor or concurrency.InlineExecutor()
        # Answers by kind, and what was done about bodies that were not read.
        # left_to_poller: terminal events whose result fetch failed.
        self.counts = concurrency.Tally(
            accepted=0,
            rejected=0,
            errors=0,
            too_large=0,
            left_to_poller=0,
            rereads=0,
        )
        # Events arriving together share one store transaction.
        self.commits = GroupCommit(store)
        self.observers = []  # metrics hooks: called with (HTTP status, seconds taken)
        self._finishing = set()
        self._hashes = collections.OrderedDict()
        self._hashes_guard = concurrency.current().lock()

    # -- every answer is counted here (the app calls it) -----------------------

    def answered(self, status, seconds):
        kind = "accepted" if status < 300 else "rejected" if status < 500 else "errors"
        self.counts.add(kind)
        for observe in self.observers:
            observe(status, seconds)

    # -- authentication ----------------------------------------------------------

    def authenticate(self, execution_id, secret):
        """None when `secret` is this execution's; else (HTTP status, answer)."""
        try:
            wanted = self._secret_hash(execution_id)
        except errors.NotFound:
            return 404, {"error": "no execution %s" % execution_id}
        if not secret:
            return 401, {"error": "missing %s header" % webhook.SECRET_HEADER}
        if not secrets.matches(secret, wanted):
            WRONG_SECRET.log(
                logging.WARNING,
                403,
                "callback for execution %s with a wrong secret rejected",
                execution_id,
            )
            return 403, {"error": "wrong secret for execution %s" % execution_id}
        return None

    def _secret_hash(self, execution_id):
        with self._hashes_guard:
            if execution_id in self._hashes:
                self._hashes.move_to_end(execution_id)
                return self._hashes[execution_id]
        found = self.store.callback_view(execution_id).get("callback_secret_hash")
        if found:
            with self._hashes_guard:
                self._hashes[execution_id] = found
                while len(self._hashes) > HASH_CACHE:
                    self._hashes.popitem(last=False)
        return found

    # -- a body that is not taken ---------------------------------------------------

    def too_large(self, execution_id, length, limit):
        """An authenticated body over the limit: not read, but not lost either
        (the poller reads the execution from the engine at once)."""
        self.counts.add("too_large")
        LOG.warning(
            "callback for execution %s: a body of %d bytes is over [callback] max_body "
            "(%d) and was not read; the execution is checked with the engine now",
            execution_id,
            length,
            limit,
        )
        self._leave_to_poller(execution_id)

    def _leave_to_poller(self, execution_id):
        now = self.clock()
        try:
            # Due now; no owner, so the callback-mode safety net checks it too.
            self.store.update_execution(
                execution_id,
                {
                    "tracked": True,
                    "next_poll_at": self.schedule.at_once(now),
                    "callback_owner": None,
                    "last_event_at": now,
                },
                if_active=True,
            )
        except errors.StoreError as exc:
            LOG.warning(
                "execution %s could not be made due for the poller (%s); it is "
                "checked once it has been silent for %.0f s",
                execution_id,
                exc,
                self.schedule.stale_after,
            )

    # -- an authenticated body ------------------------------------------------------

    def handle(self, execution_id, secret, body):
        """(HTTP status, JSON-able answer) for one POST."""
        denied = self.authenticate(execution_id, secret)
        if denied:
            return denied
        # A 400 is logged by the app (rate-limited), like every rejection.
        try:
            event = events.parse(body)
        except events.BadEvent as exc:
            return 400, {"error": str(exc)}
        try:
            return self._record(execution_id, event, time.monotonic())
        except events.BadEvent as exc:
            return 400, {"error": str(exc)}
        except errors.StoreError as exc:
            LOG.warning("callback for execution %s not recorded: %s", execution_id, exc)
            return 503, {"error": "store unavailable"}

    def _record(self, execution_id, event, arrived):
        task_id = event["id"] if events.is_task(event) else None
        with taskview.lock(execution_id):
            try:
                record = self.store.callback_view(execution_id, task_id)
            except errors.NotFound:
                return 404, {"error": "no execution %s" % execution_id}
            outcome = events.apply(record, event)
            if outcome.finish:
                return self._start_finish(record, event, arrived)
            if outcome.conflict:
                outcome = self._reread(outcome, task_id)
            if outcome.changes or outcome.task:
                self._write(execution_id, outcome)
            elif not outcome.late and record.get("callback_owner") != self.owner:
                # Nothing new, but heard from, here: the safety net must know
                # whose listener takes its callbacks.
                self._write(execution_id, outcome)
        LOG.debug("callback %s for execution %s: %s", event["event"], execution_id, outcome.result)
        return 200, {"result": outcome.result}

    def _reread(self, outcome, task_id):
        """Two views of one task within the engine's one second that cannot be
        ordered: the engine's own current state decides."""
        self.counts.add("rereads")
        again = results.rereader(self.engine)(task_id)
        if again is None:
            return outcome  # as it arrived; the end's task refresh reconciles
        index, row = outcome.task
        row = dict(row, **{key: again.get(key) for key in taskview.STATE_KEYS})
        outcome.task = (index, row)
        outcome.result = "task %s %s (re-read from the engine)" % (row["name"], row["state"])
        return outcome

    def _write(self, execution_id, outcome):
        now = self.clock()
        changes = dict(outcome.changes, updated_at=now)
        if not outcome.late:
            changes.update(last_event_at=now, callback_owner=self.owner)
            due = self.schedule.after_callback(now)
            if due is not None:
                # Heard from: the poller leaves it alone until it goes silent.
                changes["next_poll_at"] = due
        if outcome.task:
            self.commits.run(
                lambda: self.store.update_task(
                    execution_id, *outcome.task, changes, if_active=not outcome.late
                )
            )
        else:
            self.commits.run(
                lambda: self.store.update_execution(execution_id, changes, if_active=True)
            )

    # -- the end -----------------------------------------------------------------------

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
            done = results.finish(
                self.engine,
                self.store,
                record,
                self.clock,
                "callback",
                concurrently=self.executor.concurrently,
                tasks_after=self.task_events,
            )
            if not done.ended:
                LOG.warning(
                    "execution %s: a %s callback arrived but the engine says it has not "
                    "ended; the poller checks it now",
                    record["id"],
                    event["state"],
                )
                self.counts.add("left_to_poller")
                self._leave_to_poller(record["id"])
                return
            if done.written:
                finished = time.monotonic()
                LOG.info(
                    "execution %s %s (finished by callback) %.1f ms after its callback "
                    "(%.1f ms waiting to start, %.1f ms reading the engine, %.1f ms writing)",
                    record["id"],
                    done.status,
                    (finished - arrived) * 1000,
                    (begun - arrived) * 1000,
                    done.read_seconds * 1000,
                    (finished - begun - done.read_seconds) * 1000,
                )
                still = (
                    results.refresh_tasks(self.engine, self.store, record)
                    if self.task_events
                    else done.open_tasks
                )
                if still and self.settle:
                    self.settle(record)
        except (errors.EngineError, errors.StoreError) as exc:
            LOG.warning(
                "execution %s ended (%s) but fetching its result failed: %s; "
                "the poller finishes it",
                record["id"],
                event["state"],
                exc,
            )
            self.counts.add("left_to_poller")
            self._leave_to_poller(record["id"])
        finally:
            self._finishing.discard(record["id"])
