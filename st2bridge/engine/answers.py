"""Checking the engine's answers before anything is recorded from them.

An engine (or a proxy in front of it) that answers `200 {}`, or a body without
the fields the bridge asked for, must never change a record: a `requested`
record must not become `running`, a task view must not be wiped. Each check
returns the answer when it holds what the bridge needs, and raises
EngineMalformed otherwise (an engine error: callers back off and retry).
"""

import re

from st2bridge.errors import EngineMalformed

# Mistral 23's execution and task states (tasks add SKIPPED).
STATES = frozenset(
    {
        "IDLE",
        "WAITING",
        "RUNNING",
        "RUNNING_DELAYED",
        "DELAYED",
        "PAUSED",
        "SUCCESS",
        "ERROR",
        "CANCELLED",
        "SKIPPED",
    }
)
# 'YYYY-MM-DD HH:MM:SS' (UTC), sometimes with fractions or a 'T'.
TIME = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def _fail(what, problem, answer):
    shown = repr(answer)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    raise EngineMalformed(
        "%s: the engine's answer %s (got %s); treated as an engine error" % (what, problem, shown),
        status=200,
    )


def _check_fields(what, answer, fields, required):
    if not isinstance(answer, dict):
        _fail(what, "is not a JSON object", answer)
    for field in required:
        if field not in fields:
            continue
        value = answer.get(field)
        if field in ("state",):
            if value not in STATES:
                _fail(what, "has no valid 'state'", answer)
        elif field == "updated_at":
            if not isinstance(value, str) or not TIME.match(value):
                _fail(what, "has no valid '%s'" % field, answer)
        elif field == "created_at":  # informative only: checked when given
            if value is not None and not (isinstance(value, str) and TIME.match(value)):
                _fail(what, "has an invalid '%s'" % field, answer)
        elif field == "output":
            if not isinstance(value, dict):
                _fail(what, "has no 'output' object", answer)
        elif field == "state_info":
            if field not in answer or not (value is None or isinstance(value, str)):
                _fail(what, "has no valid 'state_info'", answer)
        elif not isinstance(value, str) or not value:
            _fail(what, "has no valid '%s'" % field, answer)
    return answer


def execution(answer, execution_id, fields):
    """A GET of one execution asked for `fields`."""
    what = "get execution %s" % execution_id
    _check_fields(
        what,
        answer,
        fields,
        ("id", "state", "updated_at", "created_at", "output", "state_info"),
    )
    if "id" in fields and answer["id"] != execution_id:
        _fail(what, "names another execution", answer)
    return answer


def listing_rows(rows, fields):
    """Rows of an execution listing (a list, already paged)."""
    for row in rows:
        _check_fields("list executions", row, fields, ("id", "state", "updated_at"))
    return rows


def tasks(rows, execution_id, fields):
    """The task list of one workflow execution."""
    what = "list tasks of execution %s" % execution_id
    for row in rows:
        _check_fields(what, row, fields, ("id", "name", "state"))
        if "workflow_execution_id" in fields and row.get("workflow_execution_id") != execution_id:
            _fail(what, "holds a task of another execution", row)
        if row.get("updated_at") is not None and not (
            isinstance(row["updated_at"], str) and TIME.match(row["updated_at"])
        ):
            _fail(what, "has a task without a valid 'updated_at'", row)
    return rows


def task(answer, task_id):
    """A GET of one task."""
    what = "get task %s" % task_id
    _check_fields(what, answer, ("id", "name", "state"), ("id", "name", "state"))
    if answer["id"] != task_id:
        _fail(what, "names another task", answer)
    return answer


def sub_executions(rows, root_id):
    """The sub-workflow executions under a root (listing by root_execution_id)."""
    for row in rows:
        _check_fields(
            "list sub-workflows of execution %s" % root_id,
            row,
            ("id", "state", "task_execution_id"),
            ("id", "state", "task_execution_id"),
        )
    return rows
