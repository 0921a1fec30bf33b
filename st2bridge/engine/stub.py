"""StubEngine: an in-memory engine that answers like Mistral 23 (st2bridge.engine.base).

It passes the same contract suite as MistralClient (tests/unit/test_engine_contract.py):
the error classes for unknown names and ids, idempotent starts with the caller's
execution id, exact namespaces, input checks, Mistral's state changes and re-run
rules (st2bridge/engine/stub_rules.py), one-second UTC timestamps, change listings.
Nothing runs by itself: an execution stays RUNNING, without tasks, until the test
(or the developer) moves it:

    import uuid
    from st2bridge.engine.stub import StubEngine

    engine = StubEngine()
    engine.create_workflows("version: '2.0'\\nhello:\\n  tasks:\\n    t1: {action: std.noop}\\n")
    ex = engine.start_execution("hello", {}, execution_id=str(uuid.uuid4()))
    engine.add_task(ex["id"], "t1", "SUCCESS")
    engine.set_state(ex["id"], "SUCCESS", output={"greeting": "hi"})
    # then hand `engine` to a Runner, a Poller, the web view, ...

Controls (not part of the engine interface): `set_state`, `add_task`,
`set_task_state`, `add_action`, `add_sub_execution`, `environments` (name ->
variables), `reports` (execution id -> a task tree execution_tree answers instead
of the one built from the state), `offset` (what clock_offset answers).
To look at: `calls` (one tuple per request, its name first), `count(name)`, and
the state itself (`workflows` and `workbooks` by (namespace, name), `executions`
by id, `tasks` by execution id, `action_executions` by id; "" is the default
namespace). `fail_next`: what
the next requests raise, in order (None lets one through): an engine that is down
or refuses. `clock`: where timestamps come from (time.time unless given).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from st2bridge import concurrency, errors
from st2bridge.engine import stub_rules as rules
from st2bridge.engine.base import Resource
from st2bridge.engine.http_errors import STATUS_ERRORS
from st2bridge.engine.stub_definitions import Definitions
from st2bridge.engine.stub_rules import TERMINAL, Refused


class StubEngine:
    """See the module docstring. Thread-safe: one lock around every request."""

    display_url = "stub://engine"

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.time
        self.defs = Definitions()
        # The same objects, by the names tests look them up with.
        self.workflows, self.workbooks = self.defs.workflows, self.defs.workbooks
        self.environments = self.defs.environments
        self.executions: dict[str, Resource] = {}
        self.tasks: dict[str, list[Resource]] = {}  # execution id -> its task executions
        self.action_executions: dict[str, Resource] = {}
        self.reports: dict[str, Resource] = {}
        self.offset = 0.0
        self.calls: list[tuple[Any, ...]] = []
        self.fail_next: list[BaseException | None] = []
        # method name -> the answer it gives instead of the right one (a lying
        # engine: `{}` to get_execution, a row without fields to a listing)
        self.malformed: dict[str, Any] = {}
        self.error_counts: dict[str, int] = {}
        self._lock = concurrency.current().rlock()

    @property
    def request_count(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        return "StubEngine(%d executions)" % len(self.executions)

    def __enter__(self) -> StubEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        pass

    def ping(self) -> bool:
        with self._request("ping the engine", "ping"):
            return True

    # -- workflows, workbooks, environments ------------------------------------

    def get_workflow(self, name: str, namespace: str | None = None) -> Resource:
        with self._request("get workflow %s%s" % (name, _in(namespace)), "get_workflow", name):
            return _copy(self.defs.workflow(name, namespace))

    def list_workflows(
        self, namespace: str | None = None, fields: Sequence[str] | None = None
    ) -> list[Resource]:
        with self._request("list workflows", "list_workflows", namespace):
            return [_only(wf, fields) for wf in self.defs.listed(namespace)]

    def create_workflows(
        self, definition_yaml: str, namespace: str | None = None
    ) -> list[Resource]:
        with self._request(
            "create workflows%s" % _in(namespace), "create_workflows", definition_yaml
        ):
            stored = self.defs.put_workflows(definition_yaml, namespace, self._stamp(), create=True)
            return [_copy(wf) for wf in stored]

    def update_workflows(
        self, definition_yaml: str, namespace: str | None = None
    ) -> list[Resource]:
        with self._request(
            "update workflows%s" % _in(namespace), "update_workflows", definition_yaml
        ):
            stored = self.defs.put_workflows(
                definition_yaml, namespace, self._stamp(), create=False
            )
            return [_copy(wf) for wf in stored]

    def get_workbook(self, name: str, namespace: str | None = None) -> Resource:
        with self._request("get workbook %s%s" % (name, _in(namespace)), "get_workbook", name):
            return _copy(self.defs.workbook(name, namespace))

    def create_workbook(self, definition_yaml: str, namespace: str | None = None) -> Resource:
        with self._request(
            "create workbook%s" % _in(namespace), "create_workbook", definition_yaml
        ):
            return _copy(
                self.defs.put_workbook(definition_yaml, namespace, self._stamp(), create=True)
            )

    def update_workbook(self, definition_yaml: str, namespace: str | None = None) -> Resource:
        with self._request(
            "update workbook%s" % _in(namespace), "update_workbook", definition_yaml
        ):
            return _copy(
                self.defs.put_workbook(definition_yaml, namespace, self._stamp(), create=False)
            )

    def get_environment(self, name: str) -> Resource:
        with self._request("get environment %s" % name, "get_environment", name):
            return _copy(self.defs.environment(name))

    # -- executions ---------------------------------------------------------------

    def start_execution(
        self,
        workflow_name: str,
        input: Mapping[str, Any] | str | None = None,
        *,
        execution_id: str,
        params: Mapping[str, Any] | str | None = None,
        description: str = "",
        namespace: str | None = None,
    ) -> Resource:
        if not execution_id:
            raise ValueError("execution_id is required: it makes the submit safe to repeat")
        action = "start execution %s of workflow %s" % (execution_id, workflow_name)
        with self._request(action, "start_execution", workflow_name, execution_id):
            ex = self.executions.get(execution_id)
            if ex is None:
                wf = self.defs.workflow(workflow_name, namespace)
                given = self.defs.start_input(wf, _object(input))
                params_ = self.defs.start_params(_object(params), wf["namespace"])
                ex = self._new_execution(wf, given, params_, description, execution_id)
            elif workflow_name not in (ex["workflow_name"], ex["workflow_id"]):
                # MistralClient's own check: Mistral returns the execution as it is.
                raise errors.EngineConflict(
                    "%s: the id belongs to an execution of workflow %s"
                    % (action, ex["workflow_name"])
                )
            return _copy(ex)

    def get_execution(self, execution_id: str, fields: Sequence[str] | None = None) -> Resource:
        action = "get execution %s" % execution_id
        with self._request(action, "get_execution", execution_id, tuple(fields or ())):
            if "get_execution" in self.malformed:
                return self.malformed["get_execution"]  # type: ignore[no-any-return]
            return _only(self._execution(execution_id), fields)

    def list_executions(
        self,
        *,
        fields: Sequence[str] | None = None,
        limit: int = 1000,
        sort_keys: Sequence[str] | None = None,
        sort_dirs: Sequence[str] | None = None,
        marker: str | None = None,
        **filters: str,
    ) -> list[Resource]:
        """Every page at once (`limit` is a page size), oldest first as Mistral's
        default order; `sort_keys`/`sort_dirs` are not applied."""
        call = ("list_executions", filters.get("updated_at"), dict(filters))
        with self._request("list executions", *call):
            if "list_executions" in self.malformed:
                return self.malformed["list_executions"]  # type: ignore[no-any-return]
            rules.check_filters(filters)
            rows = [ex for ex in self.executions.values() if rules.matches(ex, filters)]
            rows.sort(key=lambda ex: (ex["created_at"], ex["id"]))
            if marker:
                ids = [ex["id"] for ex in rows]
                rows = rows[ids.index(marker) + 1 :] if marker in ids else []
            return [_only(ex, fields) for ex in rows]

    def update_execution_state(
        self, execution_id: str, state: str, state_info: str | None = None
    ) -> Resource:
        """Sub-workflows are not cascaded here (Mistral does it on its own)."""
        action = "set execution %s to %s" % (execution_id, state)
        with self._request(action, "update_execution_state", execution_id, state):
            ex = self._execution(execution_id)
            if rules.state_change(ex["state"], state, ex):
                self.set_state(execution_id, state, state_info=state_info)
            return _copy(ex)

    def execution_report(
        self, execution_id: str, errors_only: bool = True, max_depth: int | None = None
    ) -> Resource:
        action = "get report of execution %s" % execution_id
        with self._request(action, "execution_report", execution_id):
            ex = self._execution(execution_id)
            report = rules.report(
                ex, self.executions, self.tasks, self.action_executions, errors_only, max_depth
            )
            return _copy(report)

    def execution_tree(self, execution_id: str) -> Resource:
        action = "get the task tree of execution %s" % execution_id
        with self._request(action, "execution_tree", execution_id):
            ex = self._execution(execution_id)
            if execution_id in self.reports:
                return _copy(self.reports[execution_id])
            tree = rules.report(
                ex, self.executions, self.tasks, self.action_executions, False, None
            )
            return _copy(tree)

    def clock_offset(self) -> float | None:
        return self.offset

    # -- tasks ------------------------------------------------------------------

    def list_tasks(
        self, execution_id: str, fields: Sequence[str] | None = None, **filters: str
    ) -> list[Resource]:
        with self._request("list tasks of execution %s" % execution_id, "list_tasks", execution_id):
            if "list_tasks" in self.malformed:
                return self.malformed["list_tasks"]  # type: ignore[no-any-return]
            self._execution(execution_id)
            tasks = self.tasks.get(execution_id, [])
            return [
                _only(t, fields) for t in tasks if all(t.get(k) == v for k, v in filters.items())
            ]

    def get_task(self, task_id: str) -> Resource:
        with self._request("get task %s" % task_id, "get_task", task_id):
            return _copy(self._task(task_id))

    def rerun_task(self, task_id: str, reset: bool = True) -> Resource:
        """Only a task in ERROR, reset=False only for a with-items task (one
        added with with_items=True); its execution and their parents run again."""
        with self._request("rerun task %s" % task_id, "rerun_task", task_id, reset):
            task = self._task(task_id)
            if task["state"] != "ERROR":
                raise Refused(
                    400,
                    "The current task execution must be in ERROR for rerun. "
                    "Only updating task to rerun is supported.",
                )
            if not reset and not task.get("with_items"):
                raise Refused(400, "Only with-items task has the option to not reset.")
            answer = _copy(task)  # as Mistral: the task as it was read
            ex: Resource | None = self.executions.get(task["workflow_execution_id"])
            if ex is not None and ex["state"] == "PAUSED":
                return answer  # a paused workflow is left alone
            self.set_task_state(task_id, "RUNNING")
            while ex is not None:
                self.set_state(ex["id"], "RUNNING")
                parent = self._find_task(ex["task_execution_id"])
                if parent is not None:
                    self.set_task_state(parent["id"], "RUNNING")
                ex = self.executions.get(parent["workflow_execution_id"]) if parent else None
            return answer

    # -- action executions -------------------------------------------------------

    def get_action_execution(self, action_execution_id: str) -> Resource:
        action = "get action execution %s" % action_execution_id
        with self._request(action, "get_action_execution", action_execution_id):
            return _copy(self._action(action_execution_id))

    def complete_action_execution(
        self, action_execution_id: str, state: str, output: Any
    ) -> Resource:
        """As Mistral: a RUNNING action ends with `state` and `output`, and its
        task with it; one that has ended is refused (500). The stub does not go
        on with the workflow: set_state does that."""
        action = "set action execution %s to %s" % (action_execution_id, state)
        with self._request(action, "complete_action_execution", action_execution_id, state):
            found = self._action(action_execution_id)
            if found["state"] in TERMINAL:
                raise Refused(500, "Action %s is already completed" % action_execution_id)
            found.update(state=state, output=output, accepted=True, updated_at=self._stamp())
            task = self._find_task(found.get("task_execution_id"))
            if task is not None and state in TERMINAL:
                self.set_task_state(task["id"], state)
                task["result"] = output
            return _copy(found)

    # -- controls (not part of the engine interface) ------------------------------

    def set_state(
        self,
        execution_id: str,
        state: str,
        output: Mapping[str, Any] | None = None,
        state_info: str | None = None,
    ) -> None:
        """Move an execution to `state` as the engine would (updated_at moves)."""
        with self._lock:
            ex = self.executions[execution_id]
            ex.update(state=state, updated_at=self._stamp(), state_info=state_info)
            if output is not None:
                ex["output"] = dict(output)

    def add_task(
        self, execution_id: str, name: str, state: str, with_items: int | None = None, **fields: Any
    ) -> Resource:
        """Append a task execution (its id "EXECUTION-NAME" unless given);
        `with_items`: its iteration count, as Mistral keeps it."""
        with self._lock:
            ex = self.executions.get(execution_id) or {"id": execution_id}
            task = dict(rules.task(ex, name, state, self._stamp()), **fields)
            if with_items:
                task["runtime_context"] = {"with_items": {"count": with_items}}
            self.tasks.setdefault(execution_id, []).append(task)
            return task

    def set_task_state(self, task_id: str, state: str, state_info: str | None = None) -> None:
        with self._lock:
            task, now = self._task(task_id), self._stamp()
            task.update(state=state, state_info=state_info, updated_at=now)
            task.update(finished_at=now if state in TERMINAL else None, processed=state in TERMINAL)

    def set_task(
        self,
        task_id: str,
        state: str,
        updated_at: str | None = None,
        state_info: str | None = None,
    ) -> Resource:
        """Move a task to `state` (at `updated_at`, default now); its new view."""
        with self._lock:
            self.set_task_state(task_id, state, state_info=state_info)
            task = self._task(task_id)
            if updated_at:
                task["updated_at"] = updated_at
            return _copy(task)

    def add_sub(
        self,
        parent_task_id: str,
        workflow_name: str,
        index: int = 0,
        input: Mapping[str, Any] | None = None,
        state: str = "RUNNING",
    ) -> str:
        """A sub-workflow execution run by a task, as a with-items run of it
        (Mistral puts the index in its params); returns its id."""
        with self._lock:
            ex = self.add_sub_execution(parent_task_id, workflow_name, state=state)
            ex["params"]["index"] = index
            ex["input"] = dict(input or {})
            return str(ex["id"])

    def add_action(
        self, task_id: str, name: str = "std.noop", state: str | None = None, **fields: Any
    ) -> Resource:
        """An action execution of a task (its state the task's unless given)."""
        with self._lock:
            task = self._task(task_id)
            found = rules.action(task, name, state or task["state"], self._stamp())
            found.update(id="%s-act-%d" % (task_id, len(self.action_executions) + 1), **fields)
            self.action_executions[found["id"]] = found
            return found

    def add_sub_execution(
        self, task_id: str, workflow_name: str, state: str = "RUNNING"
    ) -> Resource:
        """The execution of a sub-workflow a task started (the task's type becomes WORKFLOW)."""
        with self._lock:
            task = self._task(task_id)
            task["type"] = "WORKFLOW"
            parent = self.executions[task["workflow_execution_id"]]
            wf = {"id": None, "name": workflow_name, "namespace": parent["workflow_namespace"]}
            ex = self._new_execution(wf, {}, {}, "sub-workflow execution", str(uuid.uuid4()))
            root = parent["root_execution_id"] or parent["id"]
            ex.update(task_execution_id=task_id, root_execution_id=root, state=state)
            ex["params"].update(task_execution_id=task_id, root_execution_id=root)
            return ex

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c[0] == name)

    # -- plumbing -----------------------------------------------------------------

    @contextlib.contextmanager
    def _request(self, action: str, *call: Any) -> Iterator[None]:
        """One request: recorded in `calls`, failed by `fail_next`, Mistral's
        refusals raised as MistralClient raises them, errors counted."""
        with self._lock:
            self.calls.append(call)
            injected = self.fail_next.pop(0) if self.fail_next else None
            try:
                if injected is not None:
                    raise injected
                try:
                    yield
                except Refused as exc:
                    cls = STATUS_ERRORS.get(exc.status) or (
                        errors.EngineServerError if exc.status >= 500 else errors.EngineClientError
                    )
                    raise cls(
                        "%s: %s (HTTP %d)" % (action, exc, exc.status), status=exc.status
                    ) from None
            except errors.EngineError as exc:
                kind = type(exc).__name__
                self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
                raise

    def _new_execution(
        self,
        wf: Resource,
        input: dict[str, Any],
        params: dict[str, Any],
        description: str,
        ex_id: str,
    ) -> Resource:
        ex = rules.execution(ex_id, wf, input, params, description, self._stamp())
        self.executions[ex_id] = ex
        self.tasks[ex_id] = []
        return ex

    def _execution(self, execution_id: str) -> Resource:
        if execution_id not in self.executions:
            raise Refused(404, "WorkflowExecution not found [id=%s]" % execution_id)
        return self.executions[execution_id]

    def _find_task(self, task_id: str | None) -> Resource | None:
        return next((t for ts in self.tasks.values() for t in ts if t["id"] == task_id), None)

    def _task(self, task_id: str) -> Resource:
        task = self._find_task(task_id)
        if task is None:
            raise Refused(404, "TaskExecution not found [id=%s]" % task_id)
        return task

    def _action(self, action_execution_id: str) -> Resource:
        if action_execution_id not in self.action_executions:
            raise Refused(404, "ActionExecution not found [id=%s]" % action_execution_id)
        return self.action_executions[action_execution_id]

    def _stamp(self) -> str:
        return rules.stamp(self.clock())


def _in(namespace: str | None) -> str:
    return " in namespace %s" % namespace if namespace else ""


def _copy(resource: Resource) -> Resource:
    # What a caller gets is its own: changing it does not change the engine.
    copied: Resource = json.loads(json.dumps(resource))
    return copied


def _only(resource: Resource, fields: Sequence[str] | None) -> Resource:
    return _copy({k: resource.get(k) for k in ["id", *fields]} if fields else resource)


def _object(value: Mapping[str, Any] | str | None) -> dict[str, Any]:
    # As MistralClient sends it: a string is JSON text already.
    parsed = json.loads(value) if isinstance(value, str) else value
    return dict(parsed or {})


if TYPE_CHECKING:  # mypy: the stub is an engine (st2bridge/engine/base.py)
    from st2bridge.engine.base import Engine

    def _is_an_engine(stub: StubEngine) -> Engine:
        return stub
