"""Operator control of executions: cancel, pause, resume, and re-running a failed task.

Cascade: Mistral 23 itself cascades cancel, pause and resume to every
sub-workflow that has not finished (mistral/engine/workflow_handler.py:
stop_workflow, pause_workflow and resume_workflow recurse over the task
executions' sub-workflows inside the same RPC call), so one PUT on the root
execution is the whole operation; the bridge adds nothing on top.

Statuses: the bridge writes `canceling`/`pausing`/`resuming` *before* asking
the engine (its answer, or a callback, can come before the request returns),
and leaves the confirmed status (`canceled`/`paused`/`running`) to whoever sees
the engine's state next: a callback, the poller or `execution watch`. All of
them record a state that differs from the recorded `engine_state`, which this
module never touches. When the engine refuses, or leaves the execution in
another state, the previous status is put back.

Re-running a failed task reopens a terminal record (an explicit operator
action: terminal records are otherwise final), before the engine is asked,
so that every callback of the re-run is accepted. It is held away from the
pollers while the request is in flight (a poll in between would see the old
ERROR and close it again) and made due at once when the request is done.
"""

import dataclasses
import logging
import time

from st2bridge import errors
from st2bridge import status as st

LOG = logging.getLogger(__name__)

# A reopened record is not polled before this, unless the request ends first
# (then it is due at once): longer than a re-run request can take.
REOPEN_HOLD = 300.0


@dataclasses.dataclass(frozen=True)
class Action:
    name: str  # cancel, pause, resume
    engine_state: str  # what is PUT
    via: str  # the bridge status while the engine has not confirmed
    done: str  # the bridge status once it has
    allowed: frozenset  # bridge statuses it may start from


ACTIONS = {
    "cancel": Action(
        "cancel",
        "CANCELLED",
        st.CANCELING,
        st.CANCELED,
        frozenset({st.RUNNING, st.PAUSING, st.PAUSED, st.RESUMING, st.CANCELING}),
    ),
    "pause": Action(
        "pause",
        "PAUSED",
        st.PAUSING,
        st.PAUSED,
        frozenset({st.RUNNING, st.PAUSING, st.RESUMING}),
    ),
    "resume": Action(
        "resume",
        "RUNNING",
        st.RESUMING,
        st.RUNNING,
        frozenset({st.PAUSED, st.PAUSING, st.RESUMING}),
    ),
}


@dataclasses.dataclass
class Result:
    id: str
    action: str
    status: str  # the bridge status now
    engine_state: str = None
    changed: bool = True  # False: it was in that state already


def resolve(store, text):
    """The record that `text` names: a bridge id, the engine's execution id,
    or a unique prefix of either (NotFound; InputError when ambiguous)."""
    text = (text or "").strip()
    if not text:
        raise errors.InputError("an execution id is required")
    try:
        return store.get_execution(text)
    except errors.NotFound:
        pass
    matches = dict(store.find_ids(text, limit=10))
    exact = [bridge_id for bridge_id, engine_id in matches.items() if engine_id == text]
    if exact:
        return store.get_execution(exact[0])
    if not matches:
        raise errors.NotFound(
            "no execution %s (neither a bridge nor an engine execution id, nor the start "
            "of one)" % text
        )
    if len(matches) > 1:
        raise errors.InputError(
            "%s is the start of %s execution ids (%s); give more of it"
            % (text, "several" if len(matches) >= 10 else len(matches), ", ".join(sorted(matches)))
        )
    return store.get_execution(next(iter(matches)))


def plan(action, record):
    """True to go ahead, False when there is nothing to do (the record is in
    the target status already); Conflict when the action is not allowed."""
    status = record["status"]
    if status == action.done:
        return False
    if status == st.REQUESTED:
        raise errors.Conflict(
            "execution %s is requested: the engine has not confirmed it yet; "
            "%s it once it runs" % (record["id"], action.name)
        )
    if status not in action.allowed:
        raise errors.Conflict(
            "execution %s is %s; it cannot be %s"
            % (
                record["id"],
                status,
                {"cancel": "canceled", "pause": "paused", "resume": "resumed"}[action.name],
            )
        )
    return True


def confirmed(action, engine_state):
    """Whether the engine's answer to the PUT shows the change took effect."""
    if action.name == "resume":
        return engine_state != "PAUSED"  # running again, or even finished
    return engine_state == action.engine_state


