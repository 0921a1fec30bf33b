"""SqliteStore's part for alarms (schema version 7): events, the alarm state
documents (compare-and-set) and the start queue. Every write runs in the
store's BEGIN IMMEDIATE transactions, so a compare-and-set or a claim is one
atomic step across processes; inside Store.transaction() several share one
commit (an event and every decision about it)."""

import json
import sqlite3

from st2bridge.errors import Conflict, NotFound
from st2bridge.store import sqlite_sql as sql
from st2bridge.store.alarm_records import (
    check_event_changes,
    check_queue_changes,
    complete_event,
    complete_queue_item,
    prepare_event,
    prepare_queue_item,
)
from st2bridge.store.records import status_list


def _insert(conn, table, columns, record):
    conn.execute(
        "INSERT INTO %s (%s, doc) VALUES (%s)"
        % (table, ", ".join(columns), ", ".join("?" * (len(columns) + 1))),
        [record[c] for c in columns] + [sql.dumps(record)],
    )


def _rewrite(conn, table, columns, record):
    conn.execute(
        "UPDATE %s SET %s, doc = ? WHERE id = ?"
        % (table, ", ".join("%s = ?" % c for c in columns[1:])),
        [record[c] for c in columns[1:]] + [sql.dumps(record), record["id"]],
    )


