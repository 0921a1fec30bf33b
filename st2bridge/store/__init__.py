"""Where the bridge keeps its state: open a Store from a URL.

    sqlite:///relative/path.db     SqliteStore (the embedded default)
    sqlite:////absolute/path.db
    mongodb://host[:port][,host...]/database?options   MongoStore
    mongodb+srv://cluster.example.net/database

The backends are imported lazily so that SQLite users do not need pymongo.
The record rules every backend applies are in records.py, the schema
versions' steps in migrations.py.
"""

import urllib.parse

from st2bridge.errors import ConfigError
from st2bridge.store.base import Store

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
