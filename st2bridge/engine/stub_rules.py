"""Mistral 23's rules and resource shapes, as StubEngine applies them: reading
a definition, checking input, filtering a listing, changing a state, the
resources' fields, the error report. Pure functions; a refusal is
`Refused(status, detail)` with Mistral's own wording, which the stub turns into
the error MistralClient raises for that answer.
"""

from __future__ import annotations

import operator
import time
import uuid
from collections.abc import Mapping
from typing import Any

import yaml

from st2bridge.text import one_line

TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")
PROJECT = "<default-project>"
# Top-level keys of a workflow file that are not workflows.
FILE_KEYS = ("version", "name", "description", "tags")
# Query arguments of GET /v2/executions the stub knows (Mistral refuses unknown ones).
LIST_FILTERS = (
    "updated_at",
    "created_at",
    "workflow_name",
    "workflow_namespace",
    "state",
    "nulls",
    "not_nulls",
    "root_execution_id",
    "task_execution_id",
)
_ORDER = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class Refused(Exception):
    """Mistral's error answer: HTTP `status`, its message the detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def stamp(seconds: float) -> str:
    """Mistral's timestamps: UTC, one-second resolution."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


# -- definitions --------------------------------------------------------------


def _parse(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Refused(
            400, "Definition could not be parsed: %s" % one_line(exc, first_line=True)
        ) from None
    if not isinstance(doc, dict):
        raise Refused(400, "Invalid DSL: %r is not of type 'object'" % (doc,))
    if "version" not in doc:
        raise Refused(400, "Invalid DSL: 'version' is a required property")
    return doc


def _mappings(specs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for spec in specs.values():
        if not isinstance(spec, dict):
            raise Refused(400, "Invalid DSL: %r is not of type 'object'" % (spec,))
    return specs


def workflow_definitions(text: str) -> dict[str, tuple[dict[str, Any], str]]:
    """{name: (spec, definition)} of a workflow file. As Mistral: one workflow
    keeps the text as sent; several are cut apart, each with the version."""
    doc = _parse(text)
    specs = _mappings({str(k): v for k, v in doc.items() if k not in FILE_KEYS})
    if not specs:
        raise Refused(400, "Invalid DSL: at least one workflow is required")
    if len(specs) == 1:
        return {name: (spec, text) for name, spec in specs.items()}
    return {
        name: (spec, yaml.safe_dump({"version": doc["version"], name: spec}, sort_keys=False))
        for name, spec in specs.items()
    }


def workbook_definitions(text: str) -> tuple[str, dict[str, tuple[dict[str, Any], str]]]:
    """(the workbook's name, {short name: (spec, definition)}): a workbook's
    workflow is stored as its own part of the text, without `version`."""
    doc = _parse(text)
    if not doc.get("name"):
        raise Refused(400, "Invalid DSL: 'name' is a required property")
    workflows = doc.get("workflows") or {}
    if not isinstance(workflows, dict):
        raise Refused(400, "Invalid DSL: %r is not of type 'object'" % (workflows,))
    specs = _mappings({str(k): v for k, v in workflows.items()})
    return str(doc["name"]), {
        name: (spec, yaml.safe_dump({name: spec}, sort_keys=False)) for name, spec in specs.items()
    }


def input_text(spec: Mapping[str, Any]) -> str:
    """A workflow resource's `input`: Mistral's 'a, b="1"' text."""
    out: list[str] = []
    for item in spec.get("input") or []:
        if isinstance(item, dict):
            out.extend('%s="%s"' % (k, v) for k, v in item.items())
        else:
            out.append(str(item))
    return ", ".join(out)


def checked_input(spec: Mapping[str, Any], given: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The execution's input: every declared input without a default given,
    nothing undeclared; the defaults fill in the rest."""
    required, defaults = [], {}
    for item in spec.get("input") or []:
        if isinstance(item, dict):
            defaults.update(item)
        else:
            required.append(str(item))
    missing = [n for n in required if n not in given]
    unexpected = [n for n in given if n not in required and n not in defaults]
    if missing or unexpected:
        detail = "".join(
            ", %s=%s" % (what, names)
            for what, names in (("missing", missing), ("unexpected", unexpected))
            if names
        )
        raise Refused(400, "Invalid input [name=%s, class=DirectWorkflowSpec%s]" % (name, detail))
    return dict(defaults, **given)


# -- executions ---------------------------------------------------------------


def state_change(current: str, wanted: str, execution: Mapping[str, Any]) -> bool:
    """Whether PUT state=`wanted` changes an execution in `current`. Pausing a
    paused, resuming a running, cancelling or failing a finished (or failing a
    paused) execution changes nothing, without an error; SUCCESS on a SUCCESS
    one is done again (its result goes to the parent once more). Pausing a
    finished execution, or SUCCESS from another state than RUNNING, is refused
    (Mistral's state transitions)."""
    refused = Refused(
        400,
        "Can't change workflow execution state from %s to %s. [workflow=%s, execution_id=%s]"
        % (current, wanted, execution["workflow_name"], execution["id"]),
    )
    if wanted == "PAUSED":
        if current in TERMINAL:
            raise refused
        return current != "PAUSED"
    if wanted == "RUNNING":
        return current in ("PAUSED", "IDLE")
    if wanted == "CANCELLED":
        return current not in TERMINAL
    if wanted == "ERROR":
        return current not in TERMINAL and current != "PAUSED"
    if wanted == "SUCCESS":
        if current not in ("RUNNING", "SUCCESS"):
            raise refused
        return True
    raise Refused(
        400,
        "Cannot change state to %s. Allowed states are: "
        "'RUNNING, PAUSED, SUCCESS, ERROR, CANCELLED" % wanted,
    )


def check_filters(filters: Mapping[str, str]) -> None:
    """GET /v2/executions refuses query arguments it does not know."""
    unknown = sorted(set(filters) - set(LIST_FILTERS))
    if unknown:
        raise Refused(400, "Unknown argument: %s" % ", ".join('"%s"' % n for n in unknown))


def matches(execution: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """Whether an execution passes GET /v2/executions' filters."""
    for name, value in filters.items():
        if name in ("nulls", "not_nulls"):
            for field in filter(None, value.split(",")):
                if (execution.get(field) is None) != (name == "nulls"):
                    return False
        elif not _compare(execution.get(name), value):
            return False
    return True


def _compare(actual: Any, term: str) -> bool:
    """Mistral's filter syntax: "OP:VALUE" (eq, neq, gt, gte, lt, lte, in) or VALUE.
    Timestamps compare as their text: the format sorts like the time."""
    op, colon, value = term.partition(":")
    if not colon or op not in ("eq", "neq", "gt", "gte", "lt", "lte", "in"):
        op, value = "eq", term
    if op == "in":
        return actual in value.split(",")
    if op in ("eq", "neq"):
        return bool(actual == value) == (op == "eq")
    if actual is None:
        return False
    return bool(_ORDER[op](actual, value))


def find_spec(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The spec in a stored workflow's definition (by its full or short name)."""
    doc = yaml.safe_load(workflow.get("definition") or "")
    name = str(workflow.get("name") or "")
    for key in (name, name.rsplit(".", 1)[-1]):
        if isinstance(doc, dict) and isinstance(doc.get(key), dict):
            spec: dict[str, Any] = doc[key]
            return spec
    return {}


# -- resources ----------------------------------------------------------------

# What the report shows of an action execution.
ACTION_REPORT_FIELDS = (
    "id",
    "name",
    "state",
    "state_info",
    "accepted",
    "last_heartbeat",
    "created_at",
    "updated_at",
)


def stored(
    name: str, namespace: str | None, definition: str, old: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """A workflow or workbook resource (a new one, or `old` updated)."""
    return {
        "id": old["id"] if old else str(uuid.uuid4()),
        "name": name,
        "namespace": namespace or "",
        "definition": definition,
        "tags": [],
        "scope": "private",
        "project_id": PROJECT,
        "created_at": old["created_at"] if old else now,
        "updated_at": now if old else None,
    }


def execution(
    ex_id: str,
    workflow: Mapping[str, Any],
    input: Mapping[str, Any],
    params: Mapping[str, Any],
    description: str,
    now: str,
) -> dict[str, Any]:
    """A new execution, RUNNING; the engine adds its namespace and env to params."""
    return {
        "id": ex_id,
        "workflow_id": workflow["id"],
        "workflow_name": workflow["name"],
        "workflow_namespace": workflow["namespace"],
        "description": description or "",
        "tags": [],
        "params": dict({"namespace": workflow["namespace"], "env": {}}, **params),
        "task_execution_id": None,
        "root_execution_id": None,
        "state": "RUNNING",
        "state_info": None,
        "input": dict(input),
        "output": {},
        "project_id": PROJECT,
        "created_at": now,
        "updated_at": now,
    }


def task(execution: Mapping[str, Any], name: str, state: str, now: str) -> dict[str, Any]:
    """A task execution of `execution`, its id "EXECUTION-NAME"."""
    done = state in TERMINAL
    return {
        "id": "%s-%s" % (execution["id"], name),
        "name": name,
        "type": "ACTION",
        "workflow_name": execution.get("workflow_name"),
        "workflow_namespace": execution.get("workflow_namespace", ""),
        "workflow_execution_id": execution["id"],
        "state": state,
        "state_info": None,
        "result": None,
        "published": {},
        "runtime_context": {},
        "processed": done,
        "reset": False,
        "created_at": now,
        "started_at": now,
        "finished_at": now if done else None,
        "updated_at": now,
    }


def action(task: Mapping[str, Any], name: str, state: str, now: str) -> dict[str, Any]:
    """An action execution of `task` (without its id)."""
    return {
        "name": name,
        "state": state,
        "state_info": None,
        "task_execution_id": task["id"],
        "workflow_name": task.get("workflow_name"),
        "accepted": state in TERMINAL,
        "input": {},
        "output": {},
        "last_heartbeat": now,
        "created_at": now,
        "updated_at": now,
    }


def report(
    root: Mapping[str, Any],
    executions: Mapping[str, Mapping[str, Any]],
    tasks: Mapping[str, list[dict[str, Any]]],
    actions: Mapping[str, Mapping[str, Any]],
    errors_only: bool,
    max_depth: int | None,
) -> dict[str, Any]:
    """GET /v2/executions/ID/report: the tasks (only failed ones with
    `errors_only`), their action executions and sub-workflows, nested, and
    counts by state."""
    counts = dict.fromkeys(("RUNNING", "SUCCESS", "ERROR", "PAUSED", "IDLE"), 0)

    def entry(ex: Mapping[str, Any], depth: int | None) -> dict[str, Any]:
        out = {k: ex[k] for k in ("id", "state", "state_info", "created_at", "updated_at")}
        out.update(name=ex["workflow_name"], task_executions=[])
        for t in tasks.get(ex["id"], []):
            if t["state"] in counts:
                counts[t["state"]] += 1
            if errors_only and t["state"] != "ERROR":
                continue
            subs = [e for e in executions.values() if e["task_execution_id"] == t["id"]]
            deeper = None if depth is None or depth < 0 else depth - 1
            view = {k: t.get(k) for k in ("id", "name", "type", "state", "state_info")}
            view["action_executions"] = [
                {k: a.get(k) for k in ACTION_REPORT_FIELDS}
                for a in actions.values()
                if a.get("task_execution_id") == t["id"]
            ]
            view["workflow_executions"] = [entry(e, deeper) for e in subs if depth != 0]
            out["task_executions"].append(view)
        return out

    tree = entry(root, max_depth)
    stats = {"%s_tasks_count" % s.lower(): n for s, n in counts.items()}
    stats["total_tasks_count"] = sum(counts.values())
    return {"root_workflow_execution": tree, "statistics": stats}
