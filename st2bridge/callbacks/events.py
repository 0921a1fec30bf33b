"""What one engine event means for an execution record (no I/O here).

Rules that make callbacks safe to receive twice, late or out of order:
- a terminal record is final: nothing changes it;
- an event older than what is recorded (by the engine's updated_at) never
  moves the record backwards, and a terminal task never becomes running;
- a repeated event is a no-op;
- events of sub-workflows (Mistral's `notify` is inherited) update the
  parent's task view, never the parent's status.
"""

import dataclasses
import json

from st2bridge import results
from st2bridge import status as st

WORKFLOW_EVENTS = {
    "WORKFLOW_LAUNCHED",
    "WORKFLOW_SUCCEEDED",
    "WORKFLOW_FAILED",
    "WORKFLOW_CANCELLED",
    "WORKFLOW_PAUSED",
    "WORKFLOW_RESUMED",
    "WORKFLOW_RERUN",
}
TASK_EVENTS = {
    "TASK_LAUNCHED",
    "TASK_SUCCEEDED",
    "TASK_FAILED",
    "TASK_CANCELLED",
    "TASK_PAUSED",
    "TASK_RESUMED",
    "TASK_RERUN",
    "TASK_SKIPPED",
}


class BadEvent(ValueError):
    """The body is not an engine event, or not one of this execution's."""


@dataclasses.dataclass
class Outcome:
    result: str  # what happened, for the answer and the log
    changes: dict = dataclasses.field(default_factory=dict)
    finish: bool = False  # the workflow ended: fetch output and finish
    task: tuple = None  # (index in the record's tasks or None to append, task view)


def parse(body):
    """The event in a request body. BadEvent with a one-line reason."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent("body is not JSON: %s" % exc) from None
    if not isinstance(event, dict):
        raise BadEvent("body must be a JSON object")
    kind = event.get("event")
    if kind not in WORKFLOW_EVENTS and kind not in TASK_EVENTS:
        raise BadEvent(
            "unknown event %r" % (kind,)
            if isinstance(kind, str)
            else "field 'event' is missing or not a string"
        )
    required = ["id", "state"] + (["workflow_execution_id"] if kind in TASK_EVENTS else [])
    for field in required:
        if not isinstance(event.get(field), str) or not event[field]:
            raise BadEvent("field %r is missing or not a string" % field)
    for field in ("updated_at", "root_execution_id", "state_info", "name"):
        if event.get(field) is not None and not isinstance(event[field], str):
            raise BadEvent("field %r must be a string" % field)
    return event


def apply(record, event):
    """The Outcome of `event` for `record` (changes exclude timestamps)."""
    if st.is_terminal(record["status"]):
        return Outcome("final: the execution is %s already" % record["status"])
    root = record["engine_execution_id"]
    if event["event"] in WORKFLOW_EVENTS:
        if event["id"] == root:
            return _root_event(record, event)
        if event.get("root_execution_id") == root:
            return Outcome("sub-workflow %s is %s" % (event["id"], event["state"]))
        raise BadEvent("event for execution %s, which is not part of this execution" % event["id"])
    return _task_event(record, event, root)


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
    view = results.task_view(event)
    view["workflow_execution_id"] = event["workflow_execution_id"]
    if event["workflow_execution_id"] != root:
        view["workflow_name"] = event.get("workflow_name")
    # `tasks` may be a window of the record's tasks that starts at `tasks_from`
    # (Store.callback_view holds only the event's own task).
    first = record.get("tasks_from") or 0
    for index, known in enumerate(record.get("tasks") or [], first):
        if known.get("id") != event["id"]:
            continue
        if (known.get("state"), known.get("updated_at")) == (view["state"], view["updated_at"]):
            return Outcome("duplicate")
        if _older(view["updated_at"], known.get("updated_at")) or (
            known.get("status") in st.TERMINAL and view["status"] not in st.TERMINAL
        ):
            return Outcome("ignored: older than the recorded task state")
        return Outcome(
            "task %s %s" % (view["name"], view["state"]), task=(index, dict(known, **view))
        )
    return Outcome("task %s %s" % (view["name"], view["state"]), task=(None, view))


def _older(theirs, ours):
    """Engine timestamps compare as strings ('YYYY-MM-DD HH:MM:SS')."""
    return bool(theirs and ours and theirs < ours)
