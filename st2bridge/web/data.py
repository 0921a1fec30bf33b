"""What the web view shows, read from the store and (for details) the engine.

Read-only: only store reads and engine GETs. When the engine cannot be
reached, an execution page falls back to the record's own task view and says
so instead of failing.
"""

import logging
import time

import yaml

from st2bridge import errors, errortree, redact, results, taskview, text, workflow
from st2bridge import status as st
from st2bridge.callbacks import secrets
from st2bridge.tracker import stuckview
from st2bridge.web import graph as graphs

LOG = logging.getLogger("st2bridge.web")
MAX_DEPTH = 3


def duration(record, now):
    """Bridge clock only; None rather than a negative or false figure."""
    seconds = results.duration(record, now)
    return None if seconds is None else round(seconds, 3)


def row(record, now):
    return {
        "id": record["id"],
        "workflow_name": record.get("workflow_name"),
        "status": record.get("status"),
        "created_at": record.get("created_at"),
        "ended_at": record.get("ended_at"),
        "duration_s": duration(record, now),
        "terminal": st.is_terminal(record.get("status")),
        "error": text.one_line(record.get("error"), first_line=True) or None,
        "stuck": stuckview.view(record),  # null, or signature, since, evidence, command
    }


def list_rows(store, status=None, workflow=None, limit=100, now=None):
    now = time.time() if now is None else now
    records = store.list_executions(
        status=status or None, workflow_name=workflow or None, limit=limit
    )
    return [row(redact.mask_record(r), now) for r in records]


def task_view(task):
    context = task.get("runtime_context") if isinstance(task.get("runtime_context"), dict) else {}
    items = (
        (context.get("with_items") or {}).get("count")
        if isinstance(context.get("with_items"), dict)
        else None
    )
    return {
        "id": task.get("id"),
        "name": task.get("name"),
        "state": task.get("state"),
        "status": st.from_engine(task.get("state")),
        "state_info": task.get("state_info"),
        "items": items,
        "started_at": task.get("started_at"),
        "finished_at": task.get("finished_at"),
        "workflow_execution_id": task.get("workflow_execution_id"),
    }


