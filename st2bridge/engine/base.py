"""The engine interface: what the bridge asks of Mistral, and nothing more.

Two implementations pass the same contract suite (tests/unit/test_engine_contract.py):
`MistralClient` (st2bridge/engine/client.py, the REST API v2) and `StubEngine`
(st2bridge/engine/stub.py, in memory, for tests and for trying the bridge without
an engine). The contract, as Mistral 23 behaves and as the bridge relies on it:

Resources are plain dicts as Mistral's API returns them, with the JSON-text fields
of executions and tasks (`input`, `output`, `params`, `result`, `published`,
`runtime_context`) decoded to objects. Timestamps are UTC strings
"YYYY-MM-DD HH:MM:SS" (one-second resolution). `fields` asks for those fields only;
`id` always comes back.

Errors are the `st2bridge.errors.Engine*` classes, each message one line starting
with what was attempted:

    EngineNotFound      (404) no such workflow, workbook, environment, execution or
                        task (an execution may also have been expired by the engine)
    EngineConflict      (409) a workflow or workbook of that name exists; an
                        execution id already belongs to another workflow's execution
    EngineBadRequest    (400) an invalid definition or input, a workflow to start that
                        the engine does not have, a refused state change or re-run
    EngineUnavailable, EngineServerError
                        the engine could not be reached or failed: the request may
                        have taken effect (callers decide whether to repeat it)

Namespaces: None or "" is the default namespace, and every call that takes one
matches it exactly (a workflow of the same name in another namespace is neither
read nor changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

# One engine resource (workflow, workbook, environment, execution, task, report).
Resource = dict[str, Any]

# Mistral's states and the ones an execution never leaves on its own.
STATES = (
    "IDLE",
    "WAITING",
    "RUNNING",
    "RUNNING_DELAYED",
    "PAUSED",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
)
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")


class Engine(Protocol):
    """The Mistral API as the bridge uses it. Thread-safe; one object is shared."""

    @property
    def display_url(self) -> str:
        """For messages and status pages (no credentials in it)."""
        ...

    @property
    def request_count(self) -> int:
        """Requests attempted, retries included (the tracker's heartbeat, metrics)."""
        ...

    @property
    def error_counts(self) -> dict[str, int]:
        """Failed attempts by error class name (metrics)."""
        ...

    # -- workflows, workbooks, environments ----------------------------------

    def get_workflow(self, name: str, namespace: str | None = None) -> Resource:
        """The workflow resource (`definition` is its YAML). EngineNotFound."""
        ...

    def list_workflows(
        self, namespace: str | None = None, fields: Sequence[str] | None = None
    ) -> Iterable[Resource]:
        """Every workflow (of every namespace unless one is given)."""
        ...

    def create_workflows(
        self, definition_yaml: str, namespace: str | None = None
    ) -> list[Resource]:
        """Create every workflow of the YAML; EngineConflict if one exists in the
        namespace, EngineBadRequest for an invalid definition."""
        ...

    def update_workflows(
        self, definition_yaml: str, namespace: str | None = None
    ) -> list[Resource]:
        """Replace the definitions of existing workflows; EngineNotFound if one is
        not there."""
        ...

    def get_workbook(self, name: str, namespace: str | None = None) -> Resource:
        """The workbook resource. EngineNotFound."""
        ...

    def create_workbook(self, definition_yaml: str, namespace: str | None = None) -> Resource:
        """Create a workbook: its workflows are then named `WORKBOOK.WORKFLOW`.
        EngineConflict if one of that name exists in the namespace."""
        ...

    def update_workbook(self, definition_yaml: str, namespace: str | None = None) -> Resource:
        """Replace an existing workbook and its workflows. EngineNotFound."""
        ...

    def get_environment(self, name: str) -> Resource:
        """A stored environment; its `variables` an object. EngineNotFound."""
        ...

    # -- executions ---------------------------------------------------------

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
        """Start the workflow as the execution with the caller's id, or return the
        execution that has that id already (a repeated submit starts nothing):
        safe to repeat. EngineConflict if the id is another workflow's execution;
        EngineBadRequest for input the workflow does not declare or lacks, or a
        workflow the engine does not have in that namespace."""
        ...

    def get_execution(self, execution_id: str, fields: Sequence[str] | None = None) -> Resource:
        """The execution. EngineNotFound."""
        ...

    def list_executions(
        self,
        *,
        fields: Sequence[str] | None = None,
        limit: int = 1000,
        sort_keys: Sequence[str] | None = None,
        sort_dirs: Sequence[str] | None = None,
        marker: str | None = None,
        **filters: str,
    ) -> Iterable[Resource]:
        """Every matching execution, whatever the page size `limit`. Filters the
        bridge uses: updated_at="gte:YYYY-MM-DD HH:MM:SS" (changed at or after;
        also gt, lte, lt, eq), nulls="task_execution_id" (root executions only),
        root_execution_id=ID (the sub-workflow executions under a root),
        workflow_name, state. EngineBadRequest for a filter it does not know."""
        ...

    def update_execution_state(
        self, execution_id: str, state: str, state_info: str | None = None
    ) -> Resource:
        """Ask for PAUSED, RUNNING (resume), CANCELLED, ERROR (fail it) or
        SUCCESS; returns the execution. Mistral leaves it unchanged, without an
        error, when pausing a paused, resuming a running, or cancelling or
        failing a finished execution: callers check the state they get back.
        SUCCESS again on a SUCCESS sub-workflow sends its result to the parent
        task once more. Pausing a finished execution, or SUCCESS on one that
        ended otherwise, is EngineBadRequest."""
        ...

    def execution_report(
        self, execution_id: str, errors_only: bool = True, max_depth: int | None = None
    ) -> Resource:
        """{"root_workflow_execution": {..., "task_executions": [...]},
        "statistics": {...}}. EngineNotFound."""
        ...

    def execution_tree(self, execution_id: str) -> Resource:
        """The whole report (execution_report without errors_only): every task,
        its action executions (with `last_heartbeat`) and sub-workflows, nested.
        The stuck-execution rules read it. EngineNotFound."""
        ...

    def clock_offset(self) -> float | None:
        """Seconds the engine's clock is ahead of the bridge's (its timestamps
        are in its own clock), within about a second; None before any answer."""
        ...

    # -- tasks --------------------------------------------------------------

    def list_tasks(
        self, execution_id: str, fields: Sequence[str] | None = None, **filters: str
    ) -> list[Resource]:
        """The execution's task executions (not those of its sub-workflows)."""
        ...

    def get_task(self, task_id: str) -> Resource:
        """One task execution (with `workflow_execution_id`). EngineNotFound."""
        ...

    def rerun_task(self, task_id: str, reset: bool = True) -> Resource:
        """Run a task in ERROR again (its execution runs again). EngineBadRequest
        when the task is not in ERROR, or for reset=False on a task without
        with-items. Never repeated by the client once sent."""
        ...

    # -- action executions (recovering a stuck execution) --------------------

    def get_action_execution(self, action_execution_id: str) -> Resource:
        """One action execution (`output` decoded). EngineNotFound."""
        ...

    def complete_action_execution(
        self, action_execution_id: str, state: str, output: Any
    ) -> Resource:
        """End a RUNNING action execution as SUCCESS or ERROR with `output`, as
        if its executor had answered: the engine then goes on with its task. One
        that has ended already is refused (EngineServerError, "already
        completed"). Never repeated by the client once sent."""
        ...

    # -- connection ---------------------------------------------------------

    def ping(self) -> bool:
        """One cheap authenticated request, not retried: True or an error."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...

    def __enter__(self) -> Engine: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
