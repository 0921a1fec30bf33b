"""SqliteStore's part for the platform's side (st2bridge-api): reading and
pruning the change log, cursors, API keys and notifications. The change log
is appended to by the record writes themselves (sqlite.py, `_log`)."""

import json
import sqlite3

from st2bridge.errors import Conflict, NotFound
from st2bridge.store import sqlite_sql as sql
from st2bridge.store.records import (
    check_notification_changes,
    complete_notification,
    prepare_api_key,
    prepare_notification,
    status_list,
)


class SqlitePlatformStore:
    """Mixed into SqliteStore (uses its _read/_write transactions)."""

    # -- change log -----------------------------------------------------------

    def read_changes(self, after, limit=1000):
        with self._read() as conn:
            rows = conn.execute(
                "SELECT seq, doc FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after), int(limit)),
            ).fetchall()
        out = []
        for seq, doc in rows:
            entry = json.loads(doc)
            entry["seq"] = seq
            entry["written_at"] = entry["at"]
            out.append(entry)
        return out

    def last_change_seq(self):
        with self._read() as conn:
            return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]

    def prune_changes(self, before, keep_after_seq=None):
        query, params = "DELETE FROM changes WHERE at < ?", [before]
        if keep_after_seq is not None:
            query += " AND seq <= ?"
            params.append(int(keep_after_seq))
        with self._write() as conn:
            return conn.execute(query, params).rowcount

    def get_cursor(self, name):
        with self._read() as conn:
            row = conn.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def advance_cursor(self, name, seq):
        with self._write() as conn:
            conn.execute(
                "INSERT INTO cursors (name, seq) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET seq = MAX(seq, excluded.seq)",
                (name, int(seq)),
            )

    # -- API keys -------------------------------------------------------------

    def create_api_key(self, record):
        record = prepare_api_key(record)
        with self._write() as conn:
            old = sql.fetch_by(conn, "api_keys", "name", record["name"])
            if old is not None and not old.get("revoked_at"):
                raise Conflict("an API key named %s exists already" % record["name"])
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO api_keys (name, key_hash, doc) VALUES (?, ?, ?)",
                    (record["name"], record["key_hash"], sql.dumps(record)),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict("an API key with that hash exists already") from exc
        return record

    def api_key_by_hash(self, key_hash):
        with self._read() as conn:
            record = sql.fetch_by(conn, "api_keys", "key_hash", key_hash)
        return record if record and not record.get("revoked_at") else None

    def list_api_keys(self):
        with self._read() as conn:
            return [
                json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM api_keys ORDER BY name")
            ]

    def revoke_api_key(self, name, now):
        with self._write() as conn:
            record = sql.fetch_by(conn, "api_keys", "name", name)
            if record is None or record.get("revoked_at"):
                raise NotFound("no active API key named %s" % name)
            record["revoked_at"] = now
            conn.execute("UPDATE api_keys SET doc = ? WHERE name = ?", (sql.dumps(record), name))
        return record

    # -- notifications ----------------------------------------------------------

    def add_notifications(self, records):
        records = [prepare_notification(r) for r in records]
        inserted = []
        with self._write() as conn:
            for record in records:
                if conn.execute(
                    "INSERT OR IGNORE INTO notifications (%s, doc) VALUES (%s)"
                    % (", ".join(sql.NOTIFICATION_COLUMNS), ", ".join("?" * 10)),
                    [record[c] for c in sql.NOTIFICATION_COLUMNS] + [sql.dumps(record)],
                ).rowcount:
                    inserted.append(record["id"])
        return inserted

    def claim_notifications(self, owner, now, lease_seconds, limit):
        if limit <= 0:
            return []
        expires = now + lease_seconds
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE notifications SET lease_owner = ?, lease_expires_at = ?, "
                "doc = json_set(doc, '$.lease_owner', ?, '$.lease_expires_at', ?) "
                "WHERE id IN (SELECT n.id FROM notifications n WHERE n.status = 'pending' AND "
                "n.next_attempt_at <= ? AND (n.lease_owner IS NULL OR n.lease_expires_at IS NULL "
                "OR n.lease_expires_at <= ?) AND NOT EXISTS (SELECT 1 FROM notifications p "
                "WHERE p.execution_id = n.execution_id AND p.sink = n.sink AND "
                "p.status = 'pending' AND p.seq < n.seq) "
                "ORDER BY n.next_attempt_at, n.seq LIMIT ?) RETURNING doc",
                (owner, expires, owner, expires, now, now, int(limit)),
            ).fetchall()
        claimed = [complete_notification(json.loads(doc)) for (doc,) in rows]
        claimed.sort(key=lambda n: (n["next_attempt_at"] or 0, n["seq"]))
        return claimed

    def update_notification(self, notification_id, changes, *, if_lease_owner=None):
        changes = check_notification_changes(changes)
        with self._write() as conn:
            record = sql.fetch(conn, "notifications", notification_id)
            if record is None:
                raise NotFound("no notification %s" % notification_id)
            if if_lease_owner is not None and record.get("lease_owner") != if_lease_owner:
                return False
            record = complete_notification(dict(record, **changes))
            conn.execute(
                "UPDATE notifications SET %s, doc = ? WHERE id = ?"
                % ", ".join("%s = ?" % c for c in sql.NOTIFICATION_COLUMNS[1:]),
                [record[c] for c in sql.NOTIFICATION_COLUMNS[1:]]
                + [sql.dumps(record), notification_id],
            )
        return True

    def get_notification(self, notification_id):
        with self._read() as conn:
            record = sql.fetch(conn, "notifications", notification_id)
        if record is None:
            raise NotFound("no notification %s" % notification_id)
        return complete_notification(record)

    def list_notifications(self, status=None, execution_id=None, limit=50):
        where, params = [], []
        statuses = status_list(status)
        if statuses is not None:
            if not statuses:
                return []
            where.append(sql.in_("status", statuses))
            params += statuses
        if execution_id is not None:
            where.append("execution_id = ?")
            params.append(execution_id)
        query = "SELECT doc FROM notifications"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, seq DESC, id DESC LIMIT %d" % int(limit)
        with self._read() as conn:
            return [complete_notification(json.loads(d)) for (d,) in conn.execute(query, params)]

    def count_notifications(self):
        with self._read() as conn:
            return dict(conn.execute("SELECT status, COUNT(*) FROM notifications GROUP BY status"))
