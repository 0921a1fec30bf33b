"""The bridge store's versioned migrations, and raw reads that change nothing.

The store records its schema version (SQLite: table `meta`, key
schema_version; MongoDB: collection `meta`, _id schema_version). A new, empty
store is created at the latest version by the store classes themselves;
every older version is brought forward here, one step at a time, by
`st2bridge db-upgrade --target bridge`. The daemons never do it: they refuse
to open a store whose version is not theirs (StoreVersionMismatch).

Adding a version: bump Store.SCHEMA_VERSION, change the store class's schema
for new stores, and add the step below for both backends; the unit tests
check that a migrated store equals a new one.
"""

import os
import sqlite3
import time
import urllib.parse
import uuid

from st2bridge import errors
from st2bridge.store import sqlite_sql
from st2bridge.store.base import Store
from st2bridge.text import one_line

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


# -- locating the store -------------------------------------------------------


def kind(url):
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("mongodb", "mongodb+srv"):
        return "mongodb"
    raise errors.ConfigError("unsupported store URL scheme %r" % scheme)


def sqlite_path(url):
    return url[len("sqlite:///") :]


def where(url):
    """The store's location without credentials."""
    if kind(url) == "sqlite":
        return sqlite_path(url)
    parts = urllib.parse.urlsplit(url)
    return "%s/%s" % (parts.netloc.rsplit("@", 1)[-1], _mongo_db(url))


def _mongo_db(url):
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/")) or "st2bridge"


def same_store(a, b):
    try:
        if kind(a) != kind(b):
            return False
        if kind(a) == "sqlite":
            return os.path.realpath(sqlite_path(a)) == os.path.realpath(sqlite_path(b))
        return where(a) == where(b)
    except errors.ConfigError:
        return False


def store_url_of(config_files):
    """The [store] url that a daemon with these config files uses."""
    from st2bridge import config

    argv = []
    for path in config_files:
        argv += ["--config-file", path]
    return config.load(argv, config_files=[]).store.url


# -- raw reads (no schema created, no version checked) ---------------------------


def _sqlite_ro(path, timeout=10.0):
    if not os.path.exists(path):
        return None
    try:
        return sqlite3.connect(
            "file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(path)), uri=True, timeout=timeout
        )
    except sqlite3.Error as exc:
        raise errors.DatabaseUnreachable("cannot open SQLite store %s: %s" % (path, exc)) from None


def _mongo(url, timeout=5.0):
    import pymongo

    client = pymongo.MongoClient(
        url,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        appname="st2bridge-db-upgrade",
    )
    return client, client[_mongo_db(url)]


