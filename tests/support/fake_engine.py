"""An in-memory stand-in for MistralClient, for unit tests only.

It keeps workflows, executions and tasks in dicts and lets a test move an
execution through states. The real engine is exercised by tests/integration.
"""

import itertools

from st2bridge import errors

_clock = itertools.count(1)


def _stamp():
    # Mistral's one-second-resolution timestamps; a counter keeps them distinct.
    n = next(_clock)
    return "2026-11-21 12:%02d:%02d" % (n // 60 % 60, n % 60)


class FakeEngine:
    def __init__(self, clock=None):
        # With a clock, updated_at follows it (one-second resolution, like
        # Mistral); without one, a counter keeps timestamps distinct.
        self.clock = clock
        self.workflows = {}  # (namespace, name) -> workflow resource
        self.workbooks = {}  # (namespace, name) -> workbook resource
        self.environments = {}  # name -> variables
        self.executions = {}
        self.tasks = {}  # execution id -> list of task dicts
        self.calls = []
        self.fail_next = []  # exceptions raised by the next calls, in order
        # method name -> the answer it gives instead (a lying engine: `{}`)
        self.malformed = {}
        self.reports = {}  # execution id -> the task tree execution_tree() returns
        self.offset = 0.0  # clock_offset(): how far the engine's clock is ahead
        self.action_executions = {}  # id -> action execution (complete_action_execution)

    def _call(self, name, *args):
        self.calls.append((name,) + args)
        if self.fail_next:
            exc = self.fail_next.pop(0)
            if exc is not None:
                raise exc

    # -- workflows (keyed by (namespace, name); "" is the default namespace)
    def get_workflow(self, name, namespace=None):
        self._call("get_workflow", name)
        key = (namespace or "", name)
        if key not in self.workflows:
            raise errors.EngineNotFound("workflow %s not found" % name, 404)
        return self.workflows[key]

    def _put(self, text, namespace, prefix=""):
        import yaml

        doc = yaml.safe_load(text)
        section = doc["workflows"] if prefix else doc
        names = [k for k in section if k not in ("version", "name", "description", "tags")]
        for n in names:
            self.workflows[(namespace or "", prefix + n)] = {
                "name": prefix + n,
                "namespace": namespace or "",
                "definition": yaml.safe_dump({n: section[n]}) if prefix else text,
            }
        return [self.workflows[(namespace or "", prefix + n)] for n in names]

    def create_workflows(self, text, namespace=None):
        self._call("create_workflows", text)
        import yaml

        doc = yaml.safe_load(text)
        if any((namespace or "", k) in self.workflows for k in doc if k != "version"):
            raise errors.EngineConflict("duplicate workflow", 409)
        return self._put(text, namespace)

    def update_workflows(self, text, namespace=None):
        self._call("update_workflows", text)
        return self._put(text, namespace)

    # -- workbooks and environments
    def get_workbook(self, name, namespace=None):
        self._call("get_workbook", name)
        if (namespace or "", name) not in self.workbooks:
            raise errors.EngineNotFound("workbook %s not found" % name, 404)
        return self.workbooks[(namespace or "", name)]

    def create_workbook(self, text, namespace=None):
        self._call("create_workbook", text)
        import yaml

        name = yaml.safe_load(text)["name"]
        if (namespace or "", name) in self.workbooks:
            raise errors.EngineConflict("duplicate workbook", 409)
        return self.update_workbook(text, namespace, count=False)

    def update_workbook(self, text, namespace=None, count=True):
        if count:
            self._call("update_workbook", text)
        import yaml

        name = yaml.safe_load(text)["name"]
        self.workbooks[(namespace or "", name)] = {"name": name, "definition": text}
        self._put(text, namespace, prefix=name + ".")
        return self.workbooks[(namespace or "", name)]

    def get_environment(self, name):
        self._call("get_environment", name)
        if name not in self.environments:
            raise errors.EngineNotFound("Environment not found [name=%s]" % name, 404)
        return {"name": name, "variables": self.environments[name]}

    # -- executions
    def start_execution(
        self,
        workflow_name,
        input=None,
        *,
        execution_id,
        params=None,
        description="",
        namespace=None,
    ):
        self._call("start_execution", workflow_name, execution_id)
        if (namespace or "", workflow_name) not in self.workflows:
            raise errors.EngineBadRequest("workflow %s not found" % workflow_name, 400)
        if execution_id not in self.executions:
            self.executions[execution_id] = {
                "id": execution_id,
                "workflow_name": workflow_name,
                "workflow_namespace": namespace or "",
                "state": "RUNNING",
                "state_info": None,
                "input": input or {},
                "output": {},
                "params": params,
                "created_at": self._stamp(),
                "description": description,
                "updated_at": self._stamp(),
            }
            self.tasks[execution_id] = []
        return dict(self.executions[execution_id])

    def get_execution(self, execution_id, fields=None):
        self._call("get_execution", execution_id, tuple(fields or ()))
        if "get_execution" in self.malformed:
            return self.malformed["get_execution"]
        if execution_id not in self.executions:
            raise errors.EngineNotFound("execution %s not found" % execution_id, 404)
        ex = self.executions[execution_id]
        return {k: ex.get(k) for k in fields} if fields else dict(ex)

    def list_executions(self, fields=None, updated_at=None, nulls=None, **filters):
        self._call("list_executions", updated_at, tuple(sorted(filters.items())))
        if "list_executions" in self.malformed:
            return self.malformed["list_executions"]
        since = updated_at.split(":", 1)[1] if updated_at else ""
        root = filters.get("root_execution_id")
        return [
            {k: ex.get(k) for k in fields} if fields else dict(ex)
            for ex in self.executions.values()
            if ex["updated_at"] >= since
            and (root is None or ex.get("root_execution_id") == root)
            and (nulls != "task_execution_id" or not ex.get("task_execution_id"))
        ]

    def list_tasks(self, execution_id, fields=None):
        self._call("list_tasks", execution_id)
        if "list_tasks" in self.malformed:
            return self.malformed["list_tasks"]
        return [dict(t) for t in self.tasks.get(execution_id, [])]

    def update_execution_state(self, execution_id, state, state_info=None):
        """Like Mistral: pause/resume/cancel a live execution; a finished one
        answers 400. (No sub-workflows here: Mistral cascades on its own.)"""
        self._call("update_execution_state", execution_id, state)
        if execution_id not in self.executions:
            raise errors.EngineNotFound("execution %s not found" % execution_id, 404)
        ex = self.executions[execution_id]
        if ex["state"] in ("SUCCESS", "ERROR", "CANCELLED"):
            raise errors.EngineBadRequest(
                "Can't change state from %s to %s" % (ex["state"], state), 400
            )
        if not (state == "RUNNING" and ex["state"] != "PAUSED"):
            self.set_state(execution_id, state, state_info=state_info)
        return dict(ex)

    def get_task(self, task_id):
        self._call("get_task", task_id)
        for tasks in self.tasks.values():
            for task in tasks:
                if task["id"] == task_id:
                    return dict(task)
        raise errors.EngineNotFound("task %s not found" % task_id, 404)

    def rerun_task(self, task_id, reset=True):
        self._call("rerun_task", task_id, reset)
        task = next((t for ts in self.tasks.values() for t in ts if t["id"] == task_id), None)
        if task is None:
            raise errors.EngineNotFound("task %s not found" % task_id, 404)
        if task["state"] != "ERROR":
            raise errors.EngineBadRequest("The current task execution must be in ERROR", 400)
        task.update(state="RUNNING", updated_at=self._stamp())
        self.set_state(task["workflow_execution_id"], "RUNNING")
        return dict(task)

    # -- stuck executions
    def execution_tree(self, execution_id):
        self._call("execution_tree", execution_id)
        if execution_id not in self.executions:
            raise errors.EngineNotFound("execution %s not found" % execution_id, 404)
        return self.reports.get(execution_id) or {
            "root_workflow_execution": dict(self.executions[execution_id], task_executions=[])
        }

    def clock_offset(self):
        return self.offset

    def get_action_execution(self, action_execution_id):
        self._call("get_action_execution", action_execution_id)
        if action_execution_id not in self.action_executions:
            raise errors.EngineNotFound("action execution %s not found" % action_execution_id)
        return dict(self.action_executions[action_execution_id])

    def complete_action_execution(self, action_execution_id, state, output):
        self._call("complete_action_execution", action_execution_id, state)
        action = self.action_executions.get(action_execution_id)
        if action is None:
            raise errors.EngineNotFound("action execution %s not found" % action_execution_id)
        if action["state"] != "RUNNING":
            raise errors.EngineServerError("Action is already completed", 500)
        action.update(state=state, output=output)
        return dict(action)

    # -- test controls
    def set_state(self, execution_id, state, output=None, state_info=None):
        ex = self.executions[execution_id]
        ex.update(state=state, updated_at=self._stamp(), state_info=state_info)
        if output is not None:
            ex["output"] = output

    def add_task(self, execution_id, name, state, type="ACTION", with_items=None):
        """A task; `with_items`: its iteration count (runtime_context)."""
        task = {
            "id": "%s-%s" % (execution_id, name),
            "name": name,
            "state": state,
            "workflow_execution_id": execution_id,
            "workflow_name": self.executions.get(execution_id, {}).get("workflow_name"),
            "state_info": None,
            "type": type,
            "created_at": self._stamp(),
            "updated_at": self._stamp(),
            "started_at": None,
            "finished_at": None,
            "runtime_context": {"with_items": {"count": with_items}} if with_items else {},
        }
        self.tasks[execution_id].append(task)
        return task

    def add_sub(self, parent_task_id, workflow_name, index=0, input=None, state="RUNNING"):
        """A sub-workflow execution run by task `parent_task_id` (Mistral
        puts the with-items index in its params); returns its id."""
        parent = next(t for ts in self.tasks.values() for t in ts if t["id"] == parent_task_id)
        above = self.executions[parent["workflow_execution_id"]]
        root = above.get("root_execution_id") or above["id"]
        sub_id = "%s-sub%d" % (parent_task_id, index)
        self.executions[sub_id] = {
            "id": sub_id,
            "workflow_name": workflow_name,
            "state": state,
            "state_info": None,
            "input": input or {},
            "output": {},
            "params": {"index": index, "task_execution_id": parent_task_id, "notify": "secret"},
            "task_execution_id": parent_task_id,
            "root_execution_id": root,
            "created_at": self._stamp(),
            "updated_at": self._stamp(),
        }
        self.tasks[sub_id] = []
        return sub_id

    def set_task(self, task_id, state, updated_at=None, state_info=None):
        task = next(t for ts in self.tasks.values() for t in ts if t["id"] == task_id)
        task.update(state=state, updated_at=updated_at or self._stamp(), state_info=state_info)
        return dict(task)

    def _stamp(self):
        if self.clock is None:
            return _stamp()
        import time

        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock()))

    def count(self, name):
        return sum(1 for c in self.calls if c[0] == name)
