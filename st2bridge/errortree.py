"""What went wrong in a failed execution, from the engine's own report.

`GET /v2/executions/{id}/report?errors_only=true` gives the failed tasks of
an execution and of its sub-workflows, nested. This module turns it into a
smaller, stable tree and finds the failed tasks at its leaves: the ones whose
own action failed, which are the ones to re-run (re-running a task inside a
sub-workflow re-runs its parents too).

Tree shape (JSON-able):
    {"execution_id", "workflow", "state", "error",
     "tasks": [{"id", "name", "label", "state", "error", "retry_count",
                "actions": [{"id", "name", "state"}],
                "workflows": [<a tree of the same shape>]}]}
`error` is the engine's state_info: for a task that ran an action, the
action's error; for a task that ran a sub-workflow, its first line only (the
engine repeats the whole sub-tree in it). `label` tells instances apart
(three failing `migrate` tasks of a with-items over three hosts): the task's
label in the record's task view (st2bridge.taskview), else its name.
"""

from st2bridge.text import one_line


def _first_line(message):
    return one_line(message, first_line=True) or None


def from_report(report, rows=None):
    """The tree of an engine report (None when the report has no root),
    labelled from the record's task rows `rows`."""
    root = (report or {}).get("root_workflow_execution")
    if not isinstance(root, dict):
        return None
    labels = {r.get("id"): r.get("label") for r in rows or () if r.get("label")}
    # The report lists tasks in no fixed order: show them in the record's
    # order (the task view's, with-items instances by index), the rest after.
    order = {r.get("id"): i for i, r in enumerate(rows or ())}
    return _workflow(root, labels, order)


def _workflow(entry, labels, order):
    tasks = sorted(
        entry.get("task_executions") or [],
        key=lambda t: (order.get(t.get("id"), len(order)), str(t.get("name"))),
    )
    return {
        "execution_id": entry.get("id"),
        "workflow": entry.get("name"),
        "state": entry.get("state"),
        "error": _first_line(entry.get("state_info")),
        "tasks": [_task(t, labels, order) for t in tasks],
    }


def _task(entry, labels, order):
    workflows = sorted(
        (_workflow(w, labels, order) for w in entry.get("workflow_executions") or []),
        key=lambda wf: _first_position(wf, order),
    )
    return {
        "id": entry.get("id"),
        "name": entry.get("name"),
        "label": labels.get(entry.get("id")) or entry.get("name"),
        "state": entry.get("state"),
        "error": _first_line(entry.get("state_info")) if workflows else entry.get("state_info"),
        "retry_count": entry.get("retry_count") or 0,
        "actions": [
            {"id": a.get("id"), "name": a.get("name"), "state": a.get("state")}
            for a in entry.get("action_executions") or []
        ],
        "workflows": workflows,
    }


def _first_position(wf, order):
    """Where a sub-workflow's first task stands in the record's order."""
    positions = [order.get(t["id"], len(order)) for t in wf["tasks"]]
    positions += [_first_position(w, order) for t in wf["tasks"] for w in t["workflows"]]
    return min(positions, default=len(order))


def failed_leaves(tree):
    """Failed tasks that failed themselves (not through a failed sub-workflow),
    depth first, each as (task, path of workflow names down to it)."""
    found = []

    def walk(wf, path):
        for task in wf["tasks"]:
            if task["state"] != "ERROR":
                continue
            failed_children = [w for w in task["workflows"] if w["state"] == "ERROR" and w["tasks"]]
            if failed_children:
                for child in failed_children:
                    walk(child, path + [child["workflow"]])
            else:
                found.append((task, path))

    if tree:
        walk(tree, [tree["workflow"]])
    return found


def rerun_command(task_id, prog="st2bridge"):
    """`prog`: the command as the user called it (st2bridge.cli.hints)."""
    return "%s task rerun %s" % (prog, task_id)


def render(tree):
    """The tree as indented text lines."""
    lines = []

    def wf_lines(wf, depth):
        pad = "  " * depth
        lines.append(
            "%sworkflow %s (%s)  %s" % (pad, wf["workflow"], wf["state"], wf["execution_id"])
        )
        for task in wf["tasks"]:
            retries = (
                ", %d %s"
                % (task["retry_count"], "retry" if task["retry_count"] == 1 else "retries")
                if task["retry_count"]
                else ""
            )
            lines.append(
                "%s  task %s (%s%s)  %s"
                % (pad, task.get("label") or task["name"], task["state"], retries, task["id"])
            )
            if task["workflows"]:
                for child in task["workflows"]:
                    wf_lines(child, depth + 2)
                continue
            names = sorted({a["name"] for a in task["actions"]})
            attempts = " x%d" % len(task["actions"]) if len(task["actions"]) > 1 else ""
            error = (
                str(task["error"] or "no error message")
                .strip()
                .replace("\n", "\n" + pad + "      ")
            )
            lines.append("%s    action %s%s: %s" % (pad, ", ".join(names) or "-", attempts, error))

    if tree:
        wf_lines(tree, 1)
    return lines