def read_version(url, client=None, timeout=10.0):
    """The recorded version; None for a new (absent or empty) store.
    StoreVersionMismatch for a database that is not an st2bridge store."""
    if kind(url) == "sqlite":
        path = sqlite_path(url)
        conn = _sqlite_ro(path, timeout)
        if conn is None:
            return None
        try:
            tables = {
                n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "meta" not in tables:
                if tables:
                    raise errors.StoreVersionMismatch(
                        "%s is a SQLite database but not an st2bridge store" % path
                    )
                return None
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise errors.UpgradeLocked(
                    "SQLite store %s stays locked (waited %.0f s)" % (path, timeout)
                ) from None
            raise errors.DatabaseUnreachable(
                "cannot read SQLite store %s: %s" % (path, exc)
            ) from None
        except sqlite3.Error as exc:
            raise errors.DatabaseUnreachable(
                "cannot read SQLite store %s: %s" % (path, exc)
            ) from None
        finally:
            conn.close()
        if row is None:
            return 1  # a store that lost its record: treat as the first version
        return int(row[0]) if str(row[0]).isdigit() else row[0]
    with _mongo_session(url, client) as db:
        doc = db["meta"].find_one({"_id": "schema_version"})
        return None if doc is None else doc.get("value")


def read_services(url, client=None):
    """Service records as the store holds them (any version)."""
    import json

    if kind(url) == "sqlite":
        conn = _sqlite_ro(sqlite_path(url))
        if conn is None:
            return []
        try:
            tables = {
                n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "services" not in tables:
                return []
            return [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM services")]
        except sqlite3.Error as exc:
            raise errors.DatabaseUnreachable(
                "cannot read SQLite store %s: %s" % (sqlite_path(url), exc)
            ) from None
        finally:
            conn.close()
    with _mongo_session(url, client) as db:
        return [dict(doc, id=doc.get("_id")) for doc in db["services"].find()]


class _mongo_session:
    def __init__(self, url, client=None):
        self.url, self.client, self.own = url, client, client is None

    def __enter__(self):
        from pymongo import errors as mongo_errors

        self.mongo_errors = mongo_errors
        if self.client is None:
            self.client, db = _mongo(self.url)
        else:
            db = self.client[_mongo_db(self.url)]
        return db

    def __exit__(self, exc_type, exc, tb):
        if self.own:
            self.client.close()
        if exc is not None and isinstance(exc, self.mongo_errors.ConnectionFailure):
            raise errors.DatabaseUnreachable(
                "MongoDB store %s is unreachable: %s"
                % (where(self.url), one_line(exc, first_line=True, limit=200))
            )
        return False


# -- migrating ------------------------------------------------------------------


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


def migrate(url, *, lock_timeout, say, client=None):
    """Bring the store to LATEST; (version before, version after)."""
    if kind(url) == "sqlite":
        return _migrate_sqlite(sqlite_path(url), lock_timeout, say)
    with _mongo_session(url, client) as db:
        return _migrate_mongo(db, lock_timeout, say)


def _migrate_sqlite(path, lock_timeout, say):
    if read_version("sqlite:///" + path, timeout=max(lock_timeout, 0.1)) is None:
        from st2bridge.store.sqlite import SqliteStore

        SqliteStore(path).close()
        say("created a new SQLite store %s at version %d" % (path, LATEST))
        return None, LATEST
    conn = sqlite3.connect(path, timeout=max(lock_timeout, 0.1), isolation_level=None)
    try:
        try:
            conn.execute("BEGIN EXCLUSIVE")  # the lock: one migration, no writer meanwhile
        except sqlite3.OperationalError as exc:
            raise errors.UpgradeLocked(
                "SQLite store %s stays locked (%s; waited %.0f s)" % (path, exc, lock_timeout)
            ) from None
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            before = int(row[0]) if row else 1
            for version, what in pending(before):
                say("bridge store %s: version %d -> %d: %s" % (path, version - 1, version, what))
                for statement in SQLITE_STEPS[version][1]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(version),),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise errors.MigrationFailed(
            "bridge store %s: %s (nothing changed)" % (path, exc)
        ) from None
    finally:
        conn.close()
    return before, LATEST


def _migrate_mongo(db, lock_timeout, say):
    from pymongo import errors as mongo_errors

    meta = db["meta"]
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + lock_timeout
    while True:
        now = time.time()
        meta.delete_one({"_id": "db_upgrade_lock", "expires_at": {"$lt": now}})
        try:
            meta.insert_one({"_id": "db_upgrade_lock", "owner": owner, "expires_at": now + 3600})
            break
        except mongo_errors.DuplicateKeyError:
            if time.monotonic() >= deadline:
                raise errors.UpgradeLocked(
                    "another db-upgrade holds the lock of the MongoDB store (meta db_upgrade_lock)"
                ) from None
            time.sleep(0.5)
    try:
        doc = meta.find_one({"_id": "schema_version"})
        before = None if doc is None else doc.get("value")
        for version, _what in pending(before):
            start = 1 if before is None else version
            for step in range(start, version + 1):
                say("bridge store: version %d -> %d: %s" % (step - 1, step, MONGO_STEPS[step][0]))
                MONGO_STEPS[step][1](db)
                meta.update_one({"_id": "schema_version"}, {"$set": {"value": step}}, upsert=True)
        return before, LATEST
    finally:
        meta.delete_one({"_id": "db_upgrade_lock", "owner": owner})
