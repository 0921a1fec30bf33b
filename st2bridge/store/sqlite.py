"""SqliteStore: the embedded default store, one file shared by every process.

Concurrency model:
  * WAL journal: readers never wait for a writer and a writer never waits
    for readers, so `st2bridge list` stays fast while trackers poll.
  * Every read-modify-write (update, claim, release, heartbeat) runs inside
    BEGIN IMMEDIATE: the write lock is taken before the read, so the check
    and the write are one atomic step across processes. Competing writers
    wait up to `busy_timeout` and then get StoreUnavailable.
  * One connection per store object, shared by workers under the
    backend's lock. Under eventlet the lock is green and sqlite calls never
    yield, so green threads are serialised too; but a write that waits for
    another process's lock blocks the whole hub for up to busy_timeout
    (under the threading backend it blocks that worker's thread only).
  * claim_due skips every record under a valid lease, its holder's too.

Each execution is a row of the INDEXED_FIELDS as columns (what queries use)
plus `doc`, the record as JSON but for its tasks, which are rows of the
`tasks` table (one per task: a callback writes one small row, whatever the
size of the record). Records round-trip exactly; the columns are recomputed
from `doc` on every write.
"""

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse

from st2bridge import concurrency
from st2bridge.errors import (
    Conflict,
    NotFound,
    StoreError,
    StoreLost,
    StoreUnavailable,
    StoreVersionMismatch,
)
from st2bridge.store import sqlite_file
from st2bridge.store import sqlite_sql as sql
from st2bridge.store.base import CALLBACK_FIELDS, INDEXED_FIELDS, Store
from st2bridge.store.records import (
    change_entry,
    complete_execution,
    complete_service,
    created_event,
    logged_events,
    prepare_changes,
    prepare_definition,
    prepare_execution,
    prepare_service,
    status_list,
    version_mismatch_message,
)
from st2bridge.store.sqlite_alarms import SqliteAlarmStore
from st2bridge.store.sqlite_platform import SqlitePlatformStore

# Fields whose change is reported in the change log.
_LOGGED = ("status", "tasks")


