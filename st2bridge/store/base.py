"""The store interface: what the bridge keeps about executions and services.

Records are plain dicts (JSON-serialisable values only). Every backend passes
the same contract tests (tests/unit/test_store_contract.py).

An execution record has these fields (all present; unset ones are None):

    id                  bridge execution id (str, a UUID)
    workflow_name       the Mistral workflow run
    engine_execution_id the Mistral execution id; chosen by the bridge before
                        submitting, so a retried submit never starts a second one
    status              one of st2bridge.status.ALL
    input, output       dicts (output None until the execution ends)
    error               the engine's message for a failure (str) or None
    tasks               list of task rows (st2bridge.taskview): {id, name,
                        status, state, state_info, created_at, updated_at,
                        workflow_execution_id, label, ...}, sub-workflows' included
    created_at, submitted_at, updated_at, ended_at
                        float seconds since the epoch (UTC), the bridge's own
                        clock: recorded, accepted by the engine, last
                        changed, end learnt
    engine_state        last Mistral state seen; engine_created_at and
                        engine_updated_at the engine's own timestamps, as
                        it gave them ('YYYY-MM-DD HH:MM:SS', UTC, 1 s)
    finished_by         how the terminal status was learnt: "poll", "callback"
    -- what was started --
    namespace           the workflow's Mistral namespace ("" is the default)
    workbook            the workbook the workflow belongs to, or None
    task_name           the target task of a reverse workflow, or None
    env                 the environment values the user gave (dict), or None
    env_name            the name of an environment stored in the engine, or None
    labels              the caller's labels (dict), or None
    definition_id       id of the definition it was started with (see below)
    notify              params.notify as submitted, with the bridge's callback
                        secret left out (None): a re-submit fills in a new one
    idempotency_key     the caller's key, unique across records, or None
    request_digest      digest of what was asked for under that key
    -- tracking --
    tracked             bool: the poller looks after it while it is active
    next_poll_at        float: when it is next due for a poll
    lease_owner         id of the tracker that holds it now, or None
    lease_expires_at    float: when that lease lapses
    poll_failures       int: consecutive failed polls (drives back-off)
    not_found_count     int: consecutive polls the engine answered 404
    synced_at           float: bridge time up to which the engine state is
                        known (a batched change listing covered it)
    verified_at         float: last time the execution was fetched on its own
                        (a listing cannot show that it was deleted)
    timeout_at          float or None: give up tracking with status "timeout"
    on_timeout          "cancel" (None: the same) or "leave": what a timeout does
                        to the engine execution
    -- callbacks --
    callback_secret_hash  sha256 of the execution's callback secret (the
                        secret itself is never stored)
    last_event_at       float: when the last valid callback arrived
    -- the platform's side (st2bridge-api) --
    started_by          name of the API key that started it (None: the CLI)
    sinks               where its result is POSTed: [{url, secret, every_status}]
                        (the secrets sign the requests; never shown in any view)
    callback_owner      id of the tracker that took its last callback (the
                        callback-mode safety net checks it once that
                        tracker is gone)
    -- stuck executions (st2bridge/tracker/stuck.py) --
    stuck               None, or {signature, since, detected_at, reason,
                        evidence}: the engine looks stuck on it
    stuck_probe_at      float: when the engine may next be asked whether it is

The change log: every write that creates a record, changes its status or its
tasks appends one entry, in the same transaction (SQLite) or the same
document update (MongoDB), so that no writer (runner, poller, callbacks,
control) needs to know about it. Entries: {seq, at, execution_id, event
(created | status | task | end), status, workflow_name, task}. `seq` grows
with commit order; readers follow it (the API's stream and its notifier).

A service record: {id, name, host, pid, version, started_at, heartbeat_at, info}.

A definition record (content-addressed: its id is the digest of the parsed
definition, so one is kept once however many executions ran it):
{id, kind ("workflows" or "workbook"), name (the workbook's, or None), text,
workflows (the engine names it defines), created_at}.

An API key: {name, key_hash, read_only, created_at, revoked_at}.
A notification (the outbox of webhook deliveries): see NOTIFICATION_FIELDS.

Alarms (schema version 7, st2bridge/alarms/): an event (EVENT_FIELDS) is
what a monitoring system POSTed and what became of each alert in it; a
queue item (QUEUE_FIELDS) is a start waiting for a concurrency slot; the
alarm state is small versioned documents (`kind`, `key`) changed only by
compare-and-set (put_state), which is what makes de-duplication keys and
concurrency slots exact across processes and on both backends.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from st2bridge import status as _status

# A record: a plain dict of JSON-serialisable values.
Record = dict[str, Any]

# The fields of a record a callback reads (Store.callback_view).
CALLBACK_FIELDS = (
    "id",
    "status",
    "engine_execution_id",
    "engine_state",
    "engine_updated_at",
    "callback_secret_hash",
    "callback_owner",
)

# Indexed fields that list/claim queries filter or sort on. Backends keep them
# queryable (columns in SQLite, indexes in MongoDB); every other field is opaque.
INDEXED_FIELDS = (
    "id",
    "engine_execution_id",
    "status",
    "workflow_name",
    "created_at",
    "tracked",
    "next_poll_at",
    "lease_owner",
    "lease_expires_at",
)

EXECUTION_FIELDS = (
    "id",
    "workflow_name",
    "engine_execution_id",
    "status",
    "input",
    "output",
    "error",
    "tasks",
    "created_at",
    "updated_at",
    "ended_at",
    "engine_state",
    "engine_updated_at",
    "finished_by",
    "tracked",
    "next_poll_at",
    "lease_owner",
    "lease_expires_at",
    "poll_failures",
    "not_found_count",
    "synced_at",
    "verified_at",
    "timeout_at",
    "on_timeout",
    "callback_secret_hash",
    "last_event_at",
    "submitted_at",
    "engine_created_at",
    "callback_owner",
    "namespace",
    "workbook",
    "task_name",
    "env",
    "env_name",
    "labels",
    "definition_id",
    "notify",
    "idempotency_key",
    "request_digest",
    "started_by",
    "sinks",
    "stuck",
    "stuck_probe_at",
)

DEFINITION_FIELDS = ("id", "kind", "name", "text", "workflows", "created_at")

# Change-log events (Store.read_changes).
CREATED, STATUS, TASK, END = "created", "status", "task", "end"

API_KEY_FIELDS = ("name", "key_hash", "read_only", "created_at", "revoked_at")

# One webhook delivery of one change to one sink (the outbox).
NOTIFICATION_FIELDS = (
    "id",  # deterministic: "<change seq>-<sink digest>", so expanding twice is harmless
    "execution_id",
    "seq",  # the change it reports: deliveries of one sink go out in this order
    "event",  # end or status
    "sink",  # digest of the sink URL (ordering key)
    "url",
    "secret",  # the sink's signing secret; never shown
    "body",  # the JSON text sent (fixed when the notification is made)
    "status",  # pending, delivered, failed
    "attempts",
    "next_attempt_at",
    "deadline_at",
    "last_error",
    "lease_owner",
    "lease_expires_at",
    "created_at",
    "delivered_at",
)
NOTIFICATION_STATUSES = ("pending", "delivered", "failed")

# An event posted to st2bridge-api (/v1/events/...), recorded before it is answered.
EVENT_FIELDS = (
    "id",
    "source",  # alertmanager, aodh, webhook
    "name",  # webhook/{name}: the name; otherwise None
    "received_at",
    "status",  # received (being processed, or to be taken over), processed
    "outcome",  # summary: started, queued, joined, dropped, resolved, no_match, error, pending
    "by",  # the API key's name, or "signature" (HMAC with the source's secret)
    "payload",  # the JSON body as received
    "alerts",  # per alert: status, fingerprint, labels, and per matching rule its action
    "lease_owner",  # the API process processing it
    "lease_expires_at",  # after this another process takes it over (kill -9)
    "processed_at",
    "attempts",
)
EVENT_STATUSES = ("received", "processed")

# A start waiting for a concurrency slot (overflow: queue), FIFO per policy.
QUEUE_FIELDS = (
    "id",
    "policy",  # the rule's name: the concurrency policy it waits for
    "key",  # the rendered concurrency key (e.g. the instance)
    "status",  # pending, started, canceled
    "created_at",
    "lease_owner",
    "lease_expires_at",
    "event_id",
    "alert",  # index of the alert in the event
    "rule",
    "dedup_key",
    "start",  # what to start: {workflow, namespace, input, labels}
    "execution_id",
    "started_at",
    "reason",  # why it was canceled
)
QUEUE_STATUSES = ("pending", "started", "canceled")


def new_execution_record(**fields: Any) -> Record:
    """An execution dict with every field present (defaults None/empty)."""
    record = dict.fromkeys(EXECUTION_FIELDS)
    record.update(tasks=[], input={}, tracked=False, poll_failures=0, not_found_count=0)
    unknown = set(fields) - set(EXECUTION_FIELDS)
    if unknown:
        raise ValueError("unknown execution fields: %s" % ", ".join(sorted(unknown)))
    record.update(fields)
    return record


class Store(abc.ABC):
    """Durable state shared by the CLI and every tracker process.

    Errors: NotFound for an unknown id, Conflict for a duplicate id,
    StoreUnavailable when the backend cannot be reached or stays locked
    (callers may retry), StoreVersionMismatch when the schema is not ours.
    """

    # Bumped with each schema change; st2bridge/store/migrations.py holds the
    # steps that bring an older store forward (`st2bridge db-upgrade`).
    SCHEMA_VERSION: int = 7

    # Claims of a record whose previous lease had lapsed (its tracker died or
    # hung), counted by claim_due in this process (the heartbeat's log line).
    lease_takeovers: int = 0
    # Metrics hook: claim_due calls it with the number of takeovers of a claim
    # that took any, as they happen.
    observe_takeovers: Callable[[int], None] | None = None

    def _took_over(self, count: int) -> None:
        """claim_due's report of `count` takeovers (see lease_takeovers)."""
        if count:
            self.lease_takeovers += count
            if self.observe_takeovers is not None:
                self.observe_takeovers(count)

    # -- executions ---------------------------------------------------------

    @abc.abstractmethod
    def create_execution(self, record: Mapping[str, Any]) -> Record:
        """Insert a new execution record. Conflict if its id, its
        engine_execution_id or its idempotency_key exists already (the key is
        taken in the same atomic step as the insert)."""

    @abc.abstractmethod
    def get_execution_by_idempotency_key(self, key: str) -> Record:
        """The record created with this idempotency key. NotFound if none.
        (The CLI's `run --idempotency-key` and an API's Idempotency-Key
        header both end here.)"""

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> Record:
        """Return the record. NotFound if there is none."""

    def callback_view(self, execution_id: str, task_id: str | None = None) -> Record:
        """What a callback needs of a record: CALLBACK_FIELDS, and of its tasks
        only the one whose id is `task_id` (`tasks` holds it, or nothing;
        `tasks_from` is its index in the record). NotFound if there is none.
        Backends that can read part of a record override this: a callback
        then costs the same for a record of 5 tasks or of 500."""
        record = self.get_execution(execution_id)
        view = {field: record.get(field) for field in CALLBACK_FIELDS}
        view["tasks"], view["tasks_from"] = [], None
        for index, task in enumerate(record.get("tasks") or []):
            if task_id is not None and task.get("id") == task_id:
                view["tasks"], view["tasks_from"] = [task], index
                break
        return view

    def find_ids(self, prefix: str, limit: int = 2) -> list[tuple[str, str]]:
        """Up to `limit` (bridge id, engine execution id) pairs of the records
        whose bridge id or engine execution id starts with `prefix`."""
        raise NotImplementedError

    @abc.abstractmethod
    def list_executions(
        self,
        status: str | Collection[str] | None = None,
        workflow_name: str | None = None,
        since: float | None = None,
        limit: int | None = 50,
        labels: dict[str, str] | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[Record]:
        """Records newest first (by created_at, then id). `status` may be one
        status or a collection of them; `since` is a float time (created_at >=
        since); `labels` a dict every one of which the record's labels hold;
        `before` a (created_at, id) pair: only records after it in this order
        (the next page after that record)."""

    @abc.abstractmethod
    def update_execution(
        self,
        execution_id: str,
        changes: Mapping[str, Any],
        *,
        if_active: bool = True,
        if_lease_owner: str | None = None,
    ) -> bool:
        """Replace the given top-level fields atomically and return True.

        Conditions, checked atomically with the write:
          if_active       only while the status is not terminal
          if_lease_owner  only while lease_owner equals this value
        Returns False (and changes nothing) when a condition does not hold, so
        a terminal status is written exactly once. NotFound if no record.
        `updated_at` is set by the caller, not the store.
        """

    @abc.abstractmethod
    def update_task(
        self,
        execution_id: str,
        index: int | None,
        task: Mapping[str, Any],
        changes: Mapping[str, Any] | None = None,
        *,
        if_active: bool = True,
    ) -> bool:
        """Set one entry of the record's task list (`index` None appends) and
        the top-level `changes`, atomically, under update_execution's
        `if_active` condition. Returns True if written, False if the condition
        did not hold; NotFound if no record. (A callback changes one task: the
        list is not rewritten.)"""

    @abc.abstractmethod
    def update_many(
        self,
        updates: Iterable[tuple[str, Mapping[str, Any]]],
        *,
        if_active: bool = True,
        if_lease_owner: str | None = None,
    ) -> int:
        """Apply many (execution_id, changes) pairs, each under the same
        conditions as update_execution, in one transaction or round trip.
        Unknown ids are skipped. Returns how many were applied."""

    @abc.abstractmethod
    def claim_due(self, owner: str, now: float, lease_seconds: float, limit: int) -> list[Record]:
        """Atomically lease up to `limit` executions that are tracked, not
        terminal, due (next_poll_at <= now) and not under a valid lease
        (lease_expires_at > now), whoever holds it: a tracker's own lease
        means its query is still running. Sets lease_owner =
        owner and lease_expires_at = now + lease_seconds; returns the updated
        records, earliest next_poll_at first. Two owners never get the same
        record while a lease is valid."""

    @abc.abstractmethod
    def renew_leases(self, owner: str, expires_at: float) -> int:
        """Move the expiry of every lease `owner` holds to `expires_at` (a
        tracker's heartbeat keeps its in-flight queries leased). Returns the count."""

    @abc.abstractmethod
    def release_leases(self, owner: str) -> int:
        """Clear every lease held by `owner` (on shutdown). Returns the count."""

    @abc.abstractmethod
    def next_due_at(self) -> float | None:
        """The earliest time a claim could return something: the minimum over
        tracked active executions of next_poll_at (unleased) or
        max(next_poll_at, lease_expires_at) (leased). None when nothing is
        tracked. May be early, never late."""

    @abc.abstractmethod
    def count_executions(self, status: str | Collection[str] | None = None) -> int:
        """Number of records, optionally with that status (or statuses)."""

    @abc.abstractmethod
    def count_by_status(self) -> dict[str, int]:
        """{status: number of records} for the statuses that have any (one
        grouped query: the metrics gauge asks on every heartbeat)."""

    def list_stuck(self, limit: int | None = 50) -> list[Record]:
        """Active records flagged stuck (`stuck` set), newest first. This
        default reads every active record; backends that can filter on the
        document override it."""
        active = [s for s in _status.ALL if s not in _status.TERMINAL]
        return [r for r in self.list_executions(status=active, limit=None) if r.get("stuck")][
            :limit
        ]

    def count_stuck(self) -> dict[str, int]:
        """{signature: number of active records flagged with it} (the metrics
        gauge asks on every heartbeat)."""
        counts: dict[str, int] = {}
        for record in self.list_stuck(limit=None):
            signature = record["stuck"].get("signature")
            counts[signature] = counts.get(signature, 0) + 1
        return counts

    # -- definitions --------------------------------------------------------

    @abc.abstractmethod
    def put_definition(self, definition: Mapping[str, Any]) -> bool:
        """Keep a definition record unless one with its id exists (the id is
        its content digest, so an existing one is the same). Returns True if
        it was added."""

    @abc.abstractmethod
    def get_definition(self, definition_id: str) -> Record:
        """The definition record. NotFound if there is none."""

    # -- services -----------------------------------------------------------

    @abc.abstractmethod
    def register_service(self, record: Mapping[str, Any]) -> None:
        """Insert or replace a service record (by its id)."""

    @abc.abstractmethod
    def heartbeat_service(self, service_id: str, now: float) -> bool:
        """Set heartbeat_at = now. Returns False if the service is unknown."""

    @abc.abstractmethod
    def list_services(self) -> list[Record]:
        """All service records, by name then host."""

    @abc.abstractmethod
    def remove_service(self, service_id: str) -> None:
        """Delete a service record; a missing one is not an error."""

    # -- change log ----------------------------------------------------------

    @abc.abstractmethod
    def read_changes(self, after: int, limit: int = 1000) -> list[Record]:
        """Change-log entries with seq > after, ascending (at most `limit`).
        Each also has `written_at`: when it became visible; a reader that
        sees a gap in seq younger than a second waits for it (MongoDB
        numbers entries before it writes them)."""

    @abc.abstractmethod
    def last_change_seq(self) -> int:
        """The highest seq in the log (0 when empty)."""

    @abc.abstractmethod
    def prune_changes(self, before: float, keep_after_seq: int | None = None) -> int:
        """Delete entries older than `before` (their `at`), but none with a
        seq above `keep_after_seq` when given. Returns the count."""

    @abc.abstractmethod
    def get_cursor(self, name: str) -> int:
        """A named position in the change log (0 when never set)."""

    @abc.abstractmethod
    def advance_cursor(self, name: str, seq: int) -> None:
        """Set the cursor to max(current, seq), atomically."""

    # -- API keys -------------------------------------------------------------

    @abc.abstractmethod
    def create_api_key(self, record: Record) -> Record:
        """Insert an API key record. Conflict if a key of that name is active
        (a revoked one of that name is replaced)."""

    @abc.abstractmethod
    def api_key_by_hash(self, key_hash: str) -> Record | None:
        """The active (not revoked) key with this hash, or None."""

    @abc.abstractmethod
    def list_api_keys(self) -> list[Record]:
        """Every key record (revoked ones too), by name."""

    @abc.abstractmethod
    def revoke_api_key(self, name: str, now: float) -> Record:
        """Mark the key revoked. NotFound if there is no active key of that name."""

    # -- notifications (the outbox) ---------------------------------------------

    @abc.abstractmethod
    def add_notifications(self, records: list[Record]) -> list[str]:
        """Insert notifications whose id is not there yet (expanding one
        change twice is harmless). Returns the ids inserted by this call."""

    @abc.abstractmethod
    def claim_notifications(
        self, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Record]:
        """Lease up to `limit` pending notifications that are due
        (next_attempt_at <= now) and not under a valid lease, and that are the
        oldest pending one (lowest seq) of their execution and sink: one
        sink gets one execution's notifications in order. Returns them."""

    @abc.abstractmethod
    def update_notification(
        self, notification_id: str, changes: Record, *, if_lease_owner: str | None = None
    ) -> bool:
        """Set fields; False if `if_lease_owner` does not hold the lease.
        NotFound if there is no such notification."""

    @abc.abstractmethod
    def get_notification(self, notification_id: str) -> Record:
        """The notification. NotFound if there is none."""

    @abc.abstractmethod
    def list_notifications(
        self, status: str | None = None, execution_id: str | None = None, limit: int = 50
    ) -> list[Record]:
        """Notifications, newest first (by created_at, then id)."""

    @abc.abstractmethod
    def count_notifications(self) -> dict[str, int]:
        """{status: count} for the statuses that have any."""

    # -- alarms: events, alarm state, the start queue ---------------------------

    @abc.abstractmethod
    def add_event(self, record: Record) -> Record:
        """Insert an event. Conflict if its id exists."""

    @abc.abstractmethod
    def update_event(
        self, event_id: str, changes: Record, *, if_lease_owner: str | None = None
    ) -> bool:
        """Set fields of an event; False if `if_lease_owner` does not hold
        its lease. NotFound if there is no such event."""

    @abc.abstractmethod
    def get_event(self, event_id: str) -> Record:
        """The event. NotFound if there is none."""

    @abc.abstractmethod
    def list_events(
        self,
        source: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[Record]:
        """Events newest first (received_at, then id); `before` a
        (received_at, id) pair: the page after that event."""

    @abc.abstractmethod
    def claim_events(
        self, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[Record]:
        """Lease up to `limit` events still `received` whose lease lapsed
        (their process died while processing them); oldest first."""

    @abc.abstractmethod
    def prune_events(self, before: float) -> int:
        """Delete processed events received before `before`; the count."""

    @abc.abstractmethod
    def get_state(self, kind: str, key: str) -> tuple[Record | None, int]:
        """(doc, version) of an alarm state document; (None, 0) if absent."""

    @abc.abstractmethod
    def put_state(self, kind: str, key: str, doc: Record, version: int, now: float) -> bool:
        """Compare-and-set: write `doc` as version `version + 1` if the stored
        version is `version` (0: only if absent). True if written."""

    @abc.abstractmethod
    def prune_state(self, kind: str, before: float) -> int:
        """Delete state documents of `kind` last written before `before`."""

    @abc.abstractmethod
    def execution_summaries(
        self, ids: Collection[str] = (), idempotency_keys: Collection[str] = ()
    ) -> list[Record]:
        """[{id, idempotency_key, status, ended_at}] of the executions with
        these ids or idempotency keys (unknown ones are left out)."""

    @abc.abstractmethod
    def enqueue(self, item: Record) -> bool:
        """Insert a queue item unless its id exists; True if inserted."""

    @abc.abstractmethod
    def get_queue_item(self, item_id: str) -> Record:
        """The queue item. NotFound if there is none."""

    @abc.abstractmethod
    def claim_queue_item(
        self, item_id: str, owner: str, now: float, lease_seconds: float
    ) -> Record | None:
        """Lease one pending item whose lease is free; the item, or None."""

    @abc.abstractmethod
    def update_queue_item(
        self,
        item_id: str,
        changes: Record,
        *,
        if_lease_owner: str | None = None,
        if_status: str | None = None,
    ) -> bool:
        """Set fields; False if a condition does not hold. NotFound if absent."""

    @abc.abstractmethod
    def list_queue(
        self, policy: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Record]:
        """Queue items in FIFO order (created_at, then id)."""

    @abc.abstractmethod
    def count_queue(self, status: str = "pending") -> dict[str, int]:
        """{policy: items with that status} for the policies that have any."""

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A context in which several writes share one transaction (one
        commit), where the backend has them; each write keeps its own
        conditions. A write that raises inside it does not undo the others.
        Default: no grouping (MongoDB writes are single-document atomic)."""
        return contextlib.nullcontext()

    # -- housekeeping -------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """(ok, detail): whether the store answers and looks intact (a quick
        check, cheap enough for a health endpoint). Default: it answers."""
        try:
            self.schema_version()
        except Exception as exc:  # any backend error means: down
            return False, str(exc)
        return True, "reachable"

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version recorded in the store (int)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
