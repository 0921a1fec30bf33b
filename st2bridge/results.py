"""Turning what the engine reports into changes of an execution record.

Shared by every way a result is learnt (the tracker's poll, a callback, the
CLI's --wait), so all of them write the same record the same way. Every
engine answer is checked (st2bridge.engine.answers) before it changes a record.

Two clocks are kept apart: the engine's timestamps are recorded as the engine
gave them (`engine_created_at`, `engine_updated_at`: UTC strings, one-second
resolution, the engine's clock); `created_at`, `submitted_at` and `ended_at`
are the bridge's own observations (its clock, sub-second).
"""

import calendar
import dataclasses
import logging
import time

from st2bridge import status as st
from st2bridge import taskview
from st2bridge.callbacks import secrets
from st2bridge.engine import answers
from st2bridge.errors import BridgeError, EngineError

LOG = logging.getLogger(__name__)

# What the bridge asks the engine for (`fields=`), so the engine sends no more.
LIGHT_FIELDS = ["id", "state", "state_info", "updated_at"]
FINAL_FIELDS = LIGHT_FIELDS + ["created_at", "output"]
TASK_FIELDS = taskview.TASK_FIELDS


def engine_time(value):
    """Mistral's 'YYYY-MM-DD HH:MM:SS' (UTC) as epoch seconds, or None."""
    if not value:
        return None
    try:
        return float(calendar.timegm(time.strptime(value[:19], "%Y-%m-%d %H:%M:%S")))
    except (ValueError, TypeError):
        return None


def duration(record, now=None):
    """Seconds from created_at to ended_at (to `now` while it runs), both on
    the bridge's own clock; None when unknown or negative (a record written
    before 0.2 took its end from the engine's clock): never a false figure."""
    start, end = record.get("created_at"), record.get("ended_at")
    if end is None and not st.is_terminal(record.get("status")):
        end = now
    if start is None or end is None or end < start:
        return None
    return end - start


def get_light(engine, execution_id):
    """The light query of one execution, checked."""
    answer = engine.get_execution(execution_id, fields=LIGHT_FIELDS)
    return answers.execution(answer, execution_id, LIGHT_FIELDS)


def _engine_times(execution):
    changes = {"engine_updated_at": execution.get("updated_at")}
    if execution.get("created_at"):
        changes["engine_created_at"] = execution["created_at"]
    return changes


def progress_changes(execution, tasks, now):
    """Changes for an execution that is still going (`tasks`: rows, or None
    to leave the record's task view alone)."""
    changes = dict(
        _engine_times(execution),
        engine_state=execution.get("state"),
        status=st.from_engine(execution.get("state")),
        updated_at=now,
    )
    if tasks is not None:
        changes["tasks"] = tasks
    return changes


def submitted_changes(execution, now):
    """The engine accepted the submit: its answer, and when the bridge saw that.
    An answer without a valid state changes only submitted_at: the record
    stays `requested` and the tracker reads the state from the engine."""
    try:
        answers.execution(execution, execution.get("id"), ["state", "updated_at"])
    except EngineError as exc:
        LOG.warning("%s; the tracker reads its state from the engine", exc)
        return {"submitted_at": now}
    return dict(progress_changes(execution, None, now), submitted_at=now)


def terminal_changes(execution, tasks, now, finished_by):
    """Changes that end a record: final status, output, error (and tasks,
    unless `tasks` is None: then the record keeps the ones it has).
    `ended_at` is when the bridge learnt the end (its own clock)."""
    state = execution.get("state")
    status = st.from_engine(state)
    failed = status in (st.FAILED, st.CANCELED)
    changes = dict(
        _engine_times(execution),
        status=status,
        engine_state=state,
        # The callback secret stays out of the record (a workflow may return execution()).
        output=secrets.mask(
            execution.get("output") if isinstance(execution.get("output"), dict) else {}
        ),
        error=secrets.mask(execution.get("state_info") or None) if failed else None,
        ended_at=now,
        updated_at=now,
        finished_by=finished_by,
        lease_owner=None,
        lease_expires_at=None,
        stuck=None,  # an ended execution is not stuck (st2bridge/tracker/stuck.py)
    )
    if tasks is not None:
        changes["tasks"] = tasks
    return changes


