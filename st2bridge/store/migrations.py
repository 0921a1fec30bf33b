"""The bridge store's schema versions: the steps that bring a store forward.

The store records its schema version (SQLite: table `meta`, key
schema_version; MongoDB: collection `meta`, _id schema_version). A new, empty
store is created at LATEST by the store classes themselves; every older
version is brought forward one step at a time by the steps below, which
`st2bridge db-upgrade --target bridge` (st2bridge.dbupgrade.bridge_store)
runs under its lock. The daemons never do: they refuse a store whose version
is not theirs (StoreVersionMismatch).

Adding a version: bump Store.SCHEMA_VERSION, change the store class's schema
for new stores, and add the step here for both backends; the unit tests check
that a migrated store equals a new one.
"""

from st2bridge import errors
from st2bridge.store import sqlite_sql
from st2bridge.store.base import Store

LATEST = Store.SCHEMA_VERSION

# The SQLite schema of version 1 (frozen: what stores created then have).
SQLITE_V1 = """
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
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# version -> (what it does, SQLite statements)
SQLITE_STEPS = {
    2: (
        "index services by (name, host), the order list_services returns",
        ["CREATE INDEX IF NOT EXISTS ix_services_name_host ON services (name, host)"],
    ),
    3: (
        "tasks in a table of their own, one row each (a callback rewrites one task, not the "
        "record)",
        [
            "CREATE TABLE tasks (execution_id TEXT NOT NULL, idx INTEGER NOT NULL, task_id TEXT,"
            "\n                    doc TEXT NOT NULL, PRIMARY KEY (execution_id, idx))"
            " WITHOUT ROWID",
            "CREATE INDEX ix_tasks_execution_id_task_id ON tasks (execution_id, task_id)",
            "INSERT INTO tasks (execution_id, idx, task_id, doc)"
            " SELECT e.id, CAST(t.key AS INTEGER), json_extract(t.value, '$.id'), t.value"
            " FROM executions e, json_each(e.doc, '$.tasks') t",
            "UPDATE executions SET doc = json_remove(doc, '$.tasks')",
        ],
    ),
    4: (
        "finished executions leave the due index (next_poll_at cleared): claims cost what "
        "is active, not the whole history",
        [
            "UPDATE executions SET next_poll_at = NULL,"
            " doc = json_set(doc, '$.next_poll_at', json('null'))"
            " WHERE status IN ('abandoned', 'canceled', 'failed', 'succeeded', 'timeout')",
        ],
    ),
    5: (
        "the definitions executions were started with (content-addressed) and idempotency keys",
        [
            "CREATE TABLE definitions (id TEXT PRIMARY KEY, created_at REAL, doc TEXT NOT NULL)",
            "CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, execution_id TEXT NOT NULL)",
        ],
    ),
    6: (
        "the platform's side: the change log, cursors, API keys and the notification outbox",
        sqlite_sql.SCHEMA_V6,
    ),
    7: (
        "alarms: the event log, the alarm state (de-duplication keys, concurrency slots) and "
        "the start queue",
        sqlite_sql.SCHEMA_V7,
    ),
}


def _mongo_v1(db):
    ex = db["executions"]
    ex.create_index("status", name="ix_status")
    ex.create_index("created_at", name="ix_created_at")
    ex.create_index("workflow_name", name="ix_workflow_name")
    ex.create_index([("tracked", 1), ("next_poll_at", 1)], name="ix_tracked_next_poll_at")
    ex.create_index("lease_owner", name="ix_lease_owner")
    ex.create_index(
        "engine_execution_id",
        name="ix_engine_execution_id",
        unique=True,
        partialFilterExpression={"engine_execution_id": {"$type": "string"}},
    )


def _mongo_v2(db):
    db["services"].create_index([("name", 1), ("host", 1)], name="ix_name_host")


def _mongo_v4(db):
    db["executions"].update_many(
        {"status": {"$in": ["abandoned", "canceled", "failed", "succeeded", "timeout"]}},
        {"$set": {"next_poll_at": None}},
    )


def _mongo_v5(db):
    db["executions"].create_index(
        "idempotency_key", name="ix_idempotency_key", unique=True, sparse=True
    )


MONGO_STEPS = {
    1: ("the executions indexes", _mongo_v1),
    2: ("index services by (name, host), the order list_services returns", _mongo_v2),
    3: (
        "nothing to do (version 3 moved SQLite's tasks to a table; a MongoDB document "
        "updates one task in place)",
        lambda db: None,
    ),
    4: (
        "finished executions leave the due index (next_poll_at cleared): claims cost what "
        "is active, not the whole history",
        _mongo_v4,
    ),
    5: (
        "a unique index of idempotency keys (definitions get a collection when first kept)",
        _mongo_v5,
    ),
    6: (
        "the platform's side: indexes of labels, the change log, API keys and the "
        "notification outbox",
        lambda db: _mongo_v6(db),
    ),
    7: (
        "alarms: indexes of the event log, the alarm state and the start queue",
        lambda db: _mongo_v7(db),
    ),
}


def _mongo_v6(db):
    from st2bridge.store.mongo_platform import create_v6_indexes

    create_v6_indexes(db)


def _mongo_v7(db):
    from st2bridge.store.mongo_alarms import create_v7_indexes

    create_v7_indexes(db)


def pending(version):
    """The steps from `version` to LATEST: [(version, description)]."""
    if version is None:
        return [(LATEST, "create a new store at version %d" % LATEST)]
    if not isinstance(version, int) or version > LATEST:
        raise errors.StoreVersionMismatch(
            "the bridge store has schema version %s, this st2bridge knows only %d: it was "
            "written by a newer st2bridge; run that version's db-upgrade" % (version, LATEST)
        )
    return [
        (v, SQLITE_STEPS.get(v, MONGO_STEPS.get(v, ("", None)))[0])
        for v in range(version + 1, LATEST + 1)
    ]
