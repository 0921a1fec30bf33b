"""`st2bridge execution recover`: get a stuck execution moving again, through
the engine's API only.

The execution is diagnosed afresh from the engine (the flag on the record
may be old), and what is done depends on the signature
(st2bridge/tracker/stuck.py):

    lost_action        PUT /v2/action_executions/{id}: SUCCESS with its output
                       when the engine already has one, else ERROR with the
                       reason, so the engine continues the task as if the
                       executor had answered; then, when that fails the
                       workflow, the task is re-run (its executor being gone,
                       the work was lost).
    lost_result        a finished sub-workflow is set to its own state again
                       (PUT /v2/executions/{child} SUCCESS: Mistral sends its
                       result to the parent task once more); for an action,
                       or a failed sub-workflow, the engine refuses to take a
                       result twice, so the workflow that holds the task is
                       failed with a state_info saying why.
    lost_continuation  pause and resume the execution (the engine then starts
                       tasks it created but never started, and completes a
                       workflow whose tasks have all ended); if it still does
                       not move, fail it with a state_info saying why.
    no_progress        refused: the engine says the work is alive, only slow.

Refusals (not stuck, ended, paused, no progress) change nothing.
"""

import dataclasses
import logging
import time

from st2bridge import concurrency, control, errors, schedule
from st2bridge import status as st
from st2bridge.results import LIGHT_FIELDS
from st2bridge.tracker import stuck

LOG = logging.getLogger(__name__)
PREFIX = "st2bridge recover: "
# Seconds a failed task's workflow gets to end before the task counts as handled.
ENDING = 10.0


@dataclasses.dataclass
class Step:
    text: str  # what it does, for people
    run: object  # callable() -> a sentence saying what happened


@dataclasses.dataclass
class Plan:
    record: dict
    finding: stuck.Finding
    steps: list
    done: list = dataclasses.field(default_factory=list)


