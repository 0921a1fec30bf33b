"""How a stuck execution is shown: the `stuck` field of `--json` and of the
web view, and the lines `execution get` prints (st2bridge/tracker/stuck.py
has the rules)."""

import datetime

from st2bridge.tracker.stuck import fix_command


def _iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


def view(record):
    """The `stuck` field of `--json` (and of the web view): null, or the
    signature, since when, the evidence and the command that fixes it."""
    value = record.get("stuck")
    if not value:
        return None
    return {
        "signature": value.get("signature"),
        "since": _iso(value.get("since")),
        "detected_at": _iso(value.get("detected_at")),
        "reason": value.get("reason"),
        "evidence": value.get("evidence") or {},
        "command": fix_command(record["id"], value.get("signature")),
    }


def explain(record):
    """Lines for people: what is stuck, since when, the evidence, the fix."""
    shown = view(record)
    if not shown:
        return []
    evidence = shown["evidence"]
    lines = [
        "%s since %s (flagged %s)"
        % (shown["signature"], (shown["since"] or "?").replace("T", " "), shown["detected_at"]),
        shown["reason"] or "",
    ]
    task = evidence.get("task")
    if task:
        lines.append(
            "task %s (%s) %s in workflow %s (%s)"
            % (
                task.get("name"),
                task.get("id"),
                task.get("state"),
                evidence.get("workflow_name"),
                evidence.get("workflow_execution_id"),
            )
        )
    for action in evidence.get("action_executions") or []:
        beat = action.get("last_heartbeat")
        lines.append(
            "action execution %s (%s) %s%s"
            % (
                action.get("id"),
                action.get("name"),
                action.get("state"),
                ", last heartbeat %s" % beat if beat and action.get("state") == "RUNNING" else "",
            )
        )
    for sub in evidence.get("workflow_executions") or []:
        lines.append("sub-workflow %s (%s) %s" % (sub.get("id"), sub.get("name"), sub.get("state")))
    if evidence.get("tasks") is not None:
        lines.append(
            "tasks: %s"
            % (
                ", ".join("%s %s" % (t.get("name"), t.get("state")) for t in evidence["tasks"])
                or "none"
            )
        )
    lines.append("fix: %s" % shown["command"])
    return lines
