"""The record's task view: every task of an execution and of its sub-workflows,
as the engine holds them, each labelled so that instances are told apart.

A row is what the record keeps of one engine task (no result payloads):

    id, name, state, status, state_info, type, created_at, updated_at,
    started_at, finished_at      as the engine gave them (engine clock)
    workflow_execution_id, workflow_name   the workflow execution it ran in
    items                        with-items iterations of the task, or None
    parent_task_id               the task that ran this row's sub-workflow
    index, item                  that sub-workflow's with-items index and its
                                 input in short ("host=web2"), or None
    label                        "deploy[1 host=web2] > migrate": the path of
                                 parent tasks; just the name for root tasks

Rows come from the engine (read_tree) or from callbacks (row of an event,
no labels until the next read). `later()` says which of two views of one
task is the engine's later state; `merge()` combines a fresh read with what
the record holds, so a callback processed after the read is never undone.
"""

import json
import weakref

from st2bridge import concurrency
from st2bridge import status as st
from st2bridge.callbacks import secrets
from st2bridge.engine import answers

TASK_FIELDS = [
    "id",
    "name",
    "state",
    "state_info",
    "type",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "workflow_execution_id",
]
# runtime_context tells with-items tasks (and their count); it is not kept.
READ_FIELDS = TASK_FIELDS + ["runtime_context"]
# `params` holds the with-items index (and the webhook, secret included: only
# the index is taken from it, nothing else is kept).
SUB_FIELDS = ["id", "workflow_name", "task_execution_id", "state", "updated_at", "params", "input"]
# What an event or a re-read changes in a row (labels stay).
STATE_KEYS = ("state", "status", "state_info", "updated_at", "started_at", "finished_at", "type")

TERMINAL = frozenset({"SUCCESS", "ERROR", "CANCELLED", "SKIPPED"})
ITEM_WIDTH = 40


# -- rows ---------------------------------------------------------------------


def row(task, workflow_name=None):
    """A row from an engine task or a task event (labels unset)."""
    view = {key: task.get(key) for key in TASK_FIELDS}
    view["state_info"] = secrets.mask(view["state_info"])  # a failed task may quote params
    view["status"] = st.from_engine(task.get("state"))
    view["workflow_name"] = task.get("workflow_name") or workflow_name
    context = task.get("runtime_context")
    with_items = context.get("with_items") if isinstance(context, dict) else None
    view["items"] = with_items.get("count") if isinstance(with_items, dict) else None
    view.update(parent_task_id=None, index=None, item=None, label=None)
    return view


def open_count(rows):
    """Tasks not in a final state."""
    return sum(1 for r in rows or () if r.get("state") not in TERMINAL)


