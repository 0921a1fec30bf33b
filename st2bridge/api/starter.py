"""Starting an execution for the API: the one place that calls the Runner.

Today's Runner.start takes a parsed workflow file, an input and a timeout.
What the API adds is passed around it, thinly, so that switching to the
reworked Runner (branch `runner`: name or definition text, env, namespace,
task, idempotency key) is a change to this module alone:
  * the record's extra fields (labels, started_by, notify, idempotency_key,
    namespace) are added by a store wrapper at create_execution;
  * env and the reverse workflow's task go into the submit's params through
    an engine wrapper;
  * a workflow started by name is read from the engine (cached like the
    Runner's own definitions) and handed over as a file.
"""

import copy
import dataclasses
import time

from st2bridge import errors, workflow

# The keys the bridge itself puts into params.env (they win over a user's).
BRIDGE_ENV_KEYS = ("st2bridge_execution_id",)
PARSED_CACHE = 256


@dataclasses.dataclass
class StartRequest:
    workflow: str | None = None
    definition: str | None = None
    input: dict = dataclasses.field(default_factory=dict)
    env: dict = dataclasses.field(default_factory=dict)
    namespace: str = ""
    labels: dict = dataclasses.field(default_factory=dict)
    task: str | None = None
    timeout: float | None = None
    notify: list = dataclasses.field(default_factory=list)
    idempotency_key: str | None = None
    started_by: str | None = None
    engine_seconds: float = 0.0  # spent waiting for the engine (Server-Timing)


class Starter:
    def __init__(self, runner, *, definition_cache_seconds=60.0, clock=time.time):
        self.runner = runner
        self.clock = clock
        self.definition_cache_seconds = definition_cache_seconds
        self._by_name = {}  # workflow name -> (parsed file, when read)
        self._parsed = {}  # definition text -> parsed file (a platform sends the same ones)

    def start(self, request: StartRequest):
        """Register (when given a definition), record and submit. Returns
        (record, warning): warning is None, or says why a recorded execution
        is not confirmed by the engine yet (a tracker submits it)."""
        if request.namespace:
            raise errors.InputError(
                "namespace %r: this bridge starts workflows in the default namespace only "
                "(namespaces come with the runner rework, issue 13)" % request.namespace
            )
        started = time.perf_counter()
        try:
            wf_file, name = self._definition(request)
        finally:  # reading a registered definition is the engine's time too
            if request.definition is None:
                request.engine_seconds += time.perf_counter() - started
        extras = {
            "labels": dict(request.labels),
            "namespace": request.namespace or None,
            "started_by": request.started_by,
            "notify": [dict(sink) for sink in request.notify],
            "idempotency_key": request.idempotency_key,
        }
        runner = copy.copy(self.runner)  # shares the definition cache
        runner.store = _RecordExtras(self.runner.store, extras)
        runner.engine = engine = _SubmitParams(self.runner.engine, request.env, request.task)
        try:
            record = runner.start(wf_file, name, request.input, timeout=request.timeout)
        except (errors.EngineUnavailable, errors.EngineServerError) as exc:
            request.engine_seconds += engine.seconds
            if runner.store.created is None:
                raise  # nothing recorded: nothing will run
            # Recorded, the submit's outcome unknown: a tracker submits it with
            # the same engine id. Reporting a failure would make callers retry.
            return self.runner.store.get_execution(runner.store.created), " ".join(str(exc).split())
        request.engine_seconds += engine.seconds
        record.update(extras)
        return record, None

    def _definition(self, request):
        if request.definition is not None:
            wf_file = self._parse(request.definition)
            if request.workflow is None and len(wf_file.workflows) > 1:
                raise errors.InputError(
                    'the definition defines several workflows (%s): choose one with "workflow"'
                    % ", ".join(sorted(wf_file.workflows))
                )
            return wf_file, workflow.pick(wf_file, request.workflow)
        wf_file = self._registered(request.workflow)
        return wf_file, workflow.pick(wf_file, request.workflow)

    def _parse(self, text):
        """Parsed once per distinct text (parsing YAML costs more than a start)."""
        wf_file = self._parsed.get(text)
        if wf_file is None:
            wf_file = workflow.parse(text, "the definition")
            if len(self._parsed) >= PARSED_CACHE:
                self._parsed.clear()
            self._parsed[text] = wf_file
        return wf_file

    def _registered(self, name):
        """A registered workflow's definition, read from the engine at most
        once per definition_cache_seconds (like the Runner's own cache)."""
        now = self.clock()
        cached = self._by_name.get(name)
        if cached and now - cached[1] < self.definition_cache_seconds:
            return cached[0]
        try:
            text = self.runner.engine.get_workflow(name).get("definition") or ""
        except errors.EngineNotFound:
            raise errors.NotFound("the engine has no workflow %s" % name) from None
        wf_file = workflow.parse(text, "workflow %s in the engine" % name)
        self._by_name[name] = (wf_file, now)
        return wf_file


class _RecordExtras:
    """The store, with the API's fields added to the record it creates."""

    def __init__(self, store, extras):
        self._store, self._extras = store, extras
        self.created = None  # the id of the record it created

    def create_execution(self, record):
        stored = self._store.create_execution(dict(record, **self._extras))
        self.created = stored["id"]
        return stored

    def __getattr__(self, name):
        return getattr(self._store, name)


class _SubmitParams:
    """The engine client, with the user's env and task in the submit's params;
    it also adds up the time its calls take (`seconds`)."""

    def __init__(self, engine, env, task):
        self._engine, self._env, self._task = engine, dict(env or {}), task
        self.seconds = 0.0

    def start_execution(self, workflow_name, input=None, *, execution_id, params=None, **kw):
        params = dict(params or {})
        env = dict(self._env)
        env.update(params.get("env") or {})
        params["env"] = env
        if self._task:
            params["task_name"] = self._task
        return self._timed(self._engine.start_execution)(
            workflow_name, input, execution_id=execution_id, params=params, **kw
        )

    def _timed(self, call):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed

    def __getattr__(self, name):
        attr = getattr(self._engine, name)
        return self._timed(attr) if callable(attr) else attr
