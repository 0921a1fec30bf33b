"""Turning what the engine reports into changes of an execution record.

Shared by every way a result is learnt (the tracker's poll, a callback, the
CLI's --wait), so all of them write the same record the same way.
"""

import calendar
import logging
import time

from st2bridge import status as st
from st2bridge.callbacks import secrets
from st2bridge.errors import BridgeError

LOG = logging.getLogger(__name__)

# What the bridge asks the engine for (`fields=`), so the engine sends no more.
LIGHT_FIELDS = ["id", "state", "state_info", "updated_at"]
FINAL_FIELDS = LIGHT_FIELDS + ["output"]
TASK_FIELDS = [
    "id",
    "name",
    "state",
    "state_info",
    "type",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
]


def engine_time(value):
    """Mistral's 'YYYY-MM-DD HH:MM:SS' (UTC) as epoch seconds, or None."""
    if not value:
        return None
    try:
        return float(calendar.timegm(time.strptime(value[:19], "%Y-%m-%d %H:%M:%S")))
    except ValueError:
        return None


def task_view(task):
    """The part of an engine task the record keeps (no result payloads)."""
    view = {key: task.get(key) for key in TASK_FIELDS}
    view["state_info"] = secrets.mask(view["state_info"])
    view["status"] = st.from_engine(task.get("state"))
    return view


def tasks_view(tasks):
    # Stable sort: tasks created in the same second keep the engine's order.
    return sorted((task_view(t) for t in tasks), key=lambda t: t.get("created_at") or "")


def progress_changes(execution, tasks, now):
    """Changes for an execution that is still going (tasks may be None)."""
    changes = {
        "engine_state": execution.get("state"),
        "engine_updated_at": execution.get("updated_at"),
        "status": st.from_engine(execution.get("state")),
        "updated_at": now,
    }
    if tasks is not None:
        changes["tasks"] = tasks_view(tasks)
    return changes


def terminal_changes(execution, tasks, now, finished_by):
    """Changes that end a record: final status, output, error (and tasks,
    unless `tasks` is None: then the record keeps the ones it has)."""
    state = execution.get("state")
    status = st.from_engine(state)
    failed = status in (st.FAILED, st.CANCELED)
    changes = {
        "status": status,
        "engine_state": state,
        "engine_updated_at": execution.get("updated_at"),
        # The callback secret stays out of the record (a workflow may return execution()).
        "output": secrets.mask(
            execution.get("output") if isinstance(execution.get("output"), dict) else {}
        ),
        "error": secrets.mask(execution.get("state_info") or None) if failed else None,
        "ended_at": engine_time(execution.get("updated_at")) or now,
        "updated_at": now,
        "finished_by": finished_by,
        "lease_owner": None,
        "lease_expires_at": None,
        "stuck": None,  # an ended execution is not stuck (st2bridge/tracker/stuck.py)
    }
    if tasks is not None:
        changes["tasks"] = tasks_view(tasks)
    return changes


def finish(engine, store, record, clock, finished_by, concurrently=None, tasks_after=False):
    """Fetch the final output and tasks and write the terminal record once.

    `concurrently(f, g)` runs the two engine requests at the same time (the
    daemon's green threads); without it they run one after the other.
    `tasks_after`: the record's task view is current already (kept up by task
    callbacks), so write the terminal record as soon as the output is known;
    the caller then calls refresh_tasks().
    Returns True if this call wrote the record, False if another writer was
    first. Engine errors propagate: the record stays active for a next attempt.
    """
    root = record["engine_execution_id"]
    get_execution = lambda: engine.get_execution(root, fields=FINAL_FIELDS)  # noqa: E731
    get_tasks = lambda: engine.list_tasks(root, fields=TASK_FIELDS)  # noqa: E731
    if tasks_after:
        execution, tasks = get_execution(), None
    elif concurrently:
        execution, tasks = concurrently(get_execution, get_tasks)
    else:
        execution, tasks = get_execution(), get_tasks()
    changes = terminal_changes(execution, tasks, clock(), finished_by)
    if tasks is not None:
        changes["tasks"] += _child_tasks(store, record, root)
    return store.update_execution(record["id"], changes, if_active=True)


def refresh_tasks(engine, store, record):
    """Complete a final record's task view from the engine (after a
    finish(tasks_after=True)); on failure it keeps what callbacks reported."""
    root = record["engine_execution_id"]
    try:
        tasks = tasks_view(engine.list_tasks(root, fields=TASK_FIELDS))
        store.update_execution(
            record["id"], {"tasks": tasks + _child_tasks(store, record, root)}, if_active=False
        )
    except BridgeError as exc:
        LOG.warning(
            "execution %s finished; its task view was not refreshed from the "
            "engine (%s): it shows the tasks its callbacks reported",
            record["id"],
            exc,
        )


def _child_tasks(store, record, root):
    """Tasks of sub-workflows are known only from their callbacks: keep them
    (re-read: callbacks may have added some while the engine answered)."""
    current = store.get_execution(record["id"])
    return [
        t for t in current.get("tasks") or [] if t.get("workflow_execution_id") not in (None, root)
    ]