class SqliteStore(SqliteAlarmStore, SqlitePlatformStore, Store):
    """The Store in one SQLite file (see the module docstring; the change
    log, API keys and notifications are in sqlite_platform.py)."""

    def __init__(
        self, path, busy_timeout=10.0, create=True, checkpoint_interval=60.0, checkpoint_wal_mb=16.0
    ):
        """`create=False`: the store must exist (commands that only read or
        change records never create one); `create=True` also checks at once
        that this process can write it (a daemon must not find out after
        its listeners are up)."""
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        self._lock = concurrency.current().rlock()  # transaction() holds it around nested writes
        self._grouped = False
        self._conn = None
        self._opened = {}  # the files' identities when opened (sqlite_file)
        self._lost = None
        self._checkpoints = None
        self._integrity = sqlite_file.IntegrityCache()
        memory = self.path == ":memory:"
        with self._errors():
            if not memory:
                self._prepare_file(create)
            conn = sqlite3.connect(
                self.path if memory or create else _uri(self.path, "rw"),
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=not memory and not create,
            )
            try:
                self._setup(conn, create)
                if create and not memory:
                    self._probe_write(conn)
            except BaseException:
                conn.close()
                raise
        self._conn = conn
        if not memory:
            self._opened = sqlite_file.identity(self.path)
            self._checkpoints = sqlite_file.Checkpointer(
                self.path, checkpoint_interval, checkpoint_wal_mb
            )

    def _prepare_file(self, create):
        if os.path.exists(self.path):
            return
        if not create:
            raise StoreUnavailable(
                "no SQLite store at %s: nothing has been recorded there (check [store] url "
                "and state_path; the tracker, `st2bridge run` or `st2bridge db-upgrade "
                "--target bridge` creates it)" % self.path
            )
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                "cannot create the directory of SQLite store %s: %s"
                % (self.path, exc.strerror or exc)
            ) from exc
        sqlite_file.create(self.path)

    def _probe_write(self, conn):
        # BEGIN IMMEDIATE alone succeeds on a read-only file: write a row (undone).
        try:
            with sql.transaction(conn):
                conn.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
                raise _Undo
        except _Undo:
            pass
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return  # another writer holds it now: writable, just busy
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise StoreUnavailable(
                    "SQLite store %s is read-only here: %s"
                    % (self.path, sqlite_file.writable_problem(self.path))
                ) from None
            raise

    # -- plumbing -----------------------------------------------------------

    def _setup(self, conn, create=True):
        conn.execute("PRAGMA busy_timeout = %d" % int(self.busy_timeout * 1000))
        self._enter_wal(conn)
        # In WAL mode NORMAL never corrupts; a power cut may lose the last
        # commits, which the tracker relearns from the engine on its next poll.
        conn.execute("PRAGMA synchronous = NORMAL")
        version = self._recorded_version(conn)
        if version is None and not create:
            raise StoreUnavailable(
                "SQLite store %s is empty: nothing has been recorded there" % self.path
            )
        if version is None:
            with sql.transaction(conn):
                version = self._recorded_version(conn)  # another process may have won
                if version is None:
                    # Not executescript(): it would commit our transaction first.
                    for statement in sql.SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(self.SCHEMA_VERSION),),
                    )
                    version = self.SCHEMA_VERSION
        if version != self.SCHEMA_VERSION:
            raise StoreVersionMismatch(
                version_mismatch_message(self.path, version, self.SCHEMA_VERSION)
            )

    def _enter_wal(self, conn):
        # Switching a new file to WAL needs its exclusive lock; when processes
        # create the store together, SQLite may answer "locked" at once rather
        # than wait (its deadlock rule for lock upgrades): try again meanwhile.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                concurrency.sleep(0.01)

    def _recorded_version(self, conn):
        """The recorded schema version; None for an empty (new) database."""
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "meta" not in tables:
            if tables:
                raise StoreVersionMismatch(
                    "%s is a SQLite database but not an st2bridge store (it has no "
                    "schema version); point the store URL at another file" % self.path
                )
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise StoreVersionMismatch(
                "SQLite store %s records no schema version: run `st2bridge db-upgrade`" % self.path
            )
        try:
            return int(row[0])
        except ValueError:
            return row[0]

    @contextlib.contextmanager
    def _errors(self):
        """Translate sqlite3 errors into the bridge's store errors."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "locked" in message or "busy" in message:
                raise StoreUnavailable(
                    "SQLite store %s is locked by another process (waited %gs); try again"
                    % (self.path, self.busy_timeout)
                ) from exc
            if "unable to open" in message or "disk I/O" in message or "readonly" in message:
                raise StoreUnavailable(
                    "cannot use SQLite store %s: %s" % (self.path, message)
                ) from exc
            raise StoreError("SQLite store %s: %s" % (self.path, message)) from exc
        except sqlite3.DatabaseError as exc:  # e.g. "file is not a database", "malformed"
            self._integrity.failed(str(exc))
            raise StoreError("SQLite store %s: %s" % (self.path, exc)) from exc

    def _connection(self):
        if self._lost:
            raise StoreLost(self._lost)
        if self._conn is None:
            raise StoreUnavailable("SQLite store %s is closed" % self.path)
        if self._opened:
            try:
                sqlite_file.check_identity(self.path, self._opened)
            except StoreLost as exc:
                self._lost = str(exc)
                sqlite_file.never_close(self._conn)
                raise
        return self._conn

    @contextlib.contextmanager
    def _read(self):
        with self._lock, self._errors():
            yield self._connection()

    @contextlib.contextmanager
    def _write(self):
        """One BEGIN IMMEDIATE transaction: the write lock is held from the
        first read, so whatever the body checks still holds when it writes.
        Inside transaction() it is part of that one."""
        with self._lock, self._errors():
            if self._grouped:
                yield self._connection()
                return
            with sql.transaction(self._connection()) as conn:
                yield conn
            self._after_commit(conn)

    @contextlib.contextmanager
    def transaction(self):
        with self._lock, self._errors():
            if self._grouped:  # nested: part of the outer one
                yield
                return
            with sql.transaction(self._connection()) as conn:
                self._grouped = True
                try:
                    yield
                finally:
                    self._grouped = False
            self._after_commit(conn)

    def _after_commit(self, conn):
        if self._checkpoints is not None and self._checkpoints.due():
            self._checkpoints.run(conn)

    # -- executions ---------------------------------------------------------

    def create_execution(self, record):
        record = prepare_execution(record)
        with self._write() as conn:
            key = record["idempotency_key"]
            if key is not None:
                # First, so that a taken key inserts nothing at all.
                taken = conn.execute(
                    "SELECT execution_id FROM idempotency_keys WHERE key = ?", (key,)
                ).fetchone()
                if taken:
                    raise Conflict(
                        "idempotency key %r belongs to execution %s already" % (key, taken[0])
                    )
                conn.execute(
                    "INSERT INTO idempotency_keys (key, execution_id) VALUES (?, ?)",
                    (key, record["id"]),
                )
            try:
                conn.execute(sql.INSERT, sql.row(record))
            except sqlite3.IntegrityError as exc:
                if "engine_execution_id" in str(exc):
                    raise Conflict(
                        "an execution with engine execution id %s exists already"
                        % record["engine_execution_id"]
                    ) from exc
                raise Conflict("execution %s exists already" % record["id"]) from exc
            sql.replace_tasks(conn, record["id"], record["tasks"])
            sql.append_change(conn, created_event(record))
        return record

    def get_execution_by_idempotency_key(self, key):
        with self._read() as conn:
            row = conn.execute(
                "SELECT execution_id FROM idempotency_keys WHERE key = ?", (key,)
            ).fetchone()
            record = sql.fetch_record(conn, row[0]) if row else None
        if record is None:
            raise NotFound("no execution with idempotency key %r" % key)
        return complete_execution(record)

    def get_execution(self, execution_id):
        with self._read() as conn:
            record = sql.fetch_record(conn, execution_id)
        if record is None:
            raise NotFound("no execution %s" % execution_id)
        return complete_execution(record)

    def callback_view(self, execution_id, task_id=None):
        # The record's own fields, and of its tasks only the event's one.
        with self._read() as conn:
            doc = sql.fetch(conn, "executions", execution_id)
            if doc is None:
                raise NotFound("no execution %s" % execution_id)
            index, task = sql.fetch_task(conn, execution_id, task_id) if task_id else (None, None)
        view = {field: doc.get(field) for field in CALLBACK_FIELDS}
        view["tasks"], view["tasks_from"] = ([task], index) if task else ([], None)
        return view

    def find_ids(self, prefix, limit=2):
        # Ranges on the two indexed id columns (ids are ASCII; U+FFFF sorts after).
        high = prefix + "\uffff"
        with self._read() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    "SELECT id, engine_execution_id FROM executions WHERE (id >= ? AND id < ?) "
                    "OR (engine_execution_id >= ? AND engine_execution_id < ?) LIMIT ?",
                    (prefix, high, prefix, high, int(limit)),
                )
            ]

    def list_executions(
        self, status=None, workflow_name=None, since=None, limit=50, labels=None, before=None
    ):
        if limit is not None and limit <= 0:
            return []
        where, params = [], []
        statuses = status_list(status)
        if statuses is not None:
            if not statuses:
                return []
            where.append(sql.in_("status", statuses))
            params += statuses
        if workflow_name is not None:
            where.append("workflow_name = ?")
            params.append(workflow_name)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        for key, value in sorted((labels or {}).items()):
            where.append("json_extract(doc, ?) = ?")
            params += ['$.labels."%s"' % key.replace('"', ""), value]
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        query = "SELECT doc FROM executions"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            query += " LIMIT %d" % int(limit)
        with self._read() as conn:
            return sql.attach_tasks(
                conn,
                [complete_execution(json.loads(doc)) for (doc,) in conn.execute(query, params)],
            )

    def update_execution(self, execution_id, changes, *, if_active=True, if_lease_owner=None):
        changes = prepare_changes(changes)
        with self._write() as conn:
            if changes:
                before = self._before(conn, execution_id, changes)
                if self._patch(
                    conn,
                    tuple(sorted(changes)),
                    [(execution_id, changes)],
                    if_active,
                    if_lease_owner,
                ):
                    self._log(conn, execution_id, before, changes)
                    return True
            elif self._matches(conn, execution_id, if_active, if_lease_owner):
                return True
            sql.must_exist(conn, execution_id)
        return False

    def update_task(self, execution_id, index, task, changes=None, *, if_active=True):
        changes = prepare_changes(changes or {})
        if "tasks" in changes:
            raise ValueError("update_task sets one task; do not also pass 'tasks'")
        with self._write() as conn:
            before = self._before(conn, execution_id, {"tasks": None})
            if changes:
                matched = self._patch(
                    conn, tuple(sorted(changes)), [(execution_id, changes)], if_active, None
                )
            else:
                matched = self._matches(conn, execution_id, if_active, None)
            if matched:
                sql.put_task(conn, execution_id, None if index is None else int(index), task)
                self._log(conn, execution_id, before, changes, task=task)
                return True
            sql.must_exist(conn, execution_id)
        return False

    # The change-log hook: every write that changes a record's status or its
    # tasks appends an entry in its own transaction (see store/base.py).

    @staticmethod
    def _before(conn, execution_id, changes):
        """(status, workflow_name) before a logged write; None when the write
        changes nothing the log reports."""
        if not any(field in changes for field in _LOGGED):
            return None
        return conn.execute(
            "SELECT status, workflow_name FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()

    @staticmethod
    def _log(conn, execution_id, before, changes, task=None):
        if before is None:
            return
        for event, its_task in logged_events(before[0], changes, task):
            sql.append_change(
                conn,
                change_entry(
                    execution_id,
                    event,
                    changes.get("status", before[0]),
                    before[1],
                    task=its_task,
                ),
            )

    @staticmethod
    def _matches(conn, execution_id, if_active, if_lease_owner):
        return (
            conn.execute(
                "SELECT 1 FROM executions WHERE id = ?" + sql.conditions(if_active, if_lease_owner),
                [execution_id] + sql.condition_params(if_lease_owner),
            ).fetchone()
            is not None
        )

    def update_many(self, updates, *, if_active=True, if_lease_owner=None):
        # Updates with the same fields share one statement; those the change
        # log reports go one by one (the poller's reschedules never do).
        groups, logged = {}, []
        for execution_id, changes in updates:
            changes = prepare_changes(changes)
            if any(field in changes for field in _LOGGED):
                logged.append((execution_id, changes))
            elif changes:
                groups.setdefault(tuple(sorted(changes)), []).append((execution_id, changes))
        with self._write() as conn:
            applied = sum(
                self._patch(conn, fields, items, if_active, if_lease_owner)
                for fields, items in groups.items()
            )
            for execution_id, changes in logged:
                before = self._before(conn, execution_id, changes)
                if before is not None and self._patch(
                    conn,
                    tuple(sorted(changes)),
                    [(execution_id, changes)],
                    if_active,
                    if_lease_owner,
                ):
                    self._log(conn, execution_id, before, changes)
                    applied += 1
            return applied

    @classmethod
    def _patch(cls, conn, fields, items, if_active, if_lease_owner):
        """Apply changes of the same fields to many records in one statement.
        The document is patched inside SQLite (json_set) instead of being read,
        parsed and rewritten in Python: the tracker reschedules thousands of
        records a second. New `tasks` replace the record's rows in the tasks
        table, for the records the conditions let through."""
        if "tasks" in fields:
            others = tuple(f for f in fields if f != "tasks")
            matched = 0
            for execution_id, changes in items:
                if (
                    cls._patch(conn, others, [(execution_id, changes)], if_active, if_lease_owner)
                    if others
                    else cls._matches(conn, execution_id, if_active, if_lease_owner)
                ):
                    sql.replace_tasks(conn, execution_id, changes["tasks"])
                    matched += 1
            return matched
        columns = [f for f in fields if f in INDEXED_FIELDS]
        query = "UPDATE executions SET %s doc = json_set(doc, %s) WHERE id = ?%s" % (
            "".join("%s = ?, " % c for c in columns),
            ", ".join("'$.%s', json(?)" % f for f in fields),
            sql.conditions(if_active, if_lease_owner),
        )
        rows = [
            [sql.column_value(f, changes[f]) for f in columns]
            + [sql.dumps(changes[f]) for f in fields]
            + [execution_id]
            + sql.condition_params(if_lease_owner)
            for execution_id, changes in items
        ]
        try:
            return conn.executemany(query, rows).rowcount
        except sqlite3.IntegrityError as exc:
            raise Conflict("an execution with that engine execution id exists already") from exc

    def claim_due(self, owner, now, lease_seconds, limit):
        if limit <= 0:
            return []
        # A valid lease excludes its holder too: its poll may still be running,
        # and the tracker ticks again before it ends. One statement picks and
        # leases the records (json_set patches the document inside SQLite).
        expires = now + lease_seconds
        with self._write() as conn:
            # Leases that lapsed (their holder died or hung): a claim of one of
            # these is a takeover. Few rows: only leased ones are indexed here.
            lapsed = {
                i
                for (i,) in conn.execute(
                    "SELECT id FROM executions WHERE lease_owner IS NOT NULL AND "
                    "(lease_expires_at IS NULL OR lease_expires_at <= ?)",
                    (now,),
                )
            }
            rows = conn.execute(
                "UPDATE executions SET lease_owner = ?, lease_expires_at = ?, "
                "doc = json_set(doc, '$.lease_owner', ?, '$.lease_expires_at', ?) "
                "WHERE id IN (SELECT id FROM executions WHERE tracked = 1 AND "
                "next_poll_at <= ? AND " + sql.ACTIVE + " AND (lease_owner IS NULL OR "
                "lease_expires_at IS NULL OR lease_expires_at <= ?) "
                "ORDER BY next_poll_at, id LIMIT ?) RETURNING doc",
                (owner, expires, owner, expires, now, now, int(limit)),
            ).fetchall()
            claimed = sql.attach_tasks(
                conn, [complete_execution(json.loads(doc)) for (doc,) in rows]
            )
        claimed.sort(key=lambda r: (r["next_poll_at"], r["id"]))  # RETURNING has no order
        self._took_over(sum(1 for r in claimed if r["id"] in lapsed))
        return claimed

    def renew_leases(self, owner, expires_at):
        with self._write() as conn:
            return conn.execute(
                "UPDATE executions SET lease_expires_at = ?, "
                "doc = json_set(doc, '$.lease_expires_at', ?) WHERE lease_owner = ?",
                (expires_at, expires_at, owner),
            ).rowcount

    def release_leases(self, owner):
        with self._write() as conn:
            return conn.execute(
                "UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL, "
                "doc = json_set(doc, '$.lease_owner', NULL, '$.lease_expires_at', NULL) "
                "WHERE lease_owner = ?",
                (owner,),
            ).rowcount

    def next_due_at(self):
        with self._read() as conn:
            unleased, leased = conn.execute(sql.NEXT_DUE).fetchone()
        times = [t for t in (unleased, leased) if t is not None]
        return min(times) if times else None

    def count_executions(self, status=None):
        statuses = status_list(status)
        with self._read() as conn:
            if statuses is None:
                return conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
            if not statuses:
                return 0
            return conn.execute(
                "SELECT COUNT(*) FROM executions WHERE " + sql.in_("status", statuses), statuses
            ).fetchone()[0]

    def count_by_status(self):
        with self._read() as conn:
            return dict(conn.execute("SELECT status, COUNT(*) FROM executions GROUP BY status"))

    def list_stuck(self, limit=50):
        # Active records only (the status index), and of those the flagged
        # ones, filtered inside SQLite.
        query = "SELECT doc FROM executions WHERE %s AND %s ORDER BY created_at DESC, id DESC" % (
            sql.in_("status", sql.ACTIVE_STATUSES),
            sql.STUCK,
        )
        if limit is not None:
            query += " LIMIT %d" % int(limit)
        with self._read() as conn:
            return sql.attach_tasks(
                conn,
                [
                    complete_execution(json.loads(doc))
                    for (doc,) in conn.execute(query, sql.ACTIVE_STATUSES)
                ],
            )

    def count_stuck(self):
        with self._read() as conn:
            return dict(
                conn.execute(
                    "SELECT json_extract(doc, '$.stuck.signature'), COUNT(*) FROM executions "
                    "WHERE %s AND %s GROUP BY 1"
                    % (sql.in_("status", sql.ACTIVE_STATUSES), sql.STUCK),
                    sql.ACTIVE_STATUSES,
                )
            )

    # -- definitions --------------------------------------------------------

    def put_definition(self, definition):
        definition = prepare_definition(definition)
        with self._write() as conn:
            return (
                conn.execute(
                    "INSERT OR IGNORE INTO definitions (id, created_at, doc) VALUES (?, ?, ?)",
                    (definition["id"], definition["created_at"], sql.dumps(definition)),
                ).rowcount
                == 1
            )

    def get_definition(self, definition_id):
        with self._read() as conn:
            doc = sql.fetch(conn, "definitions", definition_id)
        if doc is None:
            raise NotFound("no definition %s" % definition_id)
        return prepare_definition(doc)

    # -- services -----------------------------------------------------------

    def register_service(self, record):
        record = prepare_service(record)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO services (id, name, host, doc) VALUES (?, ?, ?, ?)",
                (record["id"], record["name"], record["host"], sql.dumps(record)),
            )
        return record

    def heartbeat_service(self, service_id, now):
        with self._write() as conn:
            doc = sql.fetch(conn, "services", service_id)
            if doc is None:
                return False
            record = complete_service(doc)
            record["heartbeat_at"] = now
            conn.execute(
                "UPDATE services SET doc = ? WHERE id = ?", (sql.dumps(record), service_id)
            )
        return True

    def list_services(self):
        with self._read() as conn:
            return [
                complete_service(json.loads(doc))
                for (doc,) in conn.execute("SELECT doc FROM services ORDER BY name, host, id")
            ]

    def remove_service(self, service_id):
        with self._write() as conn:
            conn.execute("DELETE FROM services WHERE id = ?", (service_id,))

    # -- housekeeping -------------------------------------------------------

    def schema_version(self):
        with self._read() as conn:
            return self._recorded_version(conn)

    def health(self):
        """(ok, detail): the files are the ones opened and pass a quick
        integrity check (cached for a while: it reads every page)."""
        if self._lost:
            return False, self._lost

        def quick_check():
            try:
                with self._read() as conn:
                    rows = conn.execute("PRAGMA quick_check(1)").fetchall()
            except StoreError as exc:
                return False, str(exc)
            detail = rows[0][0] if rows else "no answer"
            return detail == "ok", "integrity ok" if detail == "ok" else detail

        try:
            self._connection()
        except StoreError as exc:
            return False, str(exc)
        return self._integrity.get(quick_check)

    @property
    def checkpoints(self):
        """Checkpoints this process made (tests, metrics)."""
        return self._checkpoints.count if self._checkpoints else 0

    def close(self):
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and self._lost:
            return  # never closed (sqlite_file.never_close)
        if conn is not None:
            with self._errors():
                conn.close()

    def __repr__(self):
        return "SqliteStore(%r)" % self.path


def _uri(path, mode):
    return "file:%s?mode=%s" % (urllib.parse.quote(os.path.abspath(path)), mode)


class _Undo(Exception):
    """Rolls the write probe back."""
