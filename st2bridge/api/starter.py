"""Starting an execution for the API: the one place that calls the Runner.

The Runner takes a StartRequest (a definition or a registered name, input,
env, namespace, reverse task, labels, idempotency key) and answers a repeated
idempotency key with the first execution. What the API adds around it:
  * the record's `started_by` (the API key's name) and `sinks` (the result
    webhooks), added by a store wrapper when the record is created;
  * the time its engine calls take (the answer's Server-Timing);
  * a start whose record exists but whose submit got no answer from the
    engine is returned with a warning (a tracker submits it, same engine id),
    never as a failure: a caller retrying it would start it twice.
"""

import copy
import dataclasses
import time

from st2bridge import errors
from st2bridge.launch import StartRequest as RunnerRequest
from st2bridge.text import one_line


@dataclasses.dataclass
class StartRequest:
    workflow: str | None = None
    definition: str | None = None
    input: dict = dataclasses.field(default_factory=dict)
    env: dict = dataclasses.field(default_factory=dict)
    namespace: str | None = None
    labels: dict = dataclasses.field(default_factory=dict)
    task: str | None = None
    timeout: float | None = None
    notify: list = dataclasses.field(default_factory=list)  # the result sinks
    idempotency_key: str | None = None
    started_by: str | None = None
    engine_seconds: float = 0.0  # spent waiting for the engine (Server-Timing)


@dataclasses.dataclass
class Started:
    record: dict
    reused: bool = False  # an earlier start with the same idempotency key
    warning: str | None = None  # what the caller should be told
    confirmed: bool = True  # False: recorded, the engine's answer not seen


class Starter:
    def __init__(self, runner, *, definition_cache_seconds=0.0, clock=time.time):
        self.runner = runner
        self.clock = clock
        # Registered workflows read from the engine, trusted as long as the
        # Runner trusts what it registered: a start by name is then one request.
        self.definition_cache_seconds = definition_cache_seconds
        self._workflows = {}

    def start(self, request: StartRequest) -> Started:
        extras = {"started_by": request.started_by, "sinks": [dict(s) for s in request.notify]}
        runner = copy.copy(self.runner)  # shares the definition cache
        runner.store = store = _RecordExtras(self.runner.store, extras)
        runner.engine = engine = _Timed(self.runner.engine, self)
        asked = RunnerRequest(
            workflow=request.workflow,
            definition=request.definition,
            source="the definition",
            input=request.input,
            env=request.env or None,
            namespace=request.namespace,
            task=request.task,
            labels=request.labels or None,
            timeout=request.timeout,
            idempotency_key=request.idempotency_key,
        )
        try:
            result = runner.start_request(asked)
        except (errors.EngineUnavailable, errors.EngineServerError) as exc:
            if store.created is None:
                raise  # nothing recorded: nothing will run
            return Started(
                self.runner.store.get_execution(store.created),
                warning=one_line(exc),
                confirmed=False,
            )
        finally:
            request.engine_seconds += engine.seconds
        record = result.record
        if not result.reused:
            record.update(extras)
        warning = "; ".join(result.warnings) or None
        return Started(record, reused=result.reused, warning=warning)


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


class _Timed:
    """The engine client, adding up the time its calls take (`seconds`);
    get_workflow answered from the starter's cache while it is fresh."""

    def __init__(self, engine, starter):
        self._engine = engine
        self._starter = starter
        self.seconds = 0.0

    def get_workflow(self, name, namespace=None):
        cache, now = self._starter._workflows, self._starter.clock()
        hit = cache.get((name, namespace))
        if hit and now - hit[1] < self._starter.definition_cache_seconds:
            return copy.deepcopy(hit[0])
        found = self.__getattr__("get_workflow")(name, namespace=namespace)
        if len(cache) > 1024:
            cache.clear()
        cache[(name, namespace)] = (copy.deepcopy(found), now)
        return found

    def __getattr__(self, name):
        attr = getattr(self._engine, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed
