"""Stuck executions: the pure rules (no I/O, every time passed in).

Mistral can leave an execution RUNNING for ever after a lost RPC message, a
killed executor or a broker or database outage. Four signatures are told
apart from the engine's execution report (`GET /v2/executions/{id}/report`:
the whole tree of tasks, action executions with their `last_heartbeat`, and
sub-workflows), all in the engine's own clock:

    lost_action        an action execution RUNNING whose executor is gone: no
                       heartbeat for `heartbeat_timeout` (or never one, for
                       `unstarted_timeout`), or running past its task's timeout
    lost_result        a task RUNNING whose action executions / sub-workflow
                       executions have all ended `result_grace` ago
    lost_continuation  a workflow RUNNING none of whose tasks is running,
                       waiting or delayed (all ended, or created and never
                       started: IDLE) for `continuation_grace`
    no_progress        a running task without a state change for longer than
                       expected: `no_progress_after`, or learnt from earlier
                       successful runs (3 x p99 of its durations)

`screen()` says from the record alone (no engine request) whether an
execution is a suspect worth asking the engine about; `diagnose()` reads a
report and returns a Finding, or None with the engine time at which a rule
could fire next (when to look again).
"""

import dataclasses

from st2bridge.results import engine_time

LOST_ACTION = "lost_action"
LOST_RESULT = "lost_result"
LOST_CONTINUATION = "lost_continuation"
NO_PROGRESS = "no_progress"
SIGNATURES = (LOST_ACTION, LOST_RESULT, LOST_CONTINUATION, NO_PROGRESS)

