"""MongoStore's part for the platform's side (st2bridge-api): numbering and
reading the change log, cursors, API keys and notifications, and the indexes
of schema version 6. The change-log entries are written into the execution
documents by the record writes themselves (mongo.py, `_logged_update`)."""

import functools
import time

import pymongo
from pymongo import errors as mongo_errors

from st2bridge.errors import Conflict, NotFound
from st2bridge.store.records import (
    check_notification_changes,
    complete_notification,
    prepare_api_key,
    prepare_notification,
)

_AFTER = pymongo.ReturnDocument.AFTER
# A change-log entry written in a document but not yet numbered is taken over
# by any reader after this long (its writer died between the two steps).
_UNNUMBERED_GRACE = 1.0


def _translated(method):
    """Driver errors become the bridge's (MongoStore._errors); mongo.py uses it too."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._errors():
            return method(self, *args, **kwargs)

    return wrapper


class MongoPlatformStore:
    """Mixed into MongoStore (uses its collections and _errors)."""

    # -- change log -----------------------------------------------------------
    # An entry is written into its execution's document by the write itself
    # (`_changes`), so it is atomic with it; then it is numbered: a counter
    # gives its seq and it is copied to the `changes` collection (a unique
    # event_id makes a second copy impossible), and removed from the document.
    # A writer that dies in between leaves it in the document: any reader takes
    # it over after _UNNUMBERED_GRACE. The seq is taken before the copy is
    # written, so readers see a young gap in seq as "being written" and wait.

    def _number(self, execution_id=None, older_than=None):
        query = {"_changes.0": {"$exists": True}}
        if execution_id is not None:
            query["_id"] = execution_id
        if older_than is not None:
            query["_changes.at"] = {"$lt": older_than}
        for doc in self._executions.find(query, {"_changes": 1, "workflow_name": 1, "status": 1}):
            done = []
            for entry in doc.get("_changes") or []:
                seq = self._meta.find_one_and_update(
                    {"_id": "change_seq"},
                    {"$inc": {"value": 1}},
                    upsert=True,
                    return_document=_AFTER,
                )["value"]
                row = dict(entry, _id=seq, workflow_name=doc.get("workflow_name"))
                if row.get("status") is None:  # a task change: the status it was written under
                    row["status"] = doc.get("status")
                row["written_at"] = time.time()
                try:
                    self._changes.insert_one(row)
                except mongo_errors.DuplicateKeyError:
                    pass  # numbered by another process meanwhile
                done.append(entry["event_id"])
            if done:
                self._executions.update_one(
                    {"_id": doc["_id"]}, {"$pull": {"_changes": {"event_id": {"$in": done}}}}
                )

    @_translated
    def read_changes(self, after, limit=1000):
        self._number(older_than=time.time() - _UNNUMBERED_GRACE)
        out = []
        for row in (
            self._changes.find({"_id": {"$gt": int(after)}}).sort("_id", 1).limit(int(limit))
        ):
            entry = {k: v for k, v in row.items() if k not in ("_id", "event_id")}
            entry["seq"] = row["_id"]
            out.append(entry)
        return out

    @_translated
    def last_change_seq(self):
        row = self._changes.find_one({}, {"_id": 1}, sort=[("_id", -1)])
        return row["_id"] if row else 0

    @_translated
    def prune_changes(self, before, keep_after_seq=None):
        query = {"at": {"$lt": before}}
        if keep_after_seq is not None:
            query["_id"] = {"$lte": int(keep_after_seq)}
        return self._changes.delete_many(query).deleted_count

    @_translated
    def get_cursor(self, name):
        doc = self._meta.find_one({"_id": "cursor:" + name})
        return doc["seq"] if doc else 0

    @_translated
    def advance_cursor(self, name, seq):
        self._meta.update_one({"_id": "cursor:" + name}, {"$max": {"seq": int(seq)}}, upsert=True)

    # -- API keys -------------------------------------------------------------

    @_translated
    def create_api_key(self, record):
        record = prepare_api_key(record)
        old = self._api_keys.find_one({"_id": record["name"]})
        if old is not None and not old.get("revoked_at"):
            raise Conflict("an API key named %s exists already" % record["name"])
        doc = dict(record, _id=record["name"])
        doc.pop("name")
        self._api_keys.replace_one({"_id": record["name"]}, doc, upsert=True)
        return record

    @staticmethod
    def _api_key(doc):
        record = {k: v for k, v in doc.items() if k != "_id"}
        record["name"] = doc["_id"]
        return record

    @_translated
    def api_key_by_hash(self, key_hash):
        doc = self._api_keys.find_one({"key_hash": key_hash, "revoked_at": None})
        return self._api_key(doc) if doc else None

    @_translated
    def list_api_keys(self):
        return [self._api_key(d) for d in self._api_keys.find().sort("_id", 1)]

    @_translated
    def revoke_api_key(self, name, now):
        doc = self._api_keys.find_one_and_update(
            {"_id": name, "revoked_at": None},
            {"$set": {"revoked_at": now}},
            return_document=_AFTER,
        )
        if doc is None:
            raise NotFound("no active API key named %s" % name)
        return self._api_key(doc)

    # -- notifications ----------------------------------------------------------

    @staticmethod
    def _notification(doc):
        record = {k: v for k, v in doc.items() if k != "_id"}
        record["id"] = doc["_id"]
        return complete_notification(record)

    @_translated
    def add_notifications(self, records):
        inserted = []
        for record in (prepare_notification(r) for r in records):
            doc = dict(record, _id=record["id"])
            doc.pop("id")
            result = self._notifications.update_one(
                {"_id": record["id"]}, {"$setOnInsert": doc}, upsert=True
            )
            if result.upserted_id is not None:
                inserted.append(record["id"])
        return inserted

    @_translated
    def claim_notifications(self, owner, now, lease_seconds, limit):
        lease = {"$set": {"lease_owner": owner, "lease_expires_at": now + lease_seconds}}
        free = [
            {"lease_owner": None},
            {"lease_expires_at": None},
            {"lease_expires_at": {"$lte": now}},
        ]
        claimed = []
        candidates = self._notifications.find(
            {"status": "pending", "next_attempt_at": {"$lte": now}, "$or": free}
        ).sort([("next_attempt_at", 1), ("seq", 1)])
        for doc in candidates.limit(max(int(limit) * 4, 16)):
            if len(claimed) >= limit:
                break
            if self._notifications.count_documents(
                {
                    "execution_id": doc["execution_id"],
                    "sink": doc["sink"],
                    "status": "pending",
                    "seq": {"$lt": doc["seq"]},
                },
                limit=1,
            ):
                continue  # an older one of this sink goes first
            got = self._notifications.find_one_and_update(
                {"_id": doc["_id"], "status": "pending", "$or": free},
                lease,
                return_document=_AFTER,
            )
            if got is not None:
                claimed.append(self._notification(got))
        return claimed

    @_translated
    def update_notification(self, notification_id, changes, *, if_lease_owner=None):
        changes = check_notification_changes(changes)
        query = {"_id": notification_id}
        if if_lease_owner is not None:
            query["lease_owner"] = if_lease_owner
        if changes:
            matched = self._notifications.update_one(query, {"$set": changes}).matched_count
        else:
            matched = self._notifications.count_documents(query, limit=1)
        if matched:
            return True
        if self._notifications.find_one({"_id": notification_id}, {"_id": 1}) is None:
            raise NotFound("no notification %s" % notification_id)
        return False

    @_translated
    def get_notification(self, notification_id):
        doc = self._notifications.find_one({"_id": notification_id})
        if doc is None:
            raise NotFound("no notification %s" % notification_id)
        return self._notification(doc)

    @_translated
    def list_notifications(self, status=None, execution_id=None, limit=50):
        if limit <= 0:
            return []
        query = self._status_filter({}, status)
        if execution_id is not None:
            query["execution_id"] = execution_id
        cursor = (
            self._notifications.find(query)
            .sort([("created_at", -1), ("seq", -1), ("_id", -1)])
            .limit(int(limit))
        )
        return [self._notification(d) for d in cursor]

    @_translated
    def count_notifications(self):
        groups = self._notifications.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {g["_id"]: g["n"] for g in groups if g["_id"] is not None}


def create_v6_indexes(db):
    """The indexes of schema version 6 (also db-upgrade's step 6)."""
    db["executions"].create_index("_label_pairs", name="ix_label_pairs")
    db["executions"].create_index("_changes.at", name="ix_unnumbered_changes", sparse=True)
    db["changes"].create_index("event_id", name="ix_event_id", unique=True)
    db["changes"].create_index("at", name="ix_at")
    db["api_keys"].create_index("key_hash", name="ix_key_hash", unique=True)
    n = db["notifications"]
    n.create_index([("status", 1), ("next_attempt_at", 1)], name="ix_due")
    n.create_index([("execution_id", 1), ("sink", 1), ("seq", 1)], name="ix_order")
    n.create_index("created_at", name="ix_created_at")
