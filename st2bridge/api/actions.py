"""What st2bridge-api and the web view do to an execution: cancel, pause,
resume, re-run a failed task, recover a stuck execution. One code path for
both, the same as the CLI's (st2bridge.control, st2bridge.recover), so the
answers and the one-line errors are the same wherever the request came
from. Each call logs who asked (the API key's name) and through what."""

import logging
import time

from st2bridge import concurrency, control, errors, recover
from st2bridge import status as st
from st2bridge.tracker import stuck, stuckwatch

LOG = logging.getLogger("st2bridge.api")
CHANGES = ("cancel", "pause", "resume")
# Seconds `recover` waits at most for the engine to act on a step (as the CLI's --settle).
MAX_SETTLE = 300.0


def change(store, engine, id_text, action, actor, via="API", clock=time.time):
    """Cancel, pause or resume; the API's ControlResult."""
    if action not in CHANGES:
        raise errors.InputError("unknown action %s (known: %s)" % (action, ", ".join(CHANGES)))
    record = control.resolve(store, id_text)
    result = control.change_state(engine, store, record["id"], action, clock=clock)
    LOG.info("%s of execution %s asked by key %s (%s)", result.action, result.id, actor, via)
    return {
        "id": result.id,
        "action": result.action,
        "status": result.status,
        "engine_state": result.engine_state,
        "changed": result.changed,
    }


def rerun(store, engine, task_id, actor, reset=True, via="API", clock=time.time):
    """Re-run a failed task; the API's RerunResult."""
    result = control.rerun_task(engine, store, task_id, reset=reset, clock=clock)
    LOG.info(
        "task %s of execution %s re-run by key %s (%s)", task_id, result.execution_id, actor, via
    )
    return {
        "execution_id": result.execution_id,
        "task_id": result.task_id,
        "task_name": result.task_name,
        "workflow_name": result.workflow_name,
        "reopened": result.reopened,
        "reset": result.reset,
        "status": st.RUNNING,
    }


def recover_execution(
    store,
    engine,
    id_text,
    actor,
    *,
    stuck_conf=None,
    dry_run=False,
    rerun=True,
    settle=30.0,
    via="API",
    clock=time.time,
    sleep=concurrency.sleep,
):
    """`st2bridge execution recover ID --no-wait [--dry-run]`: diagnose afresh
    from the engine, carry out the plan; its --json answer (Conflict when
    the execution is not stuck or has no safe recovery: nothing changed)."""
    record_id = control.resolve(store, id_text)["id"]
    settings = stuckwatch.settings_from_config(stuck_conf) if stuck_conf else stuck.Settings()
    recovery = recover.Recovery(
        engine,
        store,
        settings,
        stuckwatch.EngineBounds(engine, store, stuck_conf, clock=clock),
        rerun=rerun,
        settle=min(max(0.0, settle), MAX_SETTLE),
        clock=clock,
        sleep=sleep,
    )
    plan = recovery.plan(record_id)
    LOG.info(
        "recover of execution %s (%s)%s asked by key %s (%s)",
        record_id,
        plan.finding.signature,
        " (dry run)" if dry_run else "",
        actor,
        via,
    )
    if not dry_run:
        recovery.carry_out(plan)
    return {
        "id": record_id,
        "signature": plan.finding.signature,
        "reason": plan.finding.reason,
        "evidence": plan.finding.evidence,
        "dry_run": dry_run,
        "steps": [s.text for s in plan.steps],
        "done": plan.done,
        "status": store.get_execution(record_id)["status"],
    }
