"""The SQL of the SQLite store: its schema, the fragments its queries share,
and how a record maps to a row (indexed columns + the whole record as JSON).
SqliteStore (sqlite.py) holds the behaviour: locking, transactions, errors.
"""

import contextlib
import json

from st2bridge import status as _status
from st2bridge.errors import NotFound
from st2bridge.store.base import INDEXED_FIELDS
from st2bridge.store.records import TERMINAL

SCHEMA = """
CREATE TABLE executions (
    id TEXT PRIMARY KEY, engine_execution_id TEXT, status TEXT, workflow_name TEXT,
    created_at REAL, tracked INTEGER NOT NULL DEFAULT 0, next_poll_at REAL,
    lease_owner TEXT, lease_expires_at REAL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX ix_executions_engine_execution_id ON executions (engine_execution_id);
CREATE INDEX ix_executions_status ON executions (status);
CREATE INDEX ix_executions_created_at ON executions (created_at);
CREATE INDEX ix_executions_workflow_name ON executions (workflow_name);
CREATE INDEX ix_executions_tracked_next_poll_at ON executions (tracked, next_poll_at);
CREATE INDEX ix_executions_lease_owner ON executions (lease_owner);
CREATE TABLE services (id TEXT PRIMARY KEY, name TEXT, host TEXT, doc TEXT NOT NULL);
CREATE INDEX ix_services_name_host ON services (name, host);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tasks (execution_id TEXT NOT NULL, idx INTEGER NOT NULL, task_id TEXT,
                    doc TEXT NOT NULL, PRIMARY KEY (execution_id, idx)) WITHOUT ROWID;
CREATE INDEX ix_tasks_execution_id_task_id ON tasks (execution_id, task_id);
CREATE TABLE definitions (id TEXT PRIMARY KEY, created_at REAL, doc TEXT NOT NULL);
CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, execution_id TEXT NOT NULL);
"""

# Version 6 (the platform's side): what SCHEMA adds, also run by db-upgrade's step.
SCHEMA_V6 = [
    "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,"
    " execution_id TEXT NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX ix_changes_at ON changes (at)",
    "CREATE TABLE cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE api_keys (name TEXT PRIMARY KEY, key_hash TEXT NOT NULL, doc TEXT NOT NULL)",
    "CREATE UNIQUE INDEX ix_api_keys_key_hash ON api_keys (key_hash)",
    "CREATE TABLE notifications (id TEXT PRIMARY KEY, execution_id TEXT NOT NULL,"
    " sink TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL, next_attempt_at REAL,"
    " lease_owner TEXT, lease_expires_at REAL, created_at REAL, doc TEXT NOT NULL)",
    "CREATE INDEX ix_notifications_due ON notifications (status, next_attempt_at)",
    "CREATE INDEX ix_notifications_order ON notifications (execution_id, sink, seq)",
    "CREATE INDEX ix_notifications_created_at ON notifications (created_at)",
]
SCHEMA += ";\n".join(SCHEMA_V6) + ";\n"

# Version 7 (alarms): events, the alarm state (compare-and-set documents),
# the start queue.
SCHEMA_V7 = [
    "CREATE TABLE events (id TEXT PRIMARY KEY, source TEXT NOT NULL, received_at REAL NOT NULL,"
    " status TEXT NOT NULL, outcome TEXT, lease_expires_at REAL, doc TEXT NOT NULL)",
    "CREATE INDEX ix_events_received_at ON events (received_at)",
    "CREATE INDEX ix_events_status ON events (status, lease_expires_at)",
    "CREATE TABLE alarm_state (kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,"
    " updated_at REAL, doc TEXT NOT NULL, PRIMARY KEY (kind, key))",
    "CREATE INDEX ix_alarm_state_updated_at ON alarm_state (kind, updated_at)",
    "CREATE TABLE alarm_queue (id TEXT PRIMARY KEY, policy TEXT NOT NULL, status TEXT NOT NULL,"
    " created_at REAL NOT NULL, lease_owner TEXT, lease_expires_at REAL, doc TEXT NOT NULL)",
    "CREATE INDEX ix_alarm_queue_order ON alarm_queue (status, policy, created_at, id)",
]
SCHEMA += ";\n".join(SCHEMA_V7) + ";\n"
EVENT_COLUMNS = ("id", "source", "received_at", "status", "outcome", "lease_expires_at")
QUEUE_COLUMNS = ("id", "policy", "status", "created_at", "lease_owner", "lease_expires_at")

NOTIFICATION_COLUMNS = (
    "id",
    "execution_id",
    "sink",
    "seq",
    "status",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "created_at",
)

COLUMNS = ", ".join(INDEXED_FIELDS)
# The statuses that are not terminal, for queries that can use the status index.
ACTIVE_STATUSES = sorted(s for s in _status.ALL if s not in _status.TERMINAL)
# A record flagged stuck (JSON null reads back as SQL NULL).
STUCK = "json_extract(doc, '$.stuck') IS NOT NULL"
ACTIVE = "COALESCE(status, '') NOT IN (%s)" % ", ".join("'%s'" % s for s in TERMINAL)
INSERT = "INSERT INTO executions (%s, doc) VALUES (%s)" % (
    COLUMNS,
    ", ".join("?" * (len(INDEXED_FIELDS) + 1)),
)
# next_due_at: the earliest unleased record (the first index entry that is not
# leased) and the earliest time a leased one frees up, max(due, lease expiry):
# exact, and its cost grows with the leased records only, not with the tracked.
NEXT_DUE = (
    "SELECT (SELECT next_poll_at FROM executions WHERE tracked = 1 AND "
    "next_poll_at IS NOT NULL AND (lease_owner IS NULL OR lease_expires_at IS NULL) AND "
    + ACTIVE
    + " ORDER BY next_poll_at LIMIT 1), "
    "(SELECT MIN(MAX(next_poll_at, lease_expires_at)) FROM executions "
    "INDEXED BY ix_executions_lease_owner WHERE lease_owner IS NOT NULL AND "
    "lease_expires_at IS NOT NULL AND tracked = 1 AND next_poll_at IS NOT NULL AND " + ACTIVE + ")"
)


def append_change(conn, entry):
    """Add one change-log entry in the caller's transaction; its seq."""
    return conn.execute(
        "INSERT INTO changes (at, execution_id, doc) VALUES (?, ?, ?)",
        (entry["at"], entry["execution_id"], dumps(entry)),
    ).lastrowid


def dumps(value):
    # json writes floats with repr(), which reads back to the same float.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def row(record):
    """Column values for a record, in INDEXED_FIELDS order, then its doc (all
    but the tasks, which are rows of the tasks table)."""
    values = [record[field] for field in INDEXED_FIELDS]
    values[INDEXED_FIELDS.index("tracked")] = 1 if record["tracked"] else 0
    return values + [dumps({k: v for k, v in record.items() if k != "tasks"})]


# Tasks live in a table of their own, one small row each: a callback changes
# one task, and rewriting a record with its whole task list made the cost of
# an event grow with the record (SQLite rewrites the full row).


def fetch_record(conn, execution_id):
    """The record's fields and its tasks, or None."""
    doc = fetch(conn, "executions", execution_id)
    return None if doc is None else attach_tasks(conn, [doc])[0]


def fetch_task(conn, execution_id, task_id):
    """(index, task) of the execution's task with that id, or (None, None)."""
    row = conn.execute(
        "SELECT idx, doc FROM tasks WHERE execution_id = ? AND task_id = ?", (execution_id, task_id)
    ).fetchone()
    return (row[0], json.loads(row[1])) if row else (None, None)


def attach_tasks(conn, records):
    """Set each record's `tasks` from the tasks table (in index order). Each
    record's task rows are joined into one JSON array text and decoded once
    (a decode per row was twice as slow)."""
    texts = {r["id"]: [] for r in records}
    ids = list(texts)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for execution_id, doc in conn.execute(
            "SELECT execution_id, doc FROM tasks WHERE "
            + in_("execution_id", chunk)
            + " ORDER BY execution_id, idx",
            chunk,
        ):
            texts[execution_id].append(doc)
    for r in records:
        r["tasks"] = json.loads("[%s]" % ",".join(texts[r["id"]]))
    return records


def replace_tasks(conn, execution_id, tasks):
    conn.execute("DELETE FROM tasks WHERE execution_id = ?", (execution_id,))
    conn.executemany(
        "INSERT INTO tasks (execution_id, idx, task_id, doc) VALUES (?, ?, ?, ?)",
        [(execution_id, i, t.get("id"), dumps(t)) for i, t in enumerate(tasks or [])],
    )


def put_task(conn, execution_id, index, task):
    """Set the task at `index`, or append it (index None)."""
    conn.execute(
        "INSERT OR REPLACE INTO tasks (execution_id, idx, task_id, doc) VALUES (?, "
        "COALESCE(?, (SELECT COALESCE(MAX(idx) + 1, 0) FROM tasks WHERE execution_id = ?)), "
        "?, ?)",
        (execution_id, index, execution_id, task.get("id"), dumps(task)),
    )


@contextlib.contextmanager
def transaction(conn):
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def fetch(conn, table, id_):
    row = conn.execute("SELECT doc FROM %s WHERE id = ?" % table, (id_,)).fetchone()
    return None if row is None else json.loads(row[0])


def fetch_by(conn, table, column, value):
    row = conn.execute("SELECT doc FROM %s WHERE %s = ?" % (table, column), (value,)).fetchone()
    return None if row is None else json.loads(row[0])


def must_exist(conn, execution_id):
    if conn.execute("SELECT 1 FROM executions WHERE id = ?", (execution_id,)).fetchone() is None:
        raise NotFound("no execution %s" % execution_id)


def conditions(if_active, if_lease_owner):
    return ((" AND " + ACTIVE) if if_active else "") + (
        " AND lease_owner = ?" if if_lease_owner is not None else ""
    )


def condition_params(if_lease_owner):
    return [if_lease_owner] if if_lease_owner is not None else []


def column_value(field, value):
    return (1 if value else 0) if field == "tracked" else value


def in_(column, values):
    return "%s IN (%s)" % (column, ", ".join("?" * len(values)))
