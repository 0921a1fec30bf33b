"""Comparing two executions of one corpus case: the bridge's run and the same
case started directly on the engine. They are different executions, so what
names them (ids, timestamps, namespaces, the bridge's own params and env
key, its callback secret) is replaced by placeholders before comparing; what
the workflow did (final state, output, tasks) must be the same.

A case's `compare:` in the manifest names the parts the engine itself does
not repeat from run to run (random or time-based output, races between
parallel branches), each with its reason; those parts are compared loosely
(see LOOSE below and docs/corpus.md)."""

import json
import re
from collections import Counter
from dataclasses import dataclass

from st2bridge import redact
from st2bridge.callbacks import secrets, webhook
from st2bridge.launch import ENV_EXECUTION_ID

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
# str() of a callback URL the bridge puts in params.notify: its port and path differ per run.
CALLBACK_URL = re.compile(r"https?://[^\s'\"]+/callbacks?/[^\s'\"]*")
# The bridge's env key as str() of a dict shows it (an error text quoting the context).
ENV_KEY_IN_TEXT = re.compile(
    r"""(['"]%s['"]\s*:\s*['"][^'"]*['"](\s*,\s*)?)|(\s*,\s*['"]%s['"]\s*:\s*['"][^'"]*['"])"""
    % (ENV_EXECUTION_ID, ENV_EXECUTION_ID)
)
# An action execution's id as the engine's error texts name it (the run's own).
ACTION_ID_IN_TEXT = re.compile(r"(action_ex_id=)" + UUID.pattern, re.I)
# A Python object's repr in an error text: its address is the engine process's.
OBJECT_ADDRESS = re.compile(r"(object at )0x[0-9a-f]+", re.I)
# A run's namespace: corpus_<token>_<n> (bridge) or direct_<token>_<n>.
NAMESPACE = re.compile(r"\b(corpus|direct)_[0-9a-f]{6}_\d+\b")

# The parts `compare:` may name, and what "loosely" keeps of each.
LOOSE = {
    "output": "the same keys (the values differ run to run)",
    "tasks": "the same tasks by path and name (states and counts differ run to run)",
    "state": "not compared (the outcome itself differs run to run)",
}


@dataclass
class Outcome:
    """What one execution of a case ended with, ready to compare."""

    state: str
    output: object
    tasks: list  # sorted (workflow path, task name, state), one per task execution


def normalize(value, ids=frozenset()):
    """`value` with the run's own `ids` (its executions' and tasks'),
    timestamps, namespaces, the bridge's params and env key and its callback
    secret replaced by placeholders. Other UUIDs stay: a workflow's uuid()
    differs run to run, and says so in the manifest's `compare:`."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == ENV_EXECUTION_ID or key == "notify":
                continue  # the bridge's own: documented in docs/operations.md
            if key == "__execution":
                out[key] = "<execution>"
            elif key == webhook.SECRET_HEADER:
                out[key] = "<secret>"
            else:
                out[key] = normalize(item, ids)
        if out.get("env") == {}:
            del out["env"]  # the bridge's key alone, or none (the direct run may have no env)
        return out
    if isinstance(value, list):
        return [normalize(v, ids) for v in value]
    if isinstance(value, str):
        text = secrets.mask(value)
        text = text.replace(redact.MASK, "<secret>")
        text = CALLBACK_URL.sub("<callback-url>", text)
        text = ENV_KEY_IN_TEXT.sub("", text)
        text = ACTION_ID_IN_TEXT.sub(r"\1<id>", text)
        text = OBJECT_ADDRESS.sub(r"\1<address>", text)
        text = UUID.sub(lambda m: "<id>" if m.group(0).lower() in ids else m.group(0), text)
        text = TIMESTAMP.sub("<time>", text)
        return NAMESPACE.sub("<namespace>", text)
    return value


def parse_output(text):
    output = json.loads(text or "{}")
    return output if isinstance(output, dict) else {}


def task_list(executions, tasks):
    """Sorted (path of workflow names from the root down to the task's
    workflow, task name, state), one row per task execution."""
    by_id = {ex["id"]: ex for ex in executions}
    parent_of_task = {t["id"]: t["workflow_execution_id"] for t in tasks}

    def path(ex_id, depth=0):
        ex = by_id.get(ex_id)
        if ex is None or depth > 20:
            return ("?",)
        parent_task = ex.get("task_execution_id")
        above = (
            path(parent_of_task[parent_task], depth + 1) if parent_task in parent_of_task else ()
        )
        return above + (ex["workflow_name"],)

    return sorted(
        (" / ".join(path(t["workflow_execution_id"])), t["name"], t["state"]) for t in tasks
    )


def outcome(engine, root_id, output=None):
    """The Outcome of an execution as the engine holds it (its tree);
    `output`: the record's, instead of the engine's, for the bridge's run."""
    root = engine.execution(root_id)
    subs = engine.sub_executions(root_id)
    tasks = engine.tasks_tree(root_id)
    ids = frozenset(row["id"].lower() for row in [root] + subs + tasks)
    return Outcome(
        state=root["state"],
        output=normalize(parse_output(root["output"]) if output is None else output, ids),
        tasks=task_list([root] + subs, tasks),
    )


def differences(bridge_run, direct_run, loose):
    """Problems, one line each, between the bridge's run and the direct one;
    `loose`: the case's `compare:` ({part: reason})."""
    problems = []
    if "state" not in loose and bridge_run.state != direct_run.state:
        problems.append(
            "direct run ended %s, the bridge's run %s" % (direct_run.state, bridge_run.state)
        )
    ours, theirs = bridge_run.output, direct_run.output
    if "output" in loose:
        ours, theirs = sorted(ours), sorted(theirs)
    if ours != theirs:
        problems.append(
            "output differs from the direct run's: bridge %.300s, direct %.300s"
            % (json.dumps(ours, sort_keys=True), json.dumps(theirs, sort_keys=True))
        )
    ours, theirs = bridge_run.tasks, direct_run.tasks
    if "tasks" in loose:
        ours, theirs = sorted({r[:2] for r in ours}), sorted({r[:2] for r in theirs})
    if ours != theirs:
        extra = Counter(ours) - Counter(theirs)
        missing = Counter(theirs) - Counter(ours)
        problems.append(
            "tasks differ from the direct run's (%d vs %d): only in the bridge's %.300s, "
            "only in the direct %.300s" % (len(ours), len(theirs), sorted(extra), sorted(missing))
        )
    return problems