class Detail:
    """One execution page's data, gathered with few engine requests."""

    def __init__(self, store, engine, execution_id, now=None, with_graphs=True):
        record = store.get_execution(execution_id)  # NotFound propagates
        # Records written before the secret was masked at write time.
        record = dict(
            record,
            output=secrets.mask(record.get("output")),
            error=secrets.mask(record.get("error")),
        )
        # Secret input values never reach a page: masked in the record and in
        # whatever the engine repeats them in (task state_info, the error report).
        self.secrets = redact.input_secrets(record.get("input"))
        self.record = redact.mask_record(record)
        self.store = store
        self.engine = engine
        self._started_with = None  # the parsed definition it was started with
        self.now = time.time() if now is None else now
        self.with_graphs = with_graphs
        self.engine_error = None
        self._definitions = {}
        root = self.record.get("engine_execution_id")
        self.subs = {}  # task id -> [sub execution]
        self.tasks = {}  # workflow execution id -> [task view]
        try:
            if root and self.record.get("status") != st.REQUESTED:
                for sub in engine.list_executions(
                    root_execution_id=root,
                    fields=taskview.SUB_FIELDS,
                ):
                    if sub.get("id") != root:
                        self.subs.setdefault(sub.get("task_execution_id"), []).append(sub)
                self.tasks[root] = [
                    self._view(t) for t in engine.list_tasks(root, fields=taskview.READ_FIELDS)
                ]
        except errors.BridgeError as exc:
            self.engine_error = str(exc)
            self.subs = {}
            self.tasks = {}
            for t in self.record.get("tasks") or []:
                self.tasks.setdefault(t.get("workflow_execution_id") or root, []).append(
                    task_view(t)
                )
        self.failure = self._failure(root)

    def _view(self, task):
        return redact.mask_values(task_view(task), self.secrets)

    def _failure(self, root):
        if self.record.get("status") != st.FAILED:
            return None
        tree, leaves = None, []
        if not self.engine_error and root:
            try:
                tree = errortree.from_report(
                    self.engine.execution_report(root), self.record.get("tasks")
                )
                leaves = errortree.failed_leaves(tree)
            except errors.BridgeError as exc:
                LOG.info("no error report for %s: %s", root, exc)
        return redact.mask_values(
            {
                "error": self.record.get("error"),
                "tasks": [
                    {
                        "name": t["name"],
                        "label": t["label"],
                        "id": t["id"],
                        "path": path,
                        "error": t["error"],
                    }
                    for t, path in leaves
                ],
            },
            self.secrets,
        )

    def failed_names(self, execution_id):
        """Names of the tasks in ERROR of one workflow execution."""
        return {t["name"] for t in self.tasks_of(execution_id) if t.get("state") == "ERROR"}

    def tasks_of(self, execution_id):
        if execution_id not in self.tasks and not self.engine_error:
            try:
                self.tasks[execution_id] = [
                    self._view(t)
                    for t in self.engine.list_tasks(execution_id, fields=taskview.READ_FIELDS)
                ]
            except errors.BridgeError as exc:
                LOG.info("tasks of %s: %s", execution_id, exc)
                self.tasks[execution_id] = []
        return self.tasks.get(execution_id, [])

    def graph(self, workflow_name):
        """The task graph of a workflow, or None (with the reason logged):
        drawn from the definition the execution was started with (kept in the
        store), so an edited workflow does not redraw old executions; a
        sub-workflow from another file, from the engine's current definition."""
        if not self.with_graphs or not workflow_name:
            return None
        if workflow_name not in self._definitions:
            try:
                spec = workflow.find_spec(self.started_with(), workflow_name)
                if spec is None:
                    spec = self._from_engine(workflow_name)
                self._definitions[workflow_name] = (
                    graphs.build(spec, workflow_name) if spec is not None else None
                )
            except (errors.BridgeError, ValueError, yaml.YAMLError) as exc:
                LOG.info("no graph for workflow %s: %s", workflow_name, exc)
                self._definitions[workflow_name] = None
        return self._definitions[workflow_name]

    def started_with(self):
        """The parsed definition the execution was started with, or None
        (records from before definitions were kept, or a store without it)."""
        if self._started_with is None:
            self._started_with = False
            definition_id = self.record.get("definition_id")
            if definition_id:
                try:
                    text = self.store.get_definition(definition_id)["text"]
                    self._started_with = yaml.safe_load(text)
                except (errors.BridgeError, yaml.YAMLError) as exc:
                    LOG.info("definition %s of %s: %s", definition_id, self.record["id"], exc)
        return self._started_with or None

    def _from_engine(self, workflow_name):
        if self.engine_error:
            return None
        namespace = self.record.get("namespace") or None
        try:
            found = self.engine.get_workflow(workflow_name, namespace=namespace)
        except errors.EngineNotFound:
            if not namespace:
                raise
            found = self.engine.get_workflow(workflow_name)  # as Mistral: then the default one
        return workflow.find_spec(yaml.safe_load(found.get("definition") or ""), workflow_name)

    def tree(self, execution_id=None, workflow_name=None, depth=0, instance=None):
        """{execution_id, workflow, graph, tasks, subs: {task name: [tree]},
        instance}: `instance` tells a with-items run apart ("1 host=web2")."""
        execution_id = execution_id or self.record.get("engine_execution_id")
        workflow_name = workflow_name or self.record.get("workflow_name")
        tasks = self.tasks_of(execution_id)
        node = {
            "execution_id": execution_id,
            "workflow": workflow_name,
            "graph": self.graph(workflow_name),
            "tasks": tasks,
            "subs": {},
            "instance": instance,
        }
        if depth < MAX_DEPTH:
            for task in tasks:
                runs = [(taskview.sub_info(sub), sub) for sub in self.subs.get(task.get("id"), [])]
                for info, sub in sorted(runs, key=lambda p: (p[0]["index"] or 0, p[1]["id"])):
                    label = None
                    if task.get("items") is not None:
                        label = " ".join(
                            str(v) for v in (info["index"], info["item"]) if v is not None
                        )
                    node["subs"].setdefault(task["name"], []).append(
                        self.tree(sub["id"], sub.get("workflow_name"), depth + 1, label)
                    )
        return node

    def live(self):
        """The small JSON the page polls: status and every task's state."""
        root = self.record.get("engine_execution_id")
        out = {"execution": row(self.record, self.now), "tasks": {}}
        stack = [root]
        seen = set()
        while stack and len(seen) < 50:
            wf = stack.pop()
            if wf in seen:
                continue
            seen.add(wf)
            views = self.tasks_of(wf)
            out["tasks"][wf or ""] = {
                t["name"]: {"state": t["state"], "items": t["items"]} for t in views
            }
            for t in views:
                stack.extend(s["id"] for s in self.subs.get(t.get("id"), []))
        out["engine_error"] = self.engine_error
        return out
