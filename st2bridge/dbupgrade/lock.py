"""One guard at a time: a lock held in the database for the whole upgrade.

PostgreSQL: a session advisory lock (pg_try_advisory_lock), per database.
MySQL/MariaDB: a named lock (GET_LOCK), server-wide, so its name carries the
database name. Both vanish with the session, so a killed guard never leaves
the lock behind. The lock does not block the migration commands (they use
their own connections); it only keeps a second guard out.
"""

import os
import socket
import time

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from st2bridge import errors
from st2bridge.dbupgrade import engine_schema

# Two int4 keys for pg_try_advisory_lock(int, int): "ST2B", "DBUP".
PG_KEYS = (0x53543242, 0x44425550)
POLL_SECONDS = 0.5


def whoami():
    return "st2bridge-db-upgrade pid %d on %s" % (os.getpid(), socket.gethostname())


class DatabaseLock:
    """Context manager; UpgradeLocked when another guard keeps the lock
    longer than `timeout` seconds. `say` reports that we wait (once)."""

    def __init__(self, engine, timeout, say):
        self.engine = engine
        self.timeout = timeout
        self.say = say
        self.pg = engine_schema.family(engine) == "postgresql"
        self.name = "st2bridge-db-upgrade:%s" % (engine.url.database or "")
        self.conn = None

    def __enter__(self):
        try:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if self.pg:
                self.conn.execute(
                    sa.text("SELECT set_config('application_name', :n, false)"),
                    {"n": whoami()[:63]},
                )
            deadline = time.monotonic() + self.timeout
            told = False
            while not self._try():
                if time.monotonic() >= deadline:
                    holder = self._holder()
                    self._close()
                    raise errors.UpgradeLocked(
                        "another db-upgrade holds the lock on database %s%s (waited %.0f s; "
                        "[db_upgrade] lock_timeout)"
                        % (
                            self.engine.url.database,
                            " (%s)" % holder if holder else "",
                            self.timeout,
                        )
                    )
                if not told:
                    holder = self._holder()
                    self.say(
                        "another db-upgrade holds the lock on database %s%s: waiting up "
                        "to %.0f s"
                        % (
                            self.engine.url.database,
                            " (%s)" % holder if holder else "",
                            self.timeout,
                        )
                    )
                    told = True
                time.sleep(POLL_SECONDS)
        except (DBAPIError, SQLAlchemyError) as exc:
            self._close()
            raise errors.DatabaseUnreachable(
                "cannot take the upgrade lock: %s" % engine_schema.db_error(exc)
            ) from None
        return self

    def _try(self):
        if self.pg:
            return bool(
                self.conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:a, :b)"),
                    {"a": PG_KEYS[0], "b": PG_KEYS[1]},
                ).scalar()
            )
        return self.conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": self.name}).scalar() == 1

    def _holder(self):
        """Who holds the lock, as far as the server tells; '' if unknown."""
        try:
            if self.pg:
                row = self.conn.execute(
                    sa.text(
                        "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                        "AND l.classid = :a AND l.objid = :b AND l.granted "
                        "AND l.database = (SELECT oid FROM pg_database WHERE datname = "
                        "current_database())"
                    ),
                    {"a": PG_KEYS[0], "b": PG_KEYS[1]},
                ).first()
                return "%s, backend %s" % (row[0] or "client %s" % row[1], row[2]) if row else ""
            row = self.conn.execute(
                sa.text(
                    "SELECT p.USER, p.HOST, p.ID FROM information_schema.PROCESSLIST p "
                    "WHERE p.ID = IS_USED_LOCK(:n)"
                ),
                {"n": self.name},
            ).first()
            return "%s@%s, connection %s" % tuple(row) if row else ""
        except (DBAPIError, SQLAlchemyError):
            return ""

    def __exit__(self, *exc):
        try:
            if self.conn is not None:
                if self.pg:
                    self.conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:a, :b)"),
                        {"a": PG_KEYS[0], "b": PG_KEYS[1]},
                    )
                else:
                    self.conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": self.name})
        except (DBAPIError, SQLAlchemyError):
            pass  # closing the session releases it anyway
        finally:
            self._close()

    def _close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except (DBAPIError, SQLAlchemyError):
                pass
            self.conn = None
