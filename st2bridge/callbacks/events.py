"""What one engine event means for an execution record (no I/O here).

Rules that make callbacks safe to receive twice, late or out of order:
- a terminal record's status, output and error are final; its task rows are
  not: a task still running when the workflow ended reports its end later;
- of two views of one task, the later one wins (taskview.later: the engine's
  updated_at, then, within its one second, final over non-final and ERROR
  over SUCCESS); when even that cannot tell, the handler re-reads the task;
- an event older than the recorded engine updated_at never moves the
  workflow's state backwards;
- a repeated event is a no-op;
- events of sub-workflows (Mistral's `notify` is inherited) update the
  parent's task view, never the parent's status;
- a notification with `"event": null` (Mistral sends one when a task waits:
  wait-before, pause-before) is a state change like any other.
"""

import dataclasses
import json

from st2bridge import status as st
from st2bridge import taskview
from st2bridge.callbacks.webhook import TASK_EVENTS, WORKFLOW_EVENTS
from st2bridge.engine.answers import STATES, TIME
from st2bridge.text import one_line

MAX_ID = 255


class BadEvent(ValueError):
    """The body is not an engine event, or not one of this execution's."""


@dataclasses.dataclass
class Outcome:
    result: str  # what happened, for the answer and the log
    changes: dict = dataclasses.field(default_factory=dict)
    finish: bool = False  # the workflow ended: fetch output and finish
    task: tuple = None  # (index in the record's tasks or None to append, row)
    conflict: bool = False  # `task` is undecided against the recorded row: re-read it
    late: bool = False  # the record is terminal already (only task rows change)


def _no_constants(name):
    raise ValueError("%s is not a JSON number" % name)


def parse(body):
    """The event in a request body, checked. BadEvent with a one-line reason."""
    try:
        event = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except RecursionError:
        raise BadEvent("body is nested too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent("body is not JSON: %s" % one_line(exc, limit=200)) from None
    if not isinstance(event, dict):
        raise BadEvent("body must be a JSON object")
    if "event" not in event:
        raise BadEvent("field 'event' is missing")
    kind = event["event"]
    if kind is not None and not isinstance(kind, str):
        raise BadEvent("field 'event' must be a string or null")
    if kind is not None and kind not in WORKFLOW_EVENTS and kind not in TASK_EVENTS:
        raise BadEvent("unknown event %r" % kind[:60])
    required = ["id", "state"] + (["workflow_execution_id"] if is_task(event) else [])
    for field in required:
        value = event.get(field)
        if not isinstance(value, str) or not value or len(value) > MAX_ID:
            raise BadEvent("field %r is missing or not a string" % field)
    if event["state"] not in STATES:
        raise BadEvent("unknown state %r" % event["state"][:40])
    for field in ("root_execution_id", "task_execution_id", "name", "workflow_name", "type"):
        value = event.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_ID):
            raise BadEvent("field %r must be a short string" % field)
    if event.get("state_info") is not None and not isinstance(event["state_info"], str):
        raise BadEvent("field 'state_info' must be a string")
    for field in ("updated_at", "created_at", "started_at", "finished_at"):
        value = event.get(field)
        if value is not None and not (isinstance(value, str) and TIME.match(value)):
            raise BadEvent("field %r must be a time 'YYYY-MM-DD HH:MM:SS'" % field)
    return event


def is_task(event):
    """Whether an event is a task's: a TASK_ event, or a null event with a
    workflow_execution_id (a task's payload always has one)."""
    kind = event.get("event")
    return kind in TASK_EVENTS or (kind is None and "workflow_execution_id" in event)


def apply(record, event):
    """The Outcome of a parsed `event` for `record` (changes exclude timestamps)."""
    root = record["engine_execution_id"]
    if is_task(event):
        return _task_event(record, event, root)
    if st.is_terminal(record["status"]):
        return Outcome("final: the execution is %s already" % record["status"], late=True)
    if event["id"] == root:
        return _root_event(record, event)
    if event.get("root_execution_id") == root:
        return Outcome("sub-workflow %s is %s" % (event["id"], event["state"]))
    raise BadEvent("event for execution %s, which is not part of this execution" % event["id"])


def _root_event(record, event):
    if event["state"] in st.ENGINE_TERMINAL:
        return Outcome("workflow %s" % event["state"], finish=True)
    seen = (record.get("engine_state"), record.get("engine_updated_at"))
    if (event["state"], event.get("updated_at")) == seen:
        return Outcome("duplicate")
    if _older(event.get("updated_at"), record.get("engine_updated_at")):
        return Outcome("ignored: older than the recorded state")
    return Outcome(
        "workflow %s" % event["state"],
        changes={
            "engine_state": event["state"],
            "engine_updated_at": event.get("updated_at"),
            "status": st.from_engine(event["state"]),
        },
    )


def _task_event(record, event, root):
    view = taskview.row(event)
    late = st.is_terminal(record["status"])
    what = "task %s %s" % (view["name"], view["state"])
    # `tasks` may be a window of the record's tasks that starts at `tasks_from`
    # (Store.callback_view holds only the event's own task).
    first = record.get("tasks_from") or 0
    for index, known in enumerate(record.get("tasks") or [], first):
        if known.get("id") != event["id"]:
            continue
        which = taskview.later(known, view)
        if which == "same":
            return Outcome("duplicate", late=late)
        if which == "known":
            return Outcome("ignored: older than the recorded task state", late=late)
        merged = dict(known, **{key: view[key] for key in taskview.STATE_KEYS})
        if which is None:
            return Outcome(what + " (undecided)", task=(index, merged), conflict=True, late=late)
        return Outcome(what, task=(index, merged), late=late)
    if view["workflow_execution_id"] == root:
        view["label"] = view["name"]
    return Outcome(what, task=(None, view), late=late)


def _older(theirs, ours):
    """Engine timestamps compare as strings ('YYYY-MM-DD HH:MM:SS')."""
    return bool(theirs and ours and theirs < ours)
