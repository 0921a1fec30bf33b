"""Where the bridge keeps its state: open a Store from a URL.

    sqlite:///relative/path.db     SqliteStore (the embedded default)
    sqlite:////absolute/path.db
    mongodb://host[:port][,host...]/database?options   MongoStore
    mongodb+srv://cluster.example.net/database

The backends are imported lazily so that SQLite users do not need pymongo.
The helpers below the opener are shared by the backends (one place for the
record rules every backend must apply the same way).
"""

import copy
import urllib.parse

from st2bridge import status as _status
from st2bridge.errors import ConfigError
from st2bridge.store.base import (
    DEFINITION_FIELDS,
    EXECUTION_FIELDS,
    Store,
    new_execution_record,
)

__all__ = ["Store", "open_store"]

_SQLITE_PREFIX = "sqlite:///"


def open_store(
    url,
    *,
    busy_timeout=10.0,
    connect_timeout=5.0,
    create=True,
    checkpoint_interval=60.0,
    checkpoint_wal_mb=16.0,
):
    """Return the Store that `url` names. ConfigError for a URL we cannot use;
    the messages name the scheme only, since URLs may carry passwords.
    `create=False`: an embedded store must exist already (MongoDB creates
    nothing on a read)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("store URL is empty; use sqlite:///path.db or mongodb://host/db")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""

    if scheme == "sqlite":
        if not url.startswith(_SQLITE_PREFIX):
            raise ConfigError(
                "sqlite store URL needs three slashes: sqlite:///relative/path.db "
                "or sqlite:////absolute/path.db"
            )
        path = url[len(_SQLITE_PREFIX) :]
        if not path or "?" in path:
            raise ConfigError(
                "sqlite store URL needs a file path and takes no options: "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        from st2bridge.store.sqlite import SqliteStore

        return SqliteStore(
            path,
            busy_timeout=busy_timeout,
            create=create,
            checkpoint_interval=checkpoint_interval,
            checkpoint_wal_mb=checkpoint_wal_mb,
        )

    if scheme in ("mongodb", "mongodb+srv"):
        database = urllib.parse.unquote(urllib.parse.urlsplit(url).path.lstrip("/"))
        from st2bridge.store.mongo import MongoStore

        return MongoStore(url, database=database or "st2bridge", connect_timeout=connect_timeout)

    raise ConfigError(
        "unsupported store URL scheme %r: use sqlite:///path.db or "
        "mongodb://host/database" % (scheme or url.split("/", 1)[0][:20])
    )


# -- shared by the backends -------------------------------------------------

SERVICE_FIELDS = ("id", "name", "host", "pid", "version", "started_at", "heartbeat_at", "info")

# Sorted so that SQL text and query plans are stable.
TERMINAL = tuple(sorted(_status.TERMINAL))


def prepare_execution(record):
    """A full, private copy of a new execution record; ValueError if invalid."""
    record = new_execution_record(**copy.deepcopy(dict(record)))
    if not isinstance(record["id"], str) or not record["id"]:
        raise ValueError("an execution record needs a string id")
    key = record["idempotency_key"]
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError("an idempotency key is a non-empty string")
    # Claim queries match tracked == true; a stored 1 would not match in MongoDB.
    record["tracked"] = bool(record["tracked"])
    if record["status"] in TERMINAL:
        record["next_poll_at"] = None
    return record


def complete_execution(fields):
    """A stored execution with every field present: a record written before a
    field was added reads back with that field's default (no migration)."""
    record = new_execution_record()
    record.update(fields)
    return record


def prepare_definition(record):
    """A full, private copy of a definition record; ValueError if invalid."""
    record = copy.deepcopy(dict(record))
    unknown = set(record) - set(DEFINITION_FIELDS)
    if unknown:
        raise ValueError("unknown definition fields: %s" % ", ".join(sorted(unknown)))
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise ValueError("a definition record needs a string id")
    if not isinstance(record.get("text"), str):
        raise ValueError("a definition record needs its text")
    full = dict.fromkeys(DEFINITION_FIELDS)
    full.update(record)
    return full


def complete_service(fields):
    record = dict.fromkeys(SERVICE_FIELDS)
    record.update(fields)
    return record


def prepare_changes(changes):
    """update_execution's changes, checked; ValueError if invalid. Not a deep
    copy: both backends serialise what they store (SQLite the document,
    MongoDB the nested fields), so callers' objects are never aliased."""
    changes = dict(changes)
    unknown = set(changes) - set(EXECUTION_FIELDS)
    if unknown:
        raise ValueError("unknown execution fields: %s" % ", ".join(sorted(unknown)))
    if "id" in changes or "idempotency_key" in changes:
        raise ValueError("an execution's id and idempotency key cannot be changed")
    if "tracked" in changes:
        changes["tracked"] = bool(changes["tracked"])
    if changes.get("status") in TERMINAL:
        # A final record is never due: it leaves the due index, so claims and
        # next_due_at cost what is active, not the whole history.
        changes["next_poll_at"] = None
    return changes


def prepare_service(record):
    """A full, private copy of a service record; ValueError if invalid."""
    record = copy.deepcopy(dict(record))
    unknown = set(record) - set(SERVICE_FIELDS)
    if unknown:
        raise ValueError("unknown service fields: %s" % ", ".join(sorted(unknown)))
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise ValueError("a service record needs a string id")
    return {field: record.get(field) for field in SERVICE_FIELDS}


def status_list(status):
    """None (no filter) or a list of statuses, from one status or a collection."""
    if status is None:
        return None
    if isinstance(status, str):
        return [status]
    return list(status)


def version_mismatch_message(where, found, wanted):
    if isinstance(found, int) and found < wanted:
        return (
            "store %s has schema version %s, this st2bridge needs %s: "
            "run `st2bridge db-upgrade`" % (where, found, wanted)
        )
    return (
        "store %s has schema version %s, this st2bridge knows only %s: "
        "it was written by another st2bridge version (run `st2bridge db-upgrade` "
        "with the matching version)" % (where, found, wanted)
    )
