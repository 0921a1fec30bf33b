"""`db-upgrade --target bridge`: running the bridge store's migrations under a
lock, and raw reads of a store that change nothing.

The steps themselves, and which are pending from a version, are the store's
own (st2bridge.store.migrations); this module runs them, one version at a
time, each SQLite run in one exclusive transaction, MongoDB under a lock
document. The daemons never migrate: they refuse a store whose version is
not theirs (StoreVersionMismatch).
"""

import os
import sqlite3
import time
import urllib.parse
import uuid

from st2bridge import errors
from st2bridge.store.migrations import LATEST, MONGO_STEPS, SQLITE_STEPS, pending
from st2bridge.text import one_line

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