def item_text(value):
    """A sub-workflow's input in short: 'host=web2, port=22'."""
    if not isinstance(value, dict) or not value:
        return None
    text = ", ".join(
        "%s=%s" % (k, v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in sorted(value.items())
    )
    return text if len(text) <= ITEM_WIDTH else text[: ITEM_WIDTH - 3] + "..."


def display_label(r, root=None):
    """The label to show: the read's label, or for a sub-workflow task seen
    only in callbacks so far, its workflow's name and short id."""
    if r.get("label"):
        return r["label"]
    workflow_id = r.get("workflow_execution_id")
    if root and workflow_id and workflow_id != root:
        return "%s(%s) > %s" % (r.get("workflow_name") or "?", workflow_id[:8], r.get("name"))
    return r.get("name") or ""


# -- reading the engine -----------------------------------------------------------


def read_tree(engine, root, previous=None):
    """Every task of `root` and of its sub-workflows (any depth), labelled and
    ordered (each workflow's tasks by creation, a sub-workflow's tasks right
    after the task that ran it). Engine answers are checked (EngineMalformed).

    `previous`: rows the record holds. A sub-workflow that has ended and whose
    recorded tasks have all ended is not listed again (for progress; the
    final read passes none)."""
    tasks = answers.tasks(engine.list_tasks(root, fields=READ_FIELDS), root, READ_FIELDS)
    rows = [row(t) for t in tasks]
    subs = {}
    if any(t.get("type") == "WORKFLOW" for t in tasks):
        known = {}
        for r in previous or ():
            known.setdefault(r.get("workflow_execution_id"), []).append(r)
        listed = engine.list_executions(root_execution_id=root, fields=SUB_FIELDS)
        for sub in answers.sub_executions(list(listed), root):
            if sub["id"] == root:
                continue
            subs[sub["id"]] = sub_info(sub)
            old = known.get(sub["id"])
            if old and sub["state"] in st.ENGINE_TERMINAL and not open_count(old):
                rows.extend(dict(r) for r in old)
                continue
            found = answers.tasks(
                engine.list_tasks(sub["id"], fields=READ_FIELDS), sub["id"], READ_FIELDS
            )
            rows.extend(row(t, sub.get("workflow_name")) for t in found)
    return ordered(labelled(rows, root, subs), root)


def sub_info(sub):
    """What labels need of a sub-workflow execution (listed with SUB_FIELDS)."""
    params = sub.get("params") if isinstance(sub.get("params"), dict) else {}
    index = params.get("index")
    return {
        "task_execution_id": sub.get("task_execution_id"),
        "workflow_name": sub.get("workflow_name"),
        "index": index if isinstance(index, int) else None,
        "item": item_text(sub.get("input")),
    }


def labelled(rows, root, subs):
    """Set parent_task_id, index, item and label on every row."""
    by_id = {r["id"]: r for r in rows}

    def prefix(workflow_id, depth=0):
        sub = subs.get(workflow_id)
        if workflow_id == root or sub is None or depth > 50:
            return ""
        parent = by_id.get(sub["task_execution_id"])
        if parent is None:
            return "%s > " % (sub["workflow_name"] or "?")
        part = parent.get("name") or "?"
        if parent.get("items") is not None:
            part += "[%s]" % " ".join(str(p) for p in (sub["index"], sub["item"]) if p is not None)
        return prefix(parent.get("workflow_execution_id"), depth + 1) + part + " > "

    for r in rows:
        sub = subs.get(r.get("workflow_execution_id"))
        parent = by_id.get(sub["task_execution_id"]) if sub else None
        with_items = parent is not None and parent.get("items") is not None
        r["parent_task_id"] = sub["task_execution_id"] if sub else None
        r["index"] = sub["index"] if with_items else None
        r["item"] = sub["item"] if with_items else None
        r["label"] = prefix(r.get("workflow_execution_id")) + (r.get("name") or "")
    return rows


def ordered(rows, root):
    """Each workflow's tasks by creation, a sub-workflow's after its parent."""
    children = {}
    for r in rows:
        children.setdefault(r.get("workflow_execution_id"), []).append(r)
    runs = {}  # parent task id -> its sub-workflow executions, by with-items index
    for wf_id, wf_rows in children.items():
        parent = wf_rows[0].get("parent_task_id")
        if parent:
            runs.setdefault(parent, []).append((wf_rows[0].get("index") or 0, wf_id))
    out, placed = [], set()

    def add(wf_id, depth=0):
        if wf_id in placed or depth > 50:
            return
        placed.add(wf_id)
        for r in sorted(children.get(wf_id, ()), key=lambda r: r.get("created_at") or ""):
            out.append(r)
            for _, sub_id in sorted(runs.get(r["id"], ()), key=lambda p: (p[0], p[1] or "")):
                add(sub_id, depth + 1)

    add(root)
    for wf_id in children:  # rows whose place is not known yet (callbacks)
        add(wf_id)
    return out


# -- which view is later ----------------------------------------------------------


def later(known, new):
    """Which of two views of one task holds the engine's later state: "new",
    "known", "same", or None when the engine's one-second timestamps cannot
    tell (then re-read the task).

    A later updated_at wins. Within one second: a final state beats a
    non-final one (the engine finishes a task after launching it; a re-run
    within the same second is the rare exception), ERROR beats SUCCESS (a
    task that succeeded fails when its publish or transition fails, never
    the other way round without running again); any other pair (RUNNING
    and IDLE at a pause-before, two different final states) is undecided."""
    ks, ns = known.get("state"), new.get("state")
    ku, nu = known.get("updated_at") or "", new.get("updated_at") or ""
    if ku[:19] != nu[:19]:
        return "new" if nu[:19] > ku[:19] else "known"
    if ks == ns:
        return "same"
    if (ks in TERMINAL) != (ns in TERMINAL):
        return "new" if ns in TERMINAL else "known"
    if {ks, ns} == {"SUCCESS", "ERROR"}:
        return "new" if ns == "ERROR" else "known"
    return None


def merge(recorded, fresh, reread=None):
    """The rows to record after a fresh read: the engine's rows, except where
    the record holds a later state of a task (a callback processed after the
    read); where `later()` cannot tell, `reread(task_id)` (a row or None)
    decides, else the fresh row. Recorded rows the read did not see (tasks
    created since) are kept."""
    by_id = {r.get("id"): r for r in recorded or ()}
    out, seen = [], set()
    for f in fresh:
        seen.add(f["id"])
        k = by_id.get(f["id"])
        pick = f
        if k is not None:
            which = later(k, f)
            if which == "known":
                pick = dict(f, **{key: k.get(key) for key in STATE_KEYS})
            elif which is None and reread is not None:
                again = reread(f["id"])
                if again is not None:
                    pick = dict(f, **{key: again.get(key) for key in STATE_KEYS})
        out.append(pick)
    out.extend(r for r in recorded or () if r.get("id") not in seen)
    return out


# -- one writer at a time per execution (in this process) ---------------------------

_locks = weakref.WeakValueDictionary()
_locks_guard = concurrency.current().lock()


def lock(execution_id):
    """The lock that serialises task-view writes of one execution in this
    process (callbacks, the poller, result fetches): each reads the rows,
    merges and writes them back."""
    with _locks_guard:
        found = _locks.get(execution_id)
        if found is None:
            found = _locks[execution_id] = concurrency.current().rlock()
        return found
