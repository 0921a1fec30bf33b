"""What a caller asks to start, checked, and what it becomes: a record and
the engine's `params`. The Runner (runner.py) drives these steps in order.

Every mistake found here (a definition, input, task or environment the
workflow cannot take) is an InputError raised before anything is recorded or
sent to the engine.
"""

import copy
import dataclasses
import uuid

from st2bridge import errors, workflow
from st2bridge import status as st
from st2bridge.callbacks import secrets, webhook
from st2bridge.schedule import Schedule
from st2bridge.store.base import new_execution_record

# The one key the bridge adds to params.env (a user's own value wins).
ENV_EXECUTION_ID = "st2bridge_execution_id"


@dataclasses.dataclass
class StartRequest:
    """What to start. Either `definition` (the text of a workflow file or a
    workbook; `workflow` picks one of its workflows, by default the only one,
    or a workbook's `main`) or `workflow` alone: a workflow the engine holds
    (`WORKBOOK.NAME` for a workbook's; a workbook's name runs its `main`).

    `namespace` None means the runner's default ([engine] namespace).
    `task`: the target task of a reverse workflow. `env`: values for
    params.env; `env_name`: an environment stored in the engine instead.
    `idempotency_key`: a second request with the same key returns the first
    execution (StartResult.reused) instead of starting another.
    `notify`: more webhook entries for Mistral's params.notify."""

    workflow: str = None
    definition: str = None
    source: str = None  # where the definition came from, for messages
    input: dict = None
    env: dict = None
    env_name: str = None
    namespace: str = None
    task: str = None
    labels: dict = None
    timeout: float = None
    on_timeout: str = None  # "cancel" (None: the same) or "leave" the engine execution
    idempotency_key: str = None
    notify: tuple = ()


@dataclasses.dataclass
class StartResult:
    record: dict  # the execution record as last written (or as the engine has it)
    reused: bool = False  # an earlier request with the same idempotency key started it
    warnings: list = dataclasses.field(default_factory=list)  # e.g. the store is behind


@dataclasses.dataclass
class Plan:
    request: StartRequest
    wf_file: workflow.WorkflowFile = None  # None until a by-name workflow is read
    workflow_name: str = None  # the engine's name
    from_file: bool = True


def plan(request):
    """The request checked as far as it can be without the engine."""
    if request.env_name and request.env:
        raise errors.InputError(
            "--env-name runs with the environment stored in the engine as it is; give "
            "either it or --env/--env-file values"
        )
    if request.definition is not None:
        wf_file = workflow.parse(request.definition, request.source or "<definition>")
        result = Plan(request, wf_file, workflow.pick(wf_file, request.workflow))
        check(result)
        return result
    if request.workflow:
        return Plan(request, workflow_name=request.workflow, from_file=False)
    raise errors.InputError("nothing to run: give a workflow file or a workflow name")


def check(plan):
    workflow.check_input(plan.wf_file, plan.workflow_name, plan.request.input or {})
    workflow.check_task(plan.wf_file, plan.workflow_name, plan.request.task)


def read_from_engine(engine, plan):
    """The workflow the engine holds under the request's name (a workbook's
    name: its `main` or only workflow), checked like a file's."""
    ns = plan.request.namespace or None
    name = plan.request.workflow
    where = " in namespace %s" % ns if ns else ""
    try:
        resource = engine.get_workflow(name, namespace=ns)
    except errors.EngineNotFound:
        resource = None
    if resource is None:
        try:
            book = engine.get_workbook(name, namespace=ns)
        except errors.EngineNotFound:
            raise errors.InputError(
                "the engine has no workflow or workbook %r%s (`st2bridge workflow list` "
                "shows what it has)" % (name, where)
            ) from None
        book_file = workflow.parse(book.get("definition") or "", "workbook %s%s" % (name, where))
        if workflow.MAIN not in book_file.workflows and len(book_file.workflows) > 1:
            raise errors.InputError(
                "workbook %s%s has several workflows (%s) and none named %s: run one with "
                "--name %s.WORKFLOW"
                % (name, where, ", ".join(sorted(book_file.workflows)), workflow.MAIN, name)
            )
        name = workflow.pick(book_file)
        resource = engine.get_workflow(name, namespace=ns)
    plan.wf_file = workflow.from_engine(resource, plan.request.namespace)
    plan.workflow_name = name
    check(plan)