def change_state(engine, store, execution_id, action_name, clock=time.time):
    """Cancel, pause or resume one execution (sub-workflows follow in the engine)."""
    action = ACTIONS[action_name]
    record = store.get_execution(execution_id)
    if action.name == "cancel" and record["status"] == st.TIMEOUT:
        return cancel_timed_out(engine, store, record, clock)
    if not plan(action, record):
        return Result(
            execution_id, action.name, record["status"], record.get("engine_state"), changed=False
        )
    previous = record["status"]
    if not store.update_execution(
        execution_id, {"status": action.via, "updated_at": clock()}, if_active=True
    ):
        now = store.get_execution(execution_id)["status"]
        raise errors.Conflict("execution %s ended meanwhile (%s)" % (execution_id, now))
    engine_id = record["engine_execution_id"]
    try:
        answer = engine.update_execution_state(engine_id, action.engine_state)
    except errors.EngineError as exc:
        _put_back(store, record, previous, clock)
        if isinstance(exc, errors.EngineNotFound):
            raise errors.NotFound(
                "the engine has no execution %s (of bridge execution %s)"
                % (engine_id, execution_id)
            ) from None
        if isinstance(exc, errors.EngineClientError):
            raise errors.Conflict(
                "the engine refused to %s execution %s: %s" % (action.name, execution_id, exc)
            ) from None
        raise
    state = answer.get("state")
    if not confirmed(action, state):
        _put_back(store, record, previous, clock)
        raise errors.Conflict(
            "the engine left execution %s %s; it was not %s"
            % (
                execution_id,
                state,
                {"cancel": "canceled", "pause": "paused", "resume": "resumed"}[action.name],
            )
        )
    LOG.info(
        "asked the engine to %s execution %s (engine execution %s): %s",
        action.name,
        execution_id,
        engine_id,
        state,
    )
    return Result(execution_id, action.name, action.via, state)


def cancel_timed_out(engine, store, record, clock=time.time):
    """`cancel` of a `timeout` record (left running with --on-timeout leave,
    or whose cancel failed): cancel the engine execution; the record stays
    `timeout`, its engine_state shows what the engine did."""
    engine_id = record["engine_execution_id"]
    try:
        answer = engine.update_execution_state(engine_id, "CANCELLED")
    except errors.EngineNotFound:
        raise errors.NotFound(
            "the engine has no execution %s (of bridge execution %s)" % (engine_id, record["id"])
        ) from None
    except errors.EngineClientError as exc:
        raise errors.Conflict(
            "the engine refused to cancel execution %s: %s" % (record["id"], exc)
        ) from None
    state = answer.get("state")
    store.update_execution(
        record["id"], {"engine_state": state, "updated_at": clock()}, if_active=False
    )
    LOG.info(
        "asked the engine to cancel timed-out execution %s (engine execution %s): %s",
        record["id"],
        engine_id,
        state,
    )
    return Result(record["id"], "cancel", st.TIMEOUT, state, changed=state == "CANCELLED")


def time_out(engine, record):
    """A tracked execution is past its timeout_at: unless it was started with
    `--on-timeout leave`, cancel it in the engine (sub-workflows included).
    Returns the reason to record with the `timeout` status. An engine that
    cannot be reached raises (the poller backs off and asks again: the
    record stays active until the engine was asked)."""
    reason = "tracking timed out after %.0f s" % (record["timeout_at"] - record["created_at"])
    if record.get("on_timeout") == "leave":
        return reason + "; the engine execution was left running (--on-timeout leave)"
    try:
        answer = engine.update_execution_state(
            record["engine_execution_id"], "CANCELLED", state_info="st2bridge: " + reason
        )
    except errors.EngineNotFound:
        return reason + "; the engine no longer has the execution"
    except errors.EngineClientError as exc:
        return reason + "; the engine refused to cancel it: %s" % exc
    state = answer.get("state")
    if state == "CANCELLED":
        return reason + "; the engine execution was canceled"
    return reason + "; the engine execution had ended already (%s)" % state


def _put_back(store, record, previous, clock):
    """Undo the transitional status and have a tracker look at the engine
    soon: what the engine did is not known for sure."""
    changes = {"status": previous, "updated_at": clock()}
    if record.get("tracked"):
        changes["next_poll_at"] = clock()
    store.update_execution(record["id"], changes, if_active=True)


# -- re-running a failed task ---------------------------------------------------


@dataclasses.dataclass
class Rerun:
    execution_id: str  # bridge execution
    task_id: str
    task_name: str
    workflow_name: str  # the task's own workflow (a sub-workflow perhaps)
    reopened: bool  # the record was terminal and is running again
    reset: bool