ENDED = ("SUCCESS", "ERROR", "CANCELLED", "SKIPPED")
# Task states in which the engine is still working on (or waiting for) a task.
BUSY = ("RUNNING", "WAITING", "RUNNING_DELAYED", "DELAYED", "PAUSED")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The thresholds ([stuck] options); seconds."""

    probe_after: float = 30.0
    probe_interval: float = 60.0
    heartbeat_timeout: float = 90.0
    unstarted_timeout: float = 300.0
    result_grace: float = 60.0
    continuation_grace: float = 60.0
    no_progress_after: float = 0.0  # 0: no configured bound
    async_actions: tuple = ("std.async_noop", "std.mistral_http")


@dataclasses.dataclass
class Finding:
    signature: str
    since: float  # engine time (epoch seconds) of the onset
    reason: str
    evidence: dict


class Bounds:
    """What diagnose() may know beyond the report: a task's configured
    timeout and its learnt no-progress bound. The default knows neither."""

    def task_timeout(self, workflow_name, task_name):
        return None

    def learnt(self, workflow_name, task_name):
        return None


# -- the cheap screen (record only) ---------------------------------------------


def last_move(record):
    """Bridge time of the last change the bridge saw (written progress, a
    callback, or the record's creation)."""
    return max(
        t
        for t in (record.get("updated_at"), record.get("last_event_at"), record["created_at"])
        if t
    )


def watchable(record):
    """Only an execution the engine has RUNNING can be stuck: a paused one
    waits for a person, one being paused/resumed/canceled is in motion."""
    return record.get("status") == "running" and record.get("engine_state") == "RUNNING"


def screen(record, now, settings):
    """True when the record says the engine should be asked: quiet for
    `probe_after` and its next look is due; or flagged and moved since."""
    if not watchable(record):
        return False
    stuck = record.get("stuck")
    if stuck and last_move(record) > stuck.get("detected_at", 0):
        return True  # something moved since it was flagged: look again now
    if not stuck and now - last_move(record) < settings.probe_after:
        return False
    probe_at = record.get("stuck_probe_at")
    return probe_at is None or now >= probe_at


# -- the rules (engine report) ----------------------------------------------------


def diagnose(report, engine_now, settings, bounds=None):
    """(Finding or None, engine time when a rule could fire next or None).

    The most specific finding wins: a lost action over a lost result over a
    lost continuation over no progress."""
    bounds = bounds or Bounds()
    root = report.get("root_workflow_execution") or {}
    found, wake = {}, []
    _workflow(root, engine_now, settings, bounds, found, wake)
    for signature in SIGNATURES:
        if signature in found:
            return found[signature], None
    return None, (min(wake) if wake else None)


def _workflow(wf, now, s, bounds, found, wake):
    if wf.get("state") != "RUNNING":
        return
    tasks = wf.get("task_executions") or []
    if not any(t.get("state") in BUSY for t in tasks):
        _continuation(wf, tasks, now, s, found, wake)
    for task in tasks:
        if task.get("state") != "RUNNING":
            continue
        actions = task.get("action_executions") or []
        subs = task.get("workflow_executions") or []
        for action in actions:
            if action.get("state") == "RUNNING":
                _action(wf, task, action, now, s, bounds, found, wake)
        if actions or subs:
            _result(wf, task, actions, subs, now, s, found, wake)
        _progress(wf, task, actions, subs, now, s, bounds, found, wake)
        for sub in subs:
            _workflow(sub, now, s, bounds, found, wake)


def _first(found, signature, finding):
    found.setdefault(signature, finding)


def _at(entry, *keys):
    for key in keys:
        value = engine_time(entry.get(key))
        if value is not None:
            return value
    return None


def _action(wf, task, action, now, s, bounds, found, wake):
    created = _at(action, "created_at") or now
    beat = _at(action, "last_heartbeat")
    evidence = _evidence(wf, task, actions=[action])
    timeout = bounds.task_timeout(wf.get("name"), task.get("name"))
    if timeout:
        # The engine's own timeout policy should have failed the task by now.
        deadline = (_at(task, "created_at") or created) + timeout
        if now >= deadline + s.result_grace:
            _first(
                found,
                LOST_ACTION,
                Finding(
                    LOST_ACTION,
                    deadline,
                    "action execution %s (%s) is still RUNNING %.0f s past its task's "
                    "timeout of %g s"
                    % (action.get("id"), action.get("name"), now - deadline, timeout),
                    evidence,
                ),
            )
            return
        wake.append(deadline + s.result_grace)
    if action.get("name") in s.async_actions:
        return  # completed from outside; it sends no heartbeats while it waits
    if beat is None or beat > now + 1:
        # Never heartbeated: Mistral's placeholder is creation + first_heartbeat_timeout.
        if now - created >= s.unstarted_timeout:
            _first(
                found,
                LOST_ACTION,
                Finding(
                    LOST_ACTION,
                    created,
                    "action execution %s (%s) has had no executor for %.0f s: none "
                    "picked it up" % (action.get("id"), action.get("name"), now - created),
                    evidence,
                ),
            )
        else:
            wake.append(created + s.unstarted_timeout)
        return
    if now - beat >= s.heartbeat_timeout:
        _first(
            found,
            LOST_ACTION,
            Finding(
                LOST_ACTION,
                beat,
                "action execution %s (%s) is RUNNING but its executor is gone: no "
                "heartbeat for %.0f s (Mistral itself fails it only after "
                "[action_heartbeat] max_missed_heartbeats x check_interval, 300 s by default)"
                % (action.get("id"), action.get("name"), now - beat),
                evidence,
            ),
        )
    else:
        wake.append(beat + s.heartbeat_timeout)


def _result(wf, task, actions, subs, now, s, found, wake):
    children = list(actions) + list(subs)
    if not all(c.get("state") in ENDED for c in children):
        return
    ended = max(_at(c, "updated_at", "created_at") or now for c in children)
    if now - ended < s.result_grace:
        wake.append(ended + s.result_grace)
        return
    what = "sub-workflow" if subs else "action"
    _first(
        found,
        LOST_RESULT,
        Finding(
            LOST_RESULT,
            ended,
            "task %s (%s) is RUNNING but its %s execution%s ended %.0f s ago: the engine "
            "missed the result"
            % (
                task.get("name"),
                task.get("id"),
                what,
                "s" if len(children) > 1 else "",
                now - ended,
            ),
            _evidence(wf, task, actions=actions, subs=subs),
        ),
    )


def _continuation(wf, tasks, now, s, found, wake):
    times = [_at(t, "updated_at", "created_at") for t in tasks] + [_at(wf, "created_at")]
    last = max([t for t in times if t is not None] or [now])
    if now - last < s.continuation_grace:
        wake.append(last + s.continuation_grace)
        return
    idle = [t for t in tasks if t.get("state") == "IDLE"]
    if idle:
        why = "task%s %s %s created but never started" % (
            "s" if len(idle) > 1 else "",
            ", ".join(t.get("name") or "?" for t in idle),
            "were" if len(idle) > 1 else "was",
        )
    elif tasks:
        why = "all its tasks have ended"
    else:
        why = "it has no task"
    _first(
        found,
        LOST_CONTINUATION,
        Finding(
            LOST_CONTINUATION,
            last,
            "workflow %s (%s) is RUNNING but %s, and nothing moved for %.0f s: the engine "
            "lost its continuation" % (wf.get("name"), wf.get("id"), why, now - last),
            dict(
                _evidence(wf, None),
                tasks=[_brief(t) for t in tasks],
            ),
        ),
    )


def _progress(wf, task, actions, subs, now, s, bounds, found, wake):
    limits = [
        b for b in (s.no_progress_after, bounds.learnt(wf.get("name"), task.get("name"))) if b
    ]
    if not limits:
        return
    limit = min(limits)
    moves = [_at(task, "updated_at", "created_at")]
    moves += [_at(c, "updated_at", "created_at") for c in list(actions) + list(subs)]
    last = max([m for m in moves if m is not None] or [now])
    if now - last < limit:
        wake.append(last + limit)
        return
    _first(
        found,
        NO_PROGRESS,
        Finding(
            NO_PROGRESS,
            last,
            "task %s (%s) has not changed for %.0f s, longer than expected (%g s)"
            % (task.get("name"), task.get("id"), now - last, limit),
            dict(_evidence(wf, task, actions=actions, subs=subs), bound_s=limit),
        ),
    )


def _brief(entry, *extra):
    out = {k: entry.get(k) for k in ("id", "name", "state")}
    for key in extra:
        out[key] = entry.get(key)
    return out


def _evidence(wf, task, actions=(), subs=()):
    return {
        "workflow_execution_id": wf.get("id"),
        "workflow_name": wf.get("name"),
        "task": _brief(task) if task else None,
        "action_executions": [
            _brief(a, "created_at", "updated_at", "last_heartbeat") for a in actions
        ],
        "workflow_executions": [_brief(w, "updated_at") for w in subs],
    }


# -- what the record keeps, and how it is shown ------------------------------------


def record_value(finding, engine_offset, now, previous=None):
    """The record's `stuck` object (bridge times). A finding that repeats the
    one on record keeps its detection time."""
    value = {
        "signature": finding.signature,
        "since": finding.since - engine_offset,
        "detected_at": now,
        "reason": finding.reason,
        "evidence": finding.evidence,
    }
    if (
        previous
        and previous.get("signature") == finding.signature
        and previous.get("evidence", {}).get("task") == finding.evidence.get("task")
        and previous.get("evidence", {}).get("workflow_execution_id")
        == finding.evidence.get("workflow_execution_id")
    ):
        value["detected_at"] = previous.get("detected_at", now)
        value["since"] = previous.get("since", value["since"])
    return value


def fix_command(record_id, signature):
    if signature == NO_PROGRESS:
        return "st2bridge execution get %s  (then wait, or: st2bridge execution cancel %s)" % (
            record_id,
            record_id,
        )
    return "st2bridge execution recover %s" % record_id
