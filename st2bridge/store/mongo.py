"""MongoStore: the Store in a MongoDB database (pymongo 4.x; mongomock in tests).

Collections: `executions` (_id = execution id), `services` (_id = service
id) and `meta` ({_id: "schema_version", value}). Every conditional write is
one filtered find_one_and_update/update_one, which MongoDB applies
atomically to the document, so the condition and the write cannot be split
by another process.

A claim is several writes, and a write's outcome is unknown when the
connection fails (the server may have applied it before the answer was
lost): claim_due remembers the lease expiry of a claim that failed, and the
owner's next claim_due or renew_leases first releases the leases with exactly
that expiry: they were never handed out, and the tracker's heartbeat would
otherwise renew them for as long as it lives, so nothing would check them.

The payload fields (an execution's input, output and tasks, a service's
info) are stored as JSON text: workflow data often has keys with dots or a
leading "$" (hostnames, JSON schema) and integers beyond 64 bits, which BSON
refuses or mangles; as text they round-trip exactly, like in SqliteStore.
The indexed fields stay native so that queries can use them.
"""

import contextlib
import json
import re
import urllib.parse
import uuid

import pymongo
from pymongo import errors as mongo_errors

from st2bridge.errors import (
    ConfigError,
    Conflict,
    NotFound,
    StoreError,
    StoreUnavailable,
    StoreVersionMismatch,
)
from st2bridge.store.base import Store
from st2bridge.store.mongo_alarms import MongoAlarmStore, create_v7_indexes
from st2bridge.store.mongo_platform import MongoPlatformStore, _translated, create_v6_indexes
from st2bridge.store.records import (
    TERMINAL,
    change_entry,
    complete_execution,
    complete_service,
    created_event,
    logged_events,
    prepare_changes,
    prepare_definition,
    prepare_execution,
    prepare_service,
    status_list,
    version_mismatch_message,
)
from st2bridge.text import one_line

# Workflow data: keys may hold dots or a leading "$" (see the module docstring).
_EXECUTION_PAYLOAD = ("input", "output", "tasks", "env", "labels", "notify", "sinks")
_SERVICE_PAYLOAD = ("info",)
_COLLECTIONS = {
    "executions",
    "services",
    "meta",
    "definitions",
    "changes",
    "api_keys",
    "notifications",
    "events",
    "alarm_state",
    "alarm_queue",
}

_AFTER = pymongo.ReturnDocument.AFTER