class Recovery:
    """Plans and carries out the recovery of one execution."""

    def __init__(
        self,
        engine,
        store,
        settings,
        bounds=None,
        *,
        rerun=True,
        settle=30.0,
        clock=time.time,
        sleep=concurrency.sleep,
    ):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.bounds = bounds
        self.rerun = rerun
        self.settle = settle
        self.clock = clock
        self.sleep = sleep

    # -- planning ---------------------------------------------------------------------

    def plan(self, record_id):
        """A Plan, or errors.Conflict saying why nothing safe can be done."""
        record = self.store.get_execution(record_id)
        if st.is_terminal(record["status"]):
            raise errors.Conflict(
                "execution %s is %s: it has ended, there is nothing to recover"
                % (record_id, record["status"])
            )
        eid = record["engine_execution_id"]
        state = self.engine.get_execution(eid, fields=LIGHT_FIELDS).get("state")
        if state != "RUNNING":
            raise errors.Conflict(
                "execution %s is %s in the engine, not RUNNING: it is not stuck; nothing was "
                "changed" % (record_id, state)
            )
        report = self.engine.execution_tree(eid)
        offset = self.engine.clock_offset() or 0.0
        finding, _ = stuck.diagnose(report, self.clock() + offset, self.settings, self.bounds)
        if finding is None:
            raise errors.Conflict(
                "execution %s is not stuck: the engine shows it moving (nothing overdue by the "
                "[stuck] thresholds); nothing was changed" % record_id
            )
        steps = getattr(self, "_" + finding.signature)(record, finding)
        return Plan(record, finding, steps)

    def _lost_action(self, record, finding):
        steps = []
        task = finding.evidence.get("task") or {}
        for action in finding.evidence.get("action_executions") or []:
            if action.get("state") != "RUNNING":
                continue
            state, output = self._action_outcome(action, finding)
            steps.append(
                Step(
                    "set action execution %s (%s, task %s) to %s%s"
                    % (
                        action["id"],
                        action.get("name"),
                        task.get("name"),
                        state,
                        " with the output the engine has" if state == "SUCCESS" else "",
                    ),
                    lambda a=action, s=state, o=output: self._complete(a, s, o),
                )
            )
        if self.rerun and task.get("id"):
            steps.append(
                Step(
                    "if that fails the workflow: re-run task %s (%s)"
                    % (task.get("name"), task["id"]),
                    lambda: self._rerun_if_failed(record, task),
                )
            )
        return steps

    def _action_outcome(self, action, finding):
        detail = self.engine.get_action_execution(action["id"])
        output = detail.get("output")
        if output not in (None, {}, ""):
            return "SUCCESS", output
        return "ERROR", {"result": PREFIX + finding.reason}

    def _lost_result(self, record, finding):
        evidence = finding.evidence
        task = evidence.get("task") or {}
        subs = evidence.get("workflow_executions") or []
        if subs and subs[-1].get("state") == "SUCCESS":
            child = subs[-1]
            return [
                Step(
                    "set sub-workflow %s (%s) to SUCCESS again: the engine sends its result to "
                    "task %s once more" % (child.get("name"), child["id"], task.get("name")),
                    lambda: self._resend(child),
                )
            ]
        wf_id = evidence.get("workflow_execution_id")
        why = "the result of task %s (%s) never reached the engine: %s" % (
            task.get("name"),
            task.get("id"),
            finding.reason,
        )
        return [
            Step(
                "fail workflow %s (%s) with that reason: the engine takes no result twice"
                % (evidence.get("workflow_name"), wf_id),
                lambda: self._fail(wf_id, why),
            )
        ]

    def _lost_continuation(self, record, finding):
        wf_id = finding.evidence.get("workflow_execution_id")
        return [
            Step(
                "pause and resume execution %s: the engine starts the tasks it never started "
                "and completes the workflow if all its tasks have ended" % record["id"],
                lambda: self._pause_resume(record),
            ),
            Step(
                "if it still does not move: fail workflow %s with the reason" % wf_id,
                lambda: self._fail_if_still_stuck(record, wf_id, finding),
            ),
        ]

    def _no_progress(self, record, finding):
        raise errors.Conflict(
            "execution %s makes no progress (%s), but the engine shows its work alive: there "
            "is no safe automatic recovery; wait, or cancel it (st2bridge execution cancel %s)"
            % (record["id"], finding.reason, record["id"])
        )

    # -- doing ----------------------------------------------------------------------------

    def carry_out(self, plan, on_step=None):
        """Run the plan's steps in order; each reports what happened."""
        for step in plan.steps:
            said = step.run()
            plan.done.append(said)
            LOG.info("recover %s: %s", plan.record["id"], said)
            if on_step:
                on_step(said)
        # The flag is stale now: the watch looks again once the record is quiet.
        now = self.clock()
        self.store.update_execution(
            plan.record["id"],
            {
                "stuck": None,
                "stuck_probe_at": None,
                "tracked": True,
                "next_poll_at": schedule.at_once(now),
            },
            if_active=True,
        )
        return plan

    def _complete(self, action, state, output):
        answer = self.engine.complete_action_execution(action["id"], state, output)
        return "action execution %s is %s" % (action["id"], answer.get("state", state))

    def _resend(self, child):
        answer = self.engine.update_execution_state(child["id"], "SUCCESS")
        return "sub-workflow %s is %s; its result was sent again" % (
            child["id"],
            answer.get("state"),
        )

    def _fail(self, wf_id, why):
        answer = self.engine.update_execution_state(wf_id, "ERROR", state_info=PREFIX + why)
        return "workflow %s is %s (state_info: %s%s)" % (wf_id, answer.get("state"), PREFIX, why)

    def _pause_resume(self, record):
        control.change_state(self.engine, self.store, record["id"], "pause", clock=self.clock)
        result = control.change_state(
            self.engine, self.store, record["id"], "resume", clock=self.clock
        )
        return "execution %s was paused and resumed: the engine has it %s" % (
            record["id"],
            result.engine_state,
        )

    def _fail_if_still_stuck(self, record, wf_id, finding):
        eid = record["engine_execution_id"]
        deadline = self.clock() + self.settle
        while True:
            report = self.engine.execution_tree(eid)
            now = self.clock() + (self.engine.clock_offset() or 0.0)
            # Judged without grace: anything that moved since the resume counts.
            again, _ = stuck.diagnose(
                report, now + self.settings.continuation_grace, self.settings, self.bounds
            )
            moving = (
                (report.get("root_workflow_execution") or {}).get("state") != "RUNNING"
                or again is None
                or again.signature != stuck.LOST_CONTINUATION
            )
            if moving:
                return "the engine moves again; nothing more to do"
            if self.clock() >= deadline:
                break
            self.sleep(1.0)
        return self._fail(wf_id, finding.reason + "; it did not move after a pause and resume")

    def _rerun_if_failed(self, record, task):
        """Wait (up to `settle`) for the engine to act on the completed action;
        re-run the task when the workflow failed for it. A failed task ends
        its workflow a moment later (Mistral checks for completion after the
        task's transaction), unless an on-error handler takes over: give it
        ENDING seconds to show which."""
        eid = record["engine_execution_id"]
        deadline = self.clock() + self.settle
        failed_at = None
        while True:
            state = self.engine.get_execution(eid, fields=LIGHT_FIELDS).get("state")
            task_state = self.engine.get_task(task["id"]).get("state")
            now = self.clock()
            if task_state == "ERROR" and failed_at is None:
                failed_at = now
            if state != "RUNNING" or task_state not in ("RUNNING", "IDLE", "ERROR"):
                break
            if failed_at is not None and now - failed_at >= min(ENDING, self.settle):
                break
            if now >= deadline:
                return "the engine still has task %s %s after %.0f s; not re-run" % (
                    task.get("name"),
                    task_state,
                    self.settle,
                )
            self.sleep(0.5)
        if state != "ERROR" or task_state != "ERROR":
            return "the engine went on (execution %s, task %s %s): no re-run needed" % (
                state,
                task.get("name"),
                task_state,
            )
        result = control.rerun_task(self.engine, self.store, task["id"], clock=self.clock)
        return "task %s (%s) is running again%s" % (
            result.task_name,
            result.task_id,
            " (the record was reopened)" if result.reopened else "",
        )
