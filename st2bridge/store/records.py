"""The record rules every store backend applies the same way (one place for
them): preparing a record before it is written, completing one read back
(a field added later reads as its default), checking changes, and the
change-log entries a write reports."""

import copy
import time

from st2bridge import status as _status
from st2bridge.store.base import (
    API_KEY_FIELDS,
    CREATED,
    DEFINITION_FIELDS,
    END,
    EXECUTION_FIELDS,
    NOTIFICATION_FIELDS,
    STATUS,
    TASK,
    new_execution_record,
)

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


# -- the change log, API keys and notifications ---------------------------------

# The part of a task a change-log entry carries.
CHANGE_TASK_FIELDS = ("id", "name", "status", "state", "workflow_execution_id")


def change_entry(execution_id, event, status, workflow_name=None, task=None, at=None):
    """A change-log entry (without its seq, which the backend assigns)."""
    entry = {
        "at": time.time() if at is None else at,
        "execution_id": execution_id,
        "event": event,
        "status": status,
        "workflow_name": workflow_name,
    }
    if task is not None:
        entry["task"] = {k: task.get(k) for k in CHANGE_TASK_FIELDS if k in task}
    return entry


def status_event(old_status, new_status):
    """The change-log event of a write that sets `new_status` on a record
    that had `old_status`, or None when the status did not change."""
    if new_status is None or new_status == old_status:
        return None
    return END if new_status in _status.TERMINAL else STATUS


def created_event(record):
    entry = change_entry(record["id"], CREATED, record["status"], record.get("workflow_name"))
    # A record's sinks never change: whether one wants every status is told
    # once, so that readers need not read the record for each status change.
    entry["status_sinks"] = any(s.get("every_status") for s in record.get("sinks") or [])
    return entry


def logged_events(old_status, changes, task=None):
    """[(event, task)] a write reports: a status change (`end` when it is
    terminal), and a task change: the one task written (update_task), or a
    `task` entry with no task for a new task list unless the status moved."""
    events = []
    status = status_event(old_status, changes.get("status"))
    if status:
        events.append((status, None))
    if task is not None:
        events.append((TASK, task))
    elif "tasks" in changes and not status:
        events.append((TASK, None))
    return events


def prepare_api_key(record):
    record = dict(record)
    unknown = set(record) - set(API_KEY_FIELDS)
    if unknown:
        raise ValueError("unknown API key fields: %s" % ", ".join(sorted(unknown)))
    if not isinstance(record.get("name"), str) or not record["name"]:
        raise ValueError("an API key needs a name")
    if not isinstance(record.get("key_hash"), str) or not record["key_hash"]:
        raise ValueError("an API key needs its hash")
    full = dict.fromkeys(API_KEY_FIELDS)
    full.update(record, read_only=bool(record.get("read_only")))
    return full


def prepare_notification(record):
    record = copy.deepcopy(dict(record))
    unknown = set(record) - set(NOTIFICATION_FIELDS)
    if unknown:
        raise ValueError("unknown notification fields: %s" % ", ".join(sorted(unknown)))
    full = dict.fromkeys(NOTIFICATION_FIELDS)
    full.update(attempts=0, status="pending")
    full.update(record)
    if not isinstance(full["id"], str) or not full["id"]:
        raise ValueError("a notification needs a string id")
    return full


def complete_notification(fields):
    full = dict.fromkeys(NOTIFICATION_FIELDS)
    full.update(fields)
    return full


def check_notification_changes(changes):
    unknown = set(changes) - set(NOTIFICATION_FIELDS)
    if unknown or "id" in changes:
        raise ValueError("cannot change notification fields: %s" % ", ".join(sorted(unknown)))
    return dict(changes)