class SqliteAlarmStore:
    """Mixed into SqliteStore (uses its _read/_write transactions)."""

    # -- events -----------------------------------------------------------------

    def add_event(self, record):
        record = prepare_event(record)
        with self._write() as conn:
            try:
                _insert(conn, "events", sql.EVENT_COLUMNS, record)
            except sqlite3.IntegrityError as exc:
                raise Conflict("event %s exists already" % record["id"]) from exc
        return record

    def update_event(self, event_id, changes, *, if_lease_owner=None):
        changes = check_event_changes(changes)
        with self._write() as conn:
            record = sql.fetch(conn, "events", event_id)
            if record is None:
                raise NotFound("no event %s" % event_id)
            if if_lease_owner is not None and record.get("lease_owner") != if_lease_owner:
                return False
            _rewrite(conn, "events", sql.EVENT_COLUMNS, complete_event(dict(record, **changes)))
        return True

    def get_event(self, event_id):
        with self._read() as conn:
            record = sql.fetch(conn, "events", event_id)
        if record is None:
            raise NotFound("no event %s" % event_id)
        return complete_event(record)

    def list_events(self, source=None, outcome=None, since=None, limit=50, before=None):
        where, params = [], []
        for column, value in (("source", source), ("outcome", outcome)):
            values = status_list(value)
            if values is not None:
                where.append(sql.in_(column, values))
                params += values
        if since is not None:
            where.append("received_at >= ?")
            params.append(since)
        if before is not None:
            where.append("(received_at < ? OR (received_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        query = "SELECT doc FROM events"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY received_at DESC, id DESC LIMIT %d" % int(limit)
        with self._read() as conn:
            return [complete_event(json.loads(d)) for (d,) in conn.execute(query, params)]

    def claim_events(self, owner, now, lease_seconds, limit):
        if limit <= 0:
            return []
        expires = now + lease_seconds
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE events SET lease_expires_at = ?, doc = json_set(doc, '$.lease_owner', ?,"
                " '$.lease_expires_at', ?) WHERE id IN (SELECT id FROM events WHERE"
                " status = 'received' AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"
                " ORDER BY received_at LIMIT ?) RETURNING doc",
                (expires, owner, expires, now, int(limit)),
            ).fetchall()
        claimed = [complete_event(json.loads(d)) for (d,) in rows]
        claimed.sort(key=lambda e: (e["received_at"], e["id"]))
        return claimed

    def prune_events(self, before):
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM events WHERE received_at < ? AND status = 'processed'", (before,)
            ).rowcount

    # -- alarm state (compare-and-set documents) ----------------------------------

    def get_state(self, kind, key):
        with self._read() as conn:
            row = conn.execute(
                "SELECT doc, version FROM alarm_state WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return (json.loads(row[0]), row[1]) if row else (None, 0)

    def put_state(self, kind, key, doc, version, now):
        with self._write() as conn:
            if not version:
                return bool(
                    conn.execute(
                        "INSERT OR IGNORE INTO alarm_state (kind, key, version, updated_at, doc)"
                        " VALUES (?, ?, 1, ?, ?)",
                        (kind, key, now, sql.dumps(doc)),
                    ).rowcount
                )
            return bool(
                conn.execute(
                    "UPDATE alarm_state SET version = version + 1, updated_at = ?, doc = ?"
                    " WHERE kind = ? AND key = ? AND version = ?",
                    (now, sql.dumps(doc), kind, key, int(version)),
                ).rowcount
            )

    def prune_state(self, kind, before):
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM alarm_state WHERE kind = ? AND updated_at < ?", (kind, before)
            ).rowcount

    def execution_summaries(self, ids=(), idempotency_keys=()):
        ids, keys = list(ids), list(idempotency_keys)
        out = {}
        with self._read() as conn:
            for start in range(0, max(len(ids), len(keys)), 400):
                part_ids, part_keys = ids[start : start + 400], keys[start : start + 400]
                queries, params = [], []
                if part_ids:
                    queries.append("SELECT id FROM executions WHERE " + sql.in_("id", part_ids))
                    params += part_ids
                if part_keys:
                    queries.append(
                        "SELECT execution_id FROM idempotency_keys WHERE "
                        + sql.in_("key", part_keys)
                    )
                    params += part_keys
                for row in conn.execute(
                    "SELECT id, status, json_extract(doc, '$.ended_at'),"
                    " json_extract(doc, '$.idempotency_key') FROM executions WHERE id IN (%s)"
                    % " UNION ".join(queries),
                    params,
                ):
                    out[row[0]] = {
                        "id": row[0],
                        "status": row[1],
                        "ended_at": row[2],
                        "idempotency_key": row[3],
                    }
        return list(out.values())

    # -- the start queue -------------------------------------------------------------

    def enqueue(self, item):
        item = prepare_queue_item(item)
        with self._write() as conn:
            if sql.fetch(conn, "alarm_queue", item["id"]) is not None:
                return False
            _insert(conn, "alarm_queue", sql.QUEUE_COLUMNS, item)
        return True

    def get_queue_item(self, item_id):
        with self._read() as conn:
            item = sql.fetch(conn, "alarm_queue", item_id)
        if item is None:
            raise NotFound("no queue item %s" % item_id)
        return complete_queue_item(item)

    def claim_queue_item(self, item_id, owner, now, lease_seconds):
        with self._write() as conn:
            item = sql.fetch(conn, "alarm_queue", item_id)
            if item is None or item.get("status") != "pending":
                return None
            if item.get("lease_owner") and (item.get("lease_expires_at") or 0) > now:
                return None
            item = complete_queue_item(
                dict(item, lease_owner=owner, lease_expires_at=now + lease_seconds)
            )
            _rewrite(conn, "alarm_queue", sql.QUEUE_COLUMNS, item)
        return item

    def update_queue_item(self, item_id, changes, *, if_lease_owner=None, if_status=None):
        changes = check_queue_changes(changes)
        with self._write() as conn:
            item = sql.fetch(conn, "alarm_queue", item_id)
            if item is None:
                raise NotFound("no queue item %s" % item_id)
            if if_lease_owner is not None and item.get("lease_owner") != if_lease_owner:
                return False
            if if_status is not None and item.get("status") != if_status:
                return False
            _rewrite(
                conn, "alarm_queue", sql.QUEUE_COLUMNS, complete_queue_item(dict(item, **changes))
            )
        return True

    def list_queue(self, policy=None, status=None, limit=100):
        where, params = [], []
        statuses = status_list(status)
        if statuses is not None:
            where.append(sql.in_("status", statuses))
            params += statuses
        if policy is not None:
            where.append("policy = ?")
            params.append(policy)
        query = "SELECT doc FROM alarm_queue"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at, id LIMIT %d" % int(limit)
        with self._read() as conn:
            return [complete_queue_item(json.loads(d)) for (d,) in conn.execute(query, params)]

    def count_queue(self, status="pending"):
        with self._read() as conn:
            return dict(
                conn.execute(
                    "SELECT policy, COUNT(*) FROM alarm_queue WHERE status = ? GROUP BY policy",
                    (status,),
                )
            )
