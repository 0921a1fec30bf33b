"""The record rules of the alarm tables, shared by the backends (events,
queue items): every field present, unknown fields refused."""

import copy

from st2bridge.store.base import EVENT_FIELDS, QUEUE_FIELDS


def _prepare(record, fields, what, **defaults):
    record = copy.deepcopy(dict(record))
    unknown = set(record) - set(fields)
    if unknown:
        raise ValueError("unknown %s fields: %s" % (what, ", ".join(sorted(unknown))))
    full = dict.fromkeys(fields)
    full.update(defaults)
    full.update(record)
    if not isinstance(full["id"], str) or not full["id"]:
        raise ValueError("a %s needs a string id" % what)
    return full


def prepare_event(record):
    return _prepare(record, EVENT_FIELDS, "event", status="received", alerts=[], attempts=0)


def complete_event(fields):
    full = dict.fromkeys(EVENT_FIELDS)
    full.update(fields)
    return full


def prepare_queue_item(record):
    return _prepare(record, QUEUE_FIELDS, "queue item", status="pending")


def complete_queue_item(fields):
    full = dict.fromkeys(QUEUE_FIELDS)
    full.update(fields)
    return full


def check_changes(changes, fields, what):
    changes = copy.deepcopy(dict(changes))
    unknown = set(changes) - set(fields)
    if unknown or "id" in changes:
        raise ValueError(
            "cannot change %s fields: %s" % (what, ", ".join(sorted(unknown) or ["id"]))
        )
    return changes


def check_event_changes(changes):
    return check_changes(changes, EVENT_FIELDS, "event")


def check_queue_changes(changes):
    return check_changes(changes, QUEUE_FIELDS, "queue item")