def rerun_task(engine, store, task_id, reset=True, clock=time.time):
    try:
        task = engine.get_task(task_id)
    except errors.EngineNotFound:
        raise errors.NotFound("the engine has no task %s" % task_id) from None
    if task.get("state") != "ERROR":
        raise errors.Conflict(
            "task %s (%s) is %s: only a failed task (ERROR) can be re-run"
            % (task.get("name"), task_id, task.get("state"))
        )
    record, chain = find_owner(engine, store, task)
    now = clock()
    saved = None
    if st.is_terminal(record["status"]):
        saved = {k: record.get(k) for k in REOPEN_FIELDS}
        store.update_execution(record["id"], reopen_changes(record, chain, now), if_active=False)
    try:
        engine.rerun_task(task_id, reset=reset)
    except errors.EngineClientError as exc:
        # Refused: nothing runs again. Put the record back as it was.
        if saved is not None:
            store.update_execution(record["id"], saved, if_active=False)
        raise errors.Conflict(
            "the engine refused to re-run task %s (%s): %s" % (task.get("name"), task_id, exc)
        ) from None
    except errors.EngineError:
        # Unknown outcome: a tracker finds out from the engine at once.
        store.update_execution(
            record["id"], {"tracked": True, "next_poll_at": clock()}, if_active=True
        )
        raise
    store.update_execution(record["id"], {"tracked": True, "next_poll_at": clock()}, if_active=True)
    LOG.info("re-ran task %s (%s) of execution %s", task.get("name"), task_id, record["id"])
    return Rerun(
        record["id"], task_id, task.get("name"), task.get("workflow_name"), saved is not None, reset
    )


REOPEN_FIELDS = (
    "status",
    "output",
    "error",
    "ended_at",
    "finished_by",
    "tracked",
    "next_poll_at",
    "lease_owner",
    "lease_expires_at",
    "poll_failures",
    "not_found_count",
    "synced_at",
    "tasks",
    "updated_at",
)


def reopen_changes(record, chain, now):
    """A terminal record made active again for a re-run. The tasks being re-run
    (the failed one and the sub-workflow tasks above it) are shown running,
    so the callbacks that report their new run are not taken for stale ones.
    engine_state stays what was last seen: every change is then new."""
    tasks = [
        dict(t, state="RUNNING", status=st.RUNNING, state_info=None, finished_at=None)
        if t.get("id") in chain
        else t
        for t in record.get("tasks") or []
    ]
    return {
        "status": st.RUNNING,
        "output": None,
        "error": None,
        "ended_at": None,
        "finished_by": None,
        "tracked": True,
        "next_poll_at": now + REOPEN_HOLD,
        "lease_owner": None,
        "lease_expires_at": None,
        "poll_failures": 0,
        "not_found_count": 0,
        "synced_at": now,
        "tasks": tasks,
        "updated_at": now,
    }


OWNER_FIELDS = ["id", "root_execution_id", "task_execution_id", "params", "description"]


def find_owner(engine, store, task):
    """The bridge record a task belongs to, and the ids of the task and of the
    sub-workflow tasks above it. The root execution's env names the record
    (the runner puts `st2bridge_execution_id` there), and so does its
    description ("st2bridge execution ID"): the env has no bridge key when it
    is a stored environment, and a user's value of that key wins."""
    chain = [task["id"]]
    execution = engine.get_execution(task["workflow_execution_id"], fields=OWNER_FIELDS)
    while execution.get("task_execution_id"):
        chain.append(execution["task_execution_id"])
        parent = engine.get_task(execution["task_execution_id"])
        execution = engine.get_execution(parent["workflow_execution_id"], fields=OWNER_FIELDS)
    env = (
        ((execution.get("params") or {}).get("env") or {})
        if isinstance(execution.get("params"), dict)
        else {}
    )
    description = str(execution.get("description") or "").split()
    candidates = [env.get("st2bridge_execution_id")]
    if description[:2] == ["st2bridge", "execution"] and len(description) > 2:
        candidates.append(description[2])
    candidates = [c for c in candidates if isinstance(c, str) and c]
    if not candidates:
        raise errors.NotFound(
            "task %s belongs to engine execution %s, which this bridge did "
            "not start" % (task["id"], execution["id"])
        )
    for bridge_id in candidates:
        try:
            record = store.get_execution(bridge_id)
        except errors.NotFound:
            continue
        if record["engine_execution_id"] == execution["id"]:
            return record, chain
    raise errors.NotFound(
        "task %s belongs to engine execution %s, not to bridge execution %s"
        % (task["id"], execution["id"], " or ".join(candidates))
    )