def check_environment(engine, name):
    try:
        engine.get_environment(name)
    except errors.EngineNotFound:
        raise errors.InputError(
            "the engine has no environment %r (create it with `mistral environment-create`, "
            "or give values with --env/--env-file)" % name
        ) from None


def definition_record(wf_file, now):
    """The content-addressed record of the definition an execution starts with."""
    return {
        "id": wf_file.digest(),
        "kind": wf_file.kind,
        "name": wf_file.workbook,
        "text": wf_file.text,
        "workflows": wf_file.engine_names(),
        "created_at": now,
    }


def new_record(plan, definition_id, now, *, mode, stale_after, query_interval):
    request = plan.request
    return new_execution_record(
        id=str(uuid.uuid4()),
        workflow_name=plan.workflow_name,
        engine_execution_id=str(uuid.uuid4()),
        status=st.REQUESTED,
        input=dict(request.input or {}),
        created_at=now,
        updated_at=now,
        # Tracked in every mode: in callback mode the poller is only the
        # safety net (st2bridge.schedule).
        tracked=True,
        next_poll_at=Schedule(mode, query_interval=query_interval, stale_after=stale_after).first(
            now
        ),
        timeout_at=now + request.timeout if request.timeout else None,
        on_timeout=request.on_timeout if request.timeout else None,
        namespace=request.namespace or "",
        workbook=workbook_of(plan),
        task_name=request.task,
        env=dict(request.env) if request.env else None,
        env_name=request.env_name,
        labels=dict(request.labels) if request.labels else None,
        definition_id=definition_id,
        idempotency_key=request.idempotency_key,
        request_digest=request_digest(plan) if request.idempotency_key else None,
    )


def workbook_of(plan):
    """The workbook of the workflow to run, or None. The engine stores a
    workbook's workflow as `NAME:` + spec, without the workbook's version."""
    if plan.wf_file.workbook or plan.from_file or "." not in plan.workflow_name:
        return plan.wf_file.workbook
    doc = workflow.parse_yaml(plan.wf_file.text, plan.wf_file.path)
    in_workbook = isinstance(doc, dict) and "version" not in doc
    return plan.workflow_name.rsplit(".", 1)[0] if in_workbook else None


def request_digest(plan):
    """What makes two requests under one idempotency key the same request."""
    request = plan.request
    return workflow.digest(
        {
            "workflow": request.workflow,
            "definition": plan.wf_file.digest() if plan.from_file else None,
            "namespace": request.namespace or "",
            "input": request.input or {},
            "env": request.env or {},
            "env_name": request.env_name,
            "task": request.task,
        }
    )


def notify_entries(record_id, extra, *, mode, callback_url, task_events):
    """params.notify: the bridge's webhook (unless it only polls) and `extra`,
    with the webhook's secret left out (None): see fill_secret."""
    notify = copy.deepcopy(list(extra))
    if mode != "poll":
        notify.insert(0, webhook.entry(callback_url, record_id, task_events=task_events))
    return notify


def fill_secret(notify):
    """Put a new secret where the bridge's webhook has none; return its hash
    (None when there is no such webhook)."""
    secret = None
    for entry in notify:
        headers = entry.get("headers") or {}
        if webhook.SECRET_HEADER in headers and headers[webhook.SECRET_HEADER] is None:
            secret = secret or secrets.new_secret()
            entry["headers"] = dict(headers, **{webhook.SECRET_HEADER: secret})
    return secrets.hash_secret(secret) if secret else None


def engine_params(record, notify):
    """The execution's params: env (the user's values and the bridge's own
    key, which never replaces a user's; or the name of a stored environment,
    which the engine resolves as it is), task_name (reverse workflows), notify.
    The engine adds `namespace` itself."""
    params = {}
    if record.get("env_name"):
        params["env"] = record["env_name"]
    else:
        params["env"] = {ENV_EXECUTION_ID: record["id"], **(record.get("env") or {})}
    if record.get("task_name"):
        params["task_name"] = record["task_name"]
    if notify:
        params["notify"] = list(notify)
    return params
