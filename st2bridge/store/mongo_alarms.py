"""MongoStore's part for alarms (schema version 7): events, the alarm state
documents and the start queue. Each write is one single-document atomic
operation: a compare-and-set is an update filtered on the version, a claim a
find_one_and_update filtered on the lease. Payloads (an event's body and
alerts, a state document, a queue item's start) are JSON text, as the
executions' payloads are (keys with dots or a leading "$")."""

import json

import pymongo
from pymongo import errors as mongo_errors

from st2bridge.errors import Conflict, NotFound
from st2bridge.store.alarm_records import (
    check_event_changes,
    check_queue_changes,
    complete_event,
    complete_queue_item,
    prepare_event,
    prepare_queue_item,
)
from st2bridge.store.mongo_platform import _translated
from st2bridge.store.records import status_list

_AFTER = pymongo.ReturnDocument.AFTER
_EVENT_PAYLOAD = ("payload", "alerts")
_QUEUE_PAYLOAD = ("start",)


def _encode(record, payload):
    doc = {}
    for key, value in record.items():
        if key == "id":
            doc["_id"] = value
        elif key in payload and value is not None:
            doc[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            doc[key] = value
    return doc


def _decode(doc, payload):
    record = {k: v for k, v in doc.items() if k != "_id"}
    record["id"] = doc["_id"]
    for key in payload:
        if isinstance(record.get(key), str):
            record[key] = json.loads(record[key])
    return record


def _event(doc):
    return complete_event(_decode(doc, _EVENT_PAYLOAD))


def _item(doc):
    return complete_queue_item(_decode(doc, _QUEUE_PAYLOAD))


def _free(now):
    return [{"lease_owner": None}, {"lease_expires_at": None}, {"lease_expires_at": {"$lte": now}}]


class MongoAlarmStore:
    """Mixed into MongoStore (uses its database and _errors)."""

    # -- events -----------------------------------------------------------------

    @_translated
    def add_event(self, record):
        record = prepare_event(record)
        try:
            self._db["events"].insert_one(_encode(record, _EVENT_PAYLOAD))
        except mongo_errors.DuplicateKeyError as exc:
            raise Conflict("event %s exists already" % record["id"]) from exc
        return record

    @_translated
    def update_event(self, event_id, changes, *, if_lease_owner=None):
        changes = check_event_changes(changes)
        query = {"_id": event_id}
        if if_lease_owner is not None:
            query["lease_owner"] = if_lease_owner
        events = self._db["events"]
        if changes:
            matched = events.update_one(query, {"$set": _encode(changes, _EVENT_PAYLOAD)})
            matched = matched.matched_count
        else:
            matched = events.count_documents(query, limit=1)
        if matched:
            return True
        if events.find_one({"_id": event_id}, {"_id": 1}) is None:
            raise NotFound("no event %s" % event_id)
        return False

    @_translated
    def get_event(self, event_id):
        doc = self._db["events"].find_one({"_id": event_id})
        if doc is None:
            raise NotFound("no event %s" % event_id)
        return _event(doc)

    @_translated
    def list_events(self, source=None, outcome=None, since=None, limit=50, before=None):
        query = {}
        for field, value in (("source", source), ("outcome", outcome)):
            values = status_list(value)
            if values is not None:
                query[field] = {"$in": values}
        if since is not None:
            query["received_at"] = {"$gte": since}
        if before is not None:
            query["$or"] = [
                {"received_at": {"$lt": before[0]}},
                {"received_at": before[0], "_id": {"$lt": before[1]}},
            ]
        cursor = (
            self._db["events"]
            .find(query)
            .sort([("received_at", -1), ("_id", -1)])
            .limit(int(limit))
        )
        return [_event(d) for d in cursor]

    @_translated
    def claim_events(self, owner, now, lease_seconds, limit):
        claimed = []
        events = self._db["events"]
        stalled = {
            "status": "received",
            "$or": [{"lease_expires_at": None}, {"lease_expires_at": {"$lte": now}}],
        }
        for doc in events.find(stalled, {"_id": 1}).sort("received_at", 1).limit(int(limit)):
            got = events.find_one_and_update(
                dict(stalled, _id=doc["_id"]),
                {"$set": {"lease_owner": owner, "lease_expires_at": now + lease_seconds}},
                return_document=_AFTER,
            )
            if got is not None:
                claimed.append(_event(got))
        return claimed

    @_translated
    def prune_events(self, before):
        result = self._db["events"].delete_many(
            {"received_at": {"$lt": before}, "status": "processed"}
        )
        return result.deleted_count

    # -- alarm state (compare-and-set documents) ----------------------------------

    @_translated
    def get_state(self, kind, key):
        doc = self._db["alarm_state"].find_one({"_id": "%s:%s" % (kind, key)})
        return (json.loads(doc["doc"]), doc["version"]) if doc else (None, 0)

    @_translated
    def put_state(self, kind, key, doc, version, now):
        states = self._db["alarm_state"]
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        ident = "%s:%s" % (kind, key)
        if not version:
            try:
                states.insert_one(
                    {"_id": ident, "kind": kind, "version": 1, "updated_at": now, "doc": text}
                )
            except mongo_errors.DuplicateKeyError:
                return False
            return True
        return bool(
            states.update_one(
                {"_id": ident, "version": int(version)},
                {"$set": {"doc": text, "updated_at": now}, "$inc": {"version": 1}},
            ).matched_count
        )

    @_translated
    def prune_state(self, kind, before):
        result = self._db["alarm_state"].delete_many({"kind": kind, "updated_at": {"$lt": before}})
        return result.deleted_count

    @_translated
    def execution_summaries(self, ids=(), idempotency_keys=()):
        clauses = []
        if ids:
            clauses.append({"_id": {"$in": list(ids)}})
        if idempotency_keys:
            clauses.append({"idempotency_key": {"$in": list(idempotency_keys)}})
        if not clauses:
            return []
        fields = {"status": 1, "ended_at": 1, "idempotency_key": 1}
        return [
            {
                "id": d["_id"],
                "status": d.get("status"),
                "ended_at": d.get("ended_at"),
                "idempotency_key": d.get("idempotency_key"),
            }
            for d in self._executions.find({"$or": clauses}, fields)
        ]

    # -- the start queue -------------------------------------------------------------

    @_translated
    def enqueue(self, item):
        item = prepare_queue_item(item)
        doc = _encode(item, _QUEUE_PAYLOAD)
        result = self._db["alarm_queue"].update_one(
            {"_id": item["id"]}, {"$setOnInsert": doc}, upsert=True
        )
        return result.upserted_id is not None

    @_translated
    def get_queue_item(self, item_id):
        doc = self._db["alarm_queue"].find_one({"_id": item_id})
        if doc is None:
            raise NotFound("no queue item %s" % item_id)
        return _item(doc)

    @_translated
    def claim_queue_item(self, item_id, owner, now, lease_seconds):
        doc = self._db["alarm_queue"].find_one_and_update(
            {"_id": item_id, "status": "pending", "$or": _free(now)},
            {"$set": {"lease_owner": owner, "lease_expires_at": now + lease_seconds}},
            return_document=_AFTER,
        )
        return _item(doc) if doc else None

    @_translated
    def update_queue_item(self, item_id, changes, *, if_lease_owner=None, if_status=None):
        changes = check_queue_changes(changes)
        query = {"_id": item_id}
        if if_lease_owner is not None:
            query["lease_owner"] = if_lease_owner
        if if_status is not None:
            query["status"] = if_status
        queue = self._db["alarm_queue"]
        if changes:
            matched = queue.update_one(query, {"$set": _encode(changes, _QUEUE_PAYLOAD)})
            matched = matched.matched_count
        else:
            matched = queue.count_documents(query, limit=1)
        if matched:
            return True
        if queue.find_one({"_id": item_id}, {"_id": 1}) is None:
            raise NotFound("no queue item %s" % item_id)
        return False

    @_translated
    def list_queue(self, policy=None, status=None, limit=100):
        query = {}
        statuses = status_list(status)
        if statuses is not None:
            query["status"] = {"$in": statuses}
        if policy is not None:
            query["policy"] = policy
        cursor = (
            self._db["alarm_queue"]
            .find(query)
            .sort([("created_at", 1), ("_id", 1)])
            .limit(int(limit))
        )
        return [_item(d) for d in cursor]

    @_translated
    def count_queue(self, status="pending"):
        groups = self._db["alarm_queue"].aggregate(
            [{"$match": {"status": status}}, {"$group": {"_id": "$policy", "n": {"$sum": 1}}}]
        )
        return {g["_id"]: g["n"] for g in groups}


def create_v7_indexes(db):
    """The indexes of schema version 7 (also db-upgrade's step 7)."""
    db["events"].create_index([("received_at", -1), ("_id", -1)], name="ix_received_at")
    db["events"].create_index([("status", 1), ("lease_expires_at", 1)], name="ix_status")
    db["alarm_state"].create_index([("kind", 1), ("updated_at", 1)], name="ix_kind_updated_at")
    db["alarm_queue"].create_index(
        [("status", 1), ("policy", 1), ("created_at", 1), ("_id", 1)], name="ix_order"
    )