@dataclasses.dataclass
class Finish:
    """What finish() did. True when this call wrote the terminal record."""

    written: bool
    ended: bool = True  # False: the engine says the execution has not ended
    open_tasks: int = 0  # tasks still going in the engine after the end
    status: str = None
    read_seconds: float = 0.0  # spent reading the engine (the rest of the call: the write)

    def __bool__(self):
        return self.written


def finish(engine, store, record, clock, finished_by, concurrently=None, tasks_after=False):
    """Fetch the final output and tasks and write the terminal record once.

    `concurrently(f, g)` runs the two reads at the same time (the daemon's
    green threads); without it they run one after the other.
    `tasks_after`: the record's task view is current already (kept up by task
    callbacks), so write the terminal record as soon as the output is known;
    the caller then calls refresh_tasks().
    Returns a Finish (true if this call wrote the record). Engine errors,
    malformed answers included, propagate: the record stays active for a
    next attempt. An engine that says the execution is still going gives
    Finish(written=False, ended=False) and changes nothing.
    """
    root = record["engine_execution_id"]
    began = time.monotonic()

    def get_execution():
        answer = engine.get_execution(root, fields=FINAL_FIELDS)
        return answers.execution(answer, root, FINAL_FIELDS)

    def get_tree():
        return taskview.read_tree(engine, root)

    if tasks_after:
        execution, tree = get_execution(), None
    elif concurrently:
        execution, tree = concurrently(get_execution, get_tree)
    else:
        execution, tree = get_execution(), get_tree()
    read_seconds = time.monotonic() - began
    if execution["state"] not in st.ENGINE_TERMINAL:
        return Finish(False, ended=False)
    status = st.from_engine(execution["state"])
    with taskview.lock(record["id"]):
        tasks = None
        if tree is not None:
            current = store.get_execution(record["id"])
            tasks = taskview.merge(current.get("tasks"), tree, rereader(engine))
        changes = terminal_changes(execution, tasks, clock(), finished_by)
        written = store.update_execution(record["id"], changes, if_active=True)
    return Finish(
        written, open_tasks=taskview.open_count(tasks), status=status, read_seconds=read_seconds
    )


def refresh_tasks(engine, store, record, previous=None):
    """Read the task view from the engine and merge it into the record
    (active or not: task rows may still change after the end). Returns the
    number of tasks still going, or None when the engine could not be read
    (the record keeps what it has)."""
    root = record["engine_execution_id"]
    try:
        tree = taskview.read_tree(engine, root, previous)
    except BridgeError as exc:
        LOG.warning(
            "the task view of execution %s was not refreshed from the engine (%s): "
            "it keeps what callbacks and earlier reads reported",
            record["id"],
            exc,
        )
        return None
    return write_tasks(engine, store, record["id"], tree)


def write_tasks(engine, store, execution_id, fresh, changes=None, **conditions):
    """Merge freshly read rows into the record's task view and write it, with
    `changes`, under `conditions` (update_execution's; default: whatever
    the status). Returns the number of tasks still going, or None when the
    conditions did not hold."""
    conditions.setdefault("if_active", False)
    with taskview.lock(execution_id):
        current = store.get_execution(execution_id)
        merged = taskview.merge(current.get("tasks"), fresh, rereader(engine))
        update = dict(changes or {})
        if merged != current.get("tasks"):
            update["tasks"] = merged
        if update and not store.update_execution(execution_id, update, **conditions):
            return None
    return taskview.open_count(merged)


def rereader(engine):
    """reread(task_id) -> the engine's current row of one task, or None."""

    def reread(task_id):
        try:
            return taskview.row(answers.task(engine.get_task(task_id), task_id))
        except EngineError as exc:
            LOG.warning("could not re-read task %s to order its events: %s", task_id, exc)
            return None

    return reread