def _encode(fields, payload):
    """A MongoDB document (or $set body) from record fields."""
    doc = {}
    for key, value in fields.items():
        if key == "id":
            doc["_id"] = value
        elif key in payload and value is not None:
            doc[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            doc[key] = value
    return doc


def _decode(doc, payload):
    # Fields starting with "_" are the backend's own (_changes, _label_pairs).
    fields = {key: value for key, value in doc.items() if not key.startswith("_")}
    fields["id"] = doc["_id"]
    for key in payload:
        if isinstance(fields.get(key), str):
            fields[key] = json.loads(fields[key])
    return fields


def _conditions(execution_id, if_active, if_lease_owner):
    """The filter of a conditional update (see Store.update_execution)."""
    query = {"_id": execution_id}
    if if_active:
        query["status"] = {"$nin": list(TERMINAL)}
    if if_lease_owner is not None:
        query["lease_owner"] = if_lease_owner
    return query


def create_idempotency_index(executions):
    """Unique and sparse: a record without a key does not store the field
    (create_execution), so any number of them fit."""
    executions.create_index("idempotency_key", name="ix_idempotency_key", unique=True, sparse=True)


def _execution(doc):
    return complete_execution(_decode(doc, _EXECUTION_PAYLOAD))


def _label_pairs(labels):
    """Labels as "key=value" strings: queryable whatever the keys hold (dots)."""
    return sorted("%s=%s" % (k, v) for k, v in (labels or {}).items())


def _execution_set(changes):
    update = _encode(changes, _EXECUTION_PAYLOAD)
    if update.get("idempotency_key", "") is None:
        del update["idempotency_key"]  # never stored as null: the unique index is sparse
    if "labels" in changes:
        update["_label_pairs"] = _label_pairs(changes["labels"])
    return update


def _pending(execution_id, event, status, task=None):
    """A change-log entry as kept in the document until it is numbered."""
    entry = change_entry(execution_id, event, status, task=task)
    entry["event_id"] = uuid.uuid4().hex
    return entry


def _short(exc):
    # Server selection errors carry the whole topology description.
    return one_line(exc, first_line=True, limit=200)


def _lease_ready_at(next_poll_at, lease_owner, lease_expires_at):
    """When a claim could take this record: a valid lease defers it, for its
    holder too (claim_due never hands out a record under a valid lease)."""
    if lease_owner is not None and lease_expires_at is not None:
        return max(next_poll_at, lease_expires_at)
    return next_poll_at


def _earliest_due(rows):
    """next_due_at from (next_poll_at, lease_owner, lease_expires_at) rows in
    ascending next_poll_at order. Stops at the first row that cannot improve
    the answer, so the cost is the number of overdue rows under a valid lease
    plus one, not the number of tracked records."""
    best = None
    for next_poll_at, lease_owner, lease_expires_at in rows:
        if best is not None and next_poll_at >= best:
            break
        ready = _lease_ready_at(next_poll_at, lease_owner, lease_expires_at)
        best = ready if best is None else min(best, ready)
    return best


class MongoStore(MongoAlarmStore, MongoPlatformStore, Store):
    """The Store in a MongoDB database (see the module docstring; the change
    log, API keys and notifications are in mongo_platform.py)."""

    _execution_record = staticmethod(lambda doc: _execution(doc))

    def __init__(self, url=None, *, client=None, database="st2bridge", connect_timeout=5.0):
        self.database = database
        self._where = "%s/%s" % (self._hosts(url) if url else "MongoDB", database)
        self._owns_client = client is None
        if client is None:
            if not url:
                raise ConfigError("MongoStore needs a mongodb:// URL or a client")
            timeout_ms = int(connect_timeout * 1000)
            try:
                client = pymongo.MongoClient(
                    url,
                    serverSelectionTimeoutMS=timeout_ms,
                    connectTimeoutMS=timeout_ms,
                    appname="st2bridge",
                )
            except mongo_errors.ConfigurationError as exc:
                # mongodb+srv resolves DNS here: a lookup failure may pass.
                if "DNS" in str(exc) or "resolution" in str(exc):
                    raise StoreUnavailable(
                        "MongoDB store %s: %s" % (self._where, _short(exc))
                    ) from exc
                raise ConfigError("invalid MongoDB store URL: %s" % _short(exc)) from exc
            except ValueError as exc:  # pymongo's URI parser, e.g. a bad port
                raise ConfigError("invalid MongoDB store URL: %s" % _short(exc)) from exc
        self._client = client
        # owner -> lease expiries of its claims that failed (see the module docstring)
        self._unsettled = {}
        db = client[database]
        self._db = db
        self._executions = db["executions"]
        self._services = db["services"]
        self._meta = db["meta"]
        self._definitions = db["definitions"]
        self._changes = db["changes"]
        self._api_keys = db["api_keys"]
        self._notifications = db["notifications"]
        try:
            with self._errors():
                self._setup(db)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _hosts(url):
        # Only the host list: the rest of the URL may hold credentials.
        netloc = urllib.parse.urlsplit(url).netloc
        return netloc.rsplit("@", 1)[-1] or "MongoDB"

    # -- plumbing -----------------------------------------------------------

    def _setup(self, db):
        version = self._recorded_version()
        if version is None:
            foreign = {
                name for name in db.list_collection_names() if not name.startswith("system.")
            } - _COLLECTIONS
            if foreign:
                raise StoreVersionMismatch(
                    "MongoDB database %s holds other collections (%s) but no st2bridge "
                    "schema version; use another database name in the store URL"
                    % (self._where, ", ".join(sorted(foreign)[:3]))
                )
            try:
                self._meta.update_one(
                    {"_id": "schema_version"},
                    {"$setOnInsert": {"value": self.SCHEMA_VERSION}},
                    upsert=True,
                )
            except mongo_errors.DuplicateKeyError:
                pass  # a concurrent first open inserted it
            version = self._recorded_version()
        if version != self.SCHEMA_VERSION:
            raise StoreVersionMismatch(
                version_mismatch_message(self._where, version, self.SCHEMA_VERSION)
            )
        # create_index is idempotent; done on every open so that a store
        # created by an older build gains any index added since.
        ex = self._executions
        ex.create_index("status", name="ix_status")
        ex.create_index("created_at", name="ix_created_at")
        ex.create_index("workflow_name", name="ix_workflow_name")
        ex.create_index([("tracked", 1), ("next_poll_at", 1)], name="ix_tracked_next_poll_at")
        ex.create_index("lease_owner", name="ix_lease_owner")
        # Partial, so that any number of records may have no engine id yet.
        ex.create_index(
            "engine_execution_id",
            name="ix_engine_execution_id",
            unique=True,
            partialFilterExpression={"engine_execution_id": {"$type": "string"}},
        )
        create_idempotency_index(ex)
        self._services.create_index([("name", 1), ("host", 1)], name="ix_name_host")
        create_v6_indexes(self._db)
        create_v7_indexes(self._db)

    def _recorded_version(self):
        doc = self._meta.find_one({"_id": "schema_version"})
        return None if doc is None else doc.get("value")

    @contextlib.contextmanager
    def _errors(self):
        if self._client is None:
            raise StoreUnavailable("MongoDB store %s is closed" % self._where)
        try:
            yield
        except mongo_errors.DuplicateKeyError as exc:
            raise Conflict(
                "MongoDB store %s: duplicate key: %s" % (self._where, _short(exc))
            ) from exc
        except (
            mongo_errors.ConnectionFailure,
            mongo_errors.ExecutionTimeout,
            mongo_errors.WTimeoutError,
        ) as exc:
            # ConnectionFailure covers AutoReconnect, ServerSelectionTimeoutError
            # and NotPrimaryError: all worth a retry.
            raise StoreUnavailable(
                "MongoDB store %s is unavailable: %s" % (self._where, _short(exc))
            ) from exc
        except mongo_errors.PyMongoError as exc:
            raise StoreError("MongoDB store %s: %s" % (self._where, _short(exc))) from exc

    @staticmethod
    def _status_filter(query, status):
        statuses = status_list(status)
        if statuses is not None:
            query["status"] = {"$in": statuses}
        return query

    # -- executions ---------------------------------------------------------

    @_translated
    def create_execution(self, record):
        record = prepare_execution(record)
        doc = _execution_set(record)
        doc["_id"] = doc.pop("id", record["id"])
        created = created_event(record)
        doc["_changes"] = [dict(created, event_id=uuid.uuid4().hex)]
        try:
            self._executions.insert_one(doc)
        except mongo_errors.DuplicateKeyError as exc:
            if self._executions.find_one({"_id": record["id"]}, {"_id": 1}) is not None:
                raise Conflict("execution %s exists already" % record["id"]) from exc
            key = record["idempotency_key"]
            holder = key and self._executions.find_one({"idempotency_key": key}, {"_id": 1})
            if holder:
                raise Conflict(
                    "idempotency key %r belongs to execution %s already" % (key, holder["_id"])
                ) from exc
            raise Conflict(
                "an execution with engine execution id %s exists already"
                % record["engine_execution_id"]
            ) from exc
        self._number(record["id"])
        return record

    @_translated
    def get_execution_by_idempotency_key(self, key):
        doc = self._executions.find_one({"idempotency_key": key})
        if doc is None:
            raise NotFound("no execution with idempotency key %r" % key)
        return _execution(doc)

    @_translated
    def get_execution(self, execution_id):
        doc = self._executions.find_one({"_id": execution_id})
        if doc is None:
            raise NotFound("no execution %s" % execution_id)
        return _execution(doc)

    @_translated
    def find_ids(self, prefix, limit=2):
        pattern = {"$regex": "^" + re.escape(prefix)}
        cursor = self._executions.find(
            {"$or": [{"_id": pattern}, {"engine_execution_id": pattern}]},
            {"_id": 1, "engine_execution_id": 1},
        ).limit(int(limit))
        return [(doc["_id"], doc.get("engine_execution_id")) for doc in cursor]

    @_translated
    def list_executions(
        self, status=None, workflow_name=None, since=None, limit=50, labels=None, before=None
    ):
        if limit is not None and limit <= 0:
            return []  # MongoDB reads limit(0) as "no limit"
        query = self._status_filter({}, status)
        if workflow_name is not None:
            query["workflow_name"] = workflow_name
        if since is not None:
            query["created_at"] = {"$gte": since}
        if labels:
            query["_label_pairs"] = {"$all": _label_pairs(labels)}
        if before is not None:
            query["$or"] = [
                {"created_at": {"$lt": before[0]}},
                {"created_at": before[0], "_id": {"$lt": before[1]}},
            ]
        cursor = self._executions.find(query).sort([("created_at", -1), ("_id", -1)])
        if limit is not None:
            cursor = cursor.limit(int(limit))
        return [_execution(doc) for doc in cursor]

    @_translated
    def update_execution(self, execution_id, changes, *, if_active=True, if_lease_owner=None):
        changes = prepare_changes(changes)
        query = _conditions(execution_id, if_active, if_lease_owner)
        try:
            if not changes:  # "$set: {}" is an error; there is nothing to write
                matched = self._executions.count_documents(query, limit=1)
            elif "status" in changes or "tasks" in changes:
                matched = self._logged_update(execution_id, query, changes)
            else:
                matched = self._executions.update_one(
                    query, {"$set": _execution_set(changes)}
                ).matched_count
        except mongo_errors.DuplicateKeyError as exc:
            raise Conflict(
                "an execution with engine execution id %s exists already"
                % changes.get("engine_execution_id")
            ) from exc
        if matched:
            return True
        if self._executions.find_one({"_id": execution_id}, {"_id": 1}) is None:
            raise NotFound("no execution %s" % execution_id)
        return False

    def _logged_update(self, execution_id, query, changes):
        """A write the change log reports: its entries go into the document
        in the same update (atomic with it), then are numbered (_number)."""
        update = {"$set": _execution_set(changes)}
        status = changes.get("status")
        if status is not None:
            # First as a status change: only matches when the status moves.
            moving = dict(query)
            moving["status"] = dict(query.get("status") or {}, **{"$ne": status})
            entries = [
                _pending(execution_id, event, status)
                for event, _ in logged_events(None, changes)
                if event != "task"
            ]
            done = self._executions.update_one(
                moving, dict(update, **{"$push": {"_changes": {"$each": entries}}})
            ).matched_count
            if done:
                self._number(execution_id)
                return True
        entries = [
            _pending(execution_id, event, status, task)
            for event, task in logged_events(status, changes)
        ]
        if entries:
            update["$push"] = {"_changes": {"$each": entries}}
        matched = self._executions.update_one(query, update).matched_count
        if matched and entries:
            self._number(execution_id)
        return matched

    @_translated
    def update_task(self, execution_id, index, task, changes=None, *, if_active=True):
        # Tasks are stored as JSON text (see _encode), so the list is read and
        # written back; the write is conditional on the text read, so a
        # concurrent change makes it retry instead of being lost.
        changes = prepare_changes(changes or {})
        if "tasks" in changes:
            raise ValueError("update_task sets one task; do not also pass 'tasks'")
        while True:
            doc = self._executions.find_one({"_id": execution_id}, {"tasks": 1, "status": 1})
            if doc is None:
                raise NotFound("no execution %s" % execution_id)
            if if_active and doc.get("status") in TERMINAL:
                return False
            tasks = json.loads(doc["tasks"]) if isinstance(doc.get("tasks"), str) else []
            if index is None:
                tasks.append(task)
            else:
                tasks[index] = task
            query = dict(_conditions(execution_id, if_active, None), tasks=doc.get("tasks"))
            update = _execution_set(dict(changes, tasks=tasks))
            status = changes.get("status", doc.get("status"))
            entries = [
                _pending(execution_id, event, status, its_task)
                for event, its_task in logged_events(doc.get("status"), changes, task)
            ]
            if self._executions.update_one(
                query, {"$set": update, "$push": {"_changes": {"$each": entries}}}
            ).matched_count:
                self._number(execution_id)
                return True

    @_translated
    def update_many(self, updates, *, if_active=True, if_lease_owner=None):
        # One conditional update_one each. (bulk_write would save round trips;
        # mongomock 4.3 cannot run pymongo 4.x's UpdateOne, so the contract
        # suite could not check it.)
        applied = 0
        for execution_id, changes in updates:
            changes = prepare_changes(changes)
            if "status" in changes or "tasks" in changes:
                applied += self._logged_update(
                    execution_id, _conditions(execution_id, if_active, if_lease_owner), changes
                )
            elif changes:
                applied += self._executions.update_one(
                    _conditions(execution_id, if_active, if_lease_owner),
                    {"$set": _execution_set(changes)},
                ).matched_count
        return applied

    @_translated
    def claim_due(self, owner, now, lease_seconds, limit):
        # One find_one_and_update per record: each claim is atomic, so two
        # owners never get the same record. A valid lease excludes its holder
        # too (its poll may still be running); the ids already claimed are
        # excluded as well so a lease_seconds <= 0 cannot loop forever.
        self._settle(owner)
        lease = {"$set": {"lease_owner": owner, "lease_expires_at": now + lease_seconds}}
        claimed = []
        while len(claimed) < limit:
            try:
                doc = self._executions.find_one_and_update(
                    {
                        "tracked": True,
                        "next_poll_at": {"$lte": now},
                        "status": {"$nin": list(TERMINAL)},
                        "$or": [
                            {"lease_owner": None},
                            {"lease_expires_at": None},
                            {"lease_expires_at": {"$lte": now}},
                        ],
                        "_id": {"$nin": [record["id"] for record in claimed]},
                    },
                    lease,
                    sort=[("next_poll_at", 1), ("_id", 1)],
                    return_document=pymongo.ReturnDocument.BEFORE,
                )
            except mongo_errors.PyMongoError:
                # This claim may have been applied, and those before it are not
                # handed out either: released before this owner's next lease write.
                self._unsettled.setdefault(owner, set()).add(now + lease_seconds)
                raise
            if doc is None:
                break
            record = _execution(doc)
            if record["lease_owner"] is not None:  # its lease had lapsed
                self._took_over(1)
            record.update(lease["$set"])
            claimed.append(record)
        return claimed

    def _settle(self, owner):
        """Release the leases that failed claims of `owner` may have taken
        (matched by their exact expiry, which only renew_leases changes, and
        it settles first)."""
        expiries = self._unsettled.get(owner)
        if expiries:
            self._executions.update_many(
                {"lease_owner": owner, "lease_expires_at": {"$in": sorted(expiries)}},
                {"$set": {"lease_owner": None, "lease_expires_at": None}},
            )
            self._unsettled.pop(owner, None)

    @_translated
    def renew_leases(self, owner, expires_at):
        self._settle(owner)
        return self._executions.update_many(
            {"lease_owner": owner}, {"$set": {"lease_expires_at": expires_at}}
        ).modified_count

    @_translated
    def release_leases(self, owner):
        result = self._executions.update_many(
            {"lease_owner": owner}, {"$set": {"lease_owner": None, "lease_expires_at": None}}
        )
        self._unsettled.pop(owner, None)
        return result.modified_count

    @_translated
    def next_due_at(self):
        cursor = (
            self._executions.find(
                {
                    "tracked": True,
                    "next_poll_at": {"$ne": None},
                    "status": {"$nin": list(TERMINAL)},
                },
                {"_id": 0, "next_poll_at": 1, "lease_owner": 1, "lease_expires_at": 1},
            )
            .sort([("next_poll_at", 1)])
            .batch_size(100)
        )
        try:
            return _earliest_due(
                (doc["next_poll_at"], doc.get("lease_owner"), doc.get("lease_expires_at"))
                for doc in cursor
            )
        finally:
            cursor.close()

    @_translated
    def count_executions(self, status=None):
        return self._executions.count_documents(self._status_filter({}, status))

    @_translated
    def count_by_status(self):
        groups = self._executions.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {g["_id"]: g["n"] for g in groups if g["_id"] is not None}

    @_translated
    def list_stuck(self, limit=50):
        if limit is not None and limit <= 0:
            return []
        query = {"status": {"$nin": list(TERMINAL)}, "stuck": {"$ne": None}}
        cursor = self._executions.find(query).sort([("created_at", -1), ("_id", -1)])
        if limit is not None:
            cursor = cursor.limit(int(limit))
        return [_execution(doc) for doc in cursor]

    @_translated
    def count_stuck(self):
        counts = {}
        query = {"status": {"$nin": list(TERMINAL)}, "stuck": {"$ne": None}}
        for doc in self._executions.find(query, {"stuck.signature": 1}):
            signature = (doc.get("stuck") or {}).get("signature")
            counts[signature] = counts.get(signature, 0) + 1
        return counts

    # -- definitions --------------------------------------------------------

    @_translated
    def put_definition(self, definition):
        definition = prepare_definition(definition)
        try:
            self._definitions.insert_one(_encode(definition, ()))
        except mongo_errors.DuplicateKeyError:
            return False  # the same content, kept already
        return True

    @_translated
    def get_definition(self, definition_id):
        doc = self._definitions.find_one({"_id": definition_id})
        if doc is None:
            raise NotFound("no definition %s" % definition_id)
        return prepare_definition(_decode(doc, ()))

    # -- services -----------------------------------------------------------

    @_translated
    def register_service(self, record):
        record = prepare_service(record)
        self._services.replace_one(
            {"_id": record["id"]}, _encode(record, _SERVICE_PAYLOAD), upsert=True
        )
        return record

    @_translated
    def heartbeat_service(self, service_id, now):
        result = self._services.update_one({"_id": service_id}, {"$set": {"heartbeat_at": now}})
        return result.matched_count > 0

    @_translated
    def list_services(self):
        cursor = self._services.find().sort([("name", 1), ("host", 1), ("_id", 1)])
        return [complete_service(_decode(doc, _SERVICE_PAYLOAD)) for doc in cursor]

    @_translated
    def remove_service(self, service_id):
        self._services.delete_one({"_id": service_id})

    # -- housekeeping -------------------------------------------------------

    @_translated
    def schema_version(self):
        return self._recorded_version()

    def close(self):
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.close()  # an injected client belongs to the caller

    def __repr__(self):
        return "MongoStore(%r)" % self._where
