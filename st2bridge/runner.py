"""The runner: check a request, register its definition, start it once, follow it.

Order matters for never losing an execution: the record is written (status
`requested`, with the engine execution id chosen here) before the engine is
asked, and the engine is asked with that id, so a retried or repeated submit
finds the same execution instead of starting a second one. Once the engine
has accepted it, a store failure is a warning, never an error: the workflow
runs, and a tracker brings the record up to date.

Callers (the CLI's `run`, an API) describe what to start with a
StartRequest and call `Runner.start_request`; see docs/architecture.md for
what the bridge adds to the execution's `params`.
"""

import copy
import dataclasses
import logging
import time

from st2bridge import concurrency, control, errors, launch, results, taskview
from st2bridge import status as st
from st2bridge.launch import StartRequest, StartResult  # noqa: F401 (API)
from st2bridge.registration import Registrar
from st2bridge.submit import Submitter, store_reason

LOG = logging.getLogger(__name__)
# How long --wait follows tasks still going in the engine after the end.
SETTLE_WAIT = 15.0


class Runner:
    """`mode` says how the result will be learnt: "poll" (no callbacks),
    "callback" (only callbacks, no polling), "hybrid" (callbacks, and polling
    once an execution has been silent for `stale_after`).

    `task_events`: whether the webhook asks for task events too (live task
    progress) or only for the workflow's own.

    `definition_cache_seconds`: how long a definition this runner registered
    is trusted without asking the engine again (0: ask on every start). A
    long-lived runner then starts executions with one engine request, not
    two; an engine that lost the definition meanwhile is caught at submit.

    `namespace`: the default Mistral namespace of requests that name none."""

    def __init__(
        self,
        engine,
        store,
        *,
        query_interval=5.0,
        mode="poll",
        callback_url=None,
        stale_after=30.0,
        definition_cache_seconds=0.0,
        task_events=True,
        namespace="",
        clock=time.time,
    ):
        if mode != "poll" and not callback_url:
            raise ValueError("mode %s needs a callback URL" % mode)
        self.engine = engine
        self.store = store
        self.query_interval = query_interval
        self.mode = mode
        self.callback_url = callback_url
        self.stale_after = stale_after
        self.task_events = task_events
        self.namespace = namespace or ""
        self.clock = clock
        self.registrar = Registrar(engine, cache_seconds=definition_cache_seconds, clock=clock)

    # -- definitions ------------------------------------------------------

    def register(self, wf_file, namespace=None):
        """Create or update the file's workflows (or workbook) in the engine;
        see Registrar.register."""
        return self.registrar.register(wf_file, self._ns(namespace))

    def forget(self, wf_file, namespace=None):
        self.registrar.forget(wf_file, self._ns(namespace))

    def _ns(self, namespace):
        return self.namespace if namespace is None else namespace

    # -- starting ---------------------------------------------------------

    def start(self, wf_file, workflow_name, input=None, *, timeout=None, extra_notify=(), **more):
        """Register, record and submit one workflow of a parsed file; returns
        the record. (`more`: other StartRequest fields.)"""
        more["namespace"] = self._ns(more.get("namespace"))
        request = StartRequest(
            workflow=workflow_name, input=input, timeout=timeout, notify=extra_notify, **more
        )
        plan = launch.Plan(request, wf_file, wf_file.full_name(workflow_name))
        launch.check(plan)
        return self._start(plan, None).record

    def start_request(self, request, on_recorded=None):
        """Check, register, record and submit; returns a StartResult.

        Every mistake (a definition, input, task or environment name the
        workflow cannot take) is an InputError raised before anything is
        recorded or started. `on_recorded(record)` is called as soon as the
        record exists, before the engine is asked (the CLI prints its id)."""
        request = dataclasses.replace(request, namespace=self._ns(request.namespace))
        return self._start(launch.plan(request), on_recorded)

    def _start(self, plan, on_recorded):
        request = plan.request
        if request.idempotency_key:  # before the engine is asked anything
            earlier = self._earlier(plan)
            if earlier is not None:
                return earlier
        if not plan.from_file:
            launch.read_from_engine(self.engine, plan)
        if request.env_name:
            launch.check_environment(self.engine, request.env_name)
        registered = self.register(plan.wf_file, request.namespace) if plan.from_file else None
        definition = launch.definition_record(plan.wf_file, self.clock())
        self.store.put_definition(definition)
        record = launch.new_record(
            plan,
            definition["id"],
            self.clock(),
            mode=self.mode,
            stale_after=self.stale_after,
            query_interval=self.query_interval,
        )
        notify = launch.notify_entries(
            record["id"],
            request.notify,
            mode=self.mode,
            callback_url=self.callback_url,
            task_events=self.task_events,
        )
        record["notify"] = copy.deepcopy(notify) or None  # kept without the secret
        record["callback_secret_hash"] = launch.fill_secret(notify)
        try:
            self.store.create_execution(record)
        except errors.Conflict:
            earlier = self._earlier(plan) if request.idempotency_key else None
            if earlier is None:
                raise
            return earlier  # a concurrent request with the same key was first
        if on_recorded:
            on_recorded(record)
        # A definition taken from the cache may have been deleted or changed in
        # the engine since: on a rejection, register it afresh and submit again.
        reregister = None
        if registered == "cached":

            def reregister():
                self.forget(plan.wf_file, request.namespace)
                self.register(plan.wf_file, request.namespace)

        warnings = []
        record = self.submit(record, notify, reregister=reregister, warnings=warnings)
        return StartResult(record, warnings=warnings)

    def _earlier(self, plan):
        request = plan.request
        try:
            record = self.store.get_execution_by_idempotency_key(request.idempotency_key)
        except errors.NotFound:
            return None
        if record.get("request_digest") != launch.request_digest(plan):
            raise errors.Conflict(
                "idempotency key %r was used for a different request (execution %s of "
                "workflow %s): use a new key"
                % (request.idempotency_key, record["id"], record["workflow_name"])
            )
        LOG.info("idempotency key %r: execution %s exists", request.idempotency_key, record["id"])
        return StartResult(record, reused=True)

    # -- submitting -------------------------------------------------------

    def submit(self, record, notify=None, reregister=None, warnings=None):
        """Ask the engine to run a recorded execution: see Submitter.submit."""
        # Built per call from the runner's engine and store: the API's starter
        # runs a copy of the runner with both wrapped (st2bridge.api.starter).
        return Submitter(self.engine, self.store, clock=self.clock).submit(
            record, notify, reregister, warnings
        )

    # -- following --------------------------------------------------------

    def wait(
        self,
        execution_id,
        *,
        interval=0.5,
        on_progress=None,
        sleep=concurrency.sleep,
        warnings=None,
        settle_timeout=SETTLE_WAIT,
    ):
        """Follow an execution until it ends; return the record.

        Polls the engine itself (a light query) so --wait works without a
        tracker; a tracker finishing it first is fine: the record is written
        once and both read the same result. While the store fails the engine
        is followed all the same; if the end cannot be written, the returned
        record is the engine's end and `warnings` says the store is behind.
        The task view (sub-workflows included) is merged into the record,
        never written over it, so tasks that callbacks reported stay; tasks
        still going in the engine after the end are followed for up to
        `settle_timeout` seconds. Every engine answer is checked first.
        """
        warnings = [] if warnings is None else warnings
        record, last, store_down = None, None, False
        while True:
            try:
                record = self.store.get_execution(execution_id)
                store_down = False
            except errors.StoreUnavailable as exc:
                if record is None:
                    raise
                if not store_down:
                    LOG.warning("store unavailable while waiting (%s); following the engine", exc)
                store_down = True
            if st.is_terminal(record["status"]):
                if store_down:
                    return record
                return self._settle(record, interval, on_progress, sleep, settle_timeout)
            if record.get("timeout_at") and self.clock() >= record["timeout_at"]:
                # As the tracker does: cancel it in the engine unless
                # --on-timeout leave (an engine that cannot be asked raises).
                timed_out = {
                    "status": st.TIMEOUT,
                    "error": control.time_out(self.engine, record),
                    "tracked": False,
                    "ended_at": self.clock(),
                    "updated_at": self.clock(),
                    "finished_by": "wait",
                }
                try:
                    self.store.update_execution(execution_id, timed_out, if_active=True)
                except errors.StoreError as exc:
                    warnings.append("the timeout of %s is not recorded: %s" % (execution_id, exc))
                    return dict(record, **timed_out)
                continue
            engine_id = record["engine_execution_id"]
            execution = results.get_light(self.engine, engine_id)
            now = self.clock()
            if execution["state"] in st.ENGINE_TERMINAL:
                try:
                    if results.finish(self.engine, self.store, record, self.clock, "wait").ended:
                        continue
                except errors.StoreError as exc:
                    return self._ended_unrecorded(record, exc, warnings)
            # The CLI reads the tasks on every round (one person watching), so
            # progress shows even while the execution's own state stands still.
            tree = taskview.read_tree(self.engine, engine_id, record.get("tasks"))
            changes = results.progress_changes(execution, None, now)
            seen = (changes["status"], [(t["id"], t["state"]) for t in tree])
            if seen != last:
                last = seen
                try:
                    results.write_tasks(
                        self.engine, self.store, execution_id, tree, changes, if_active=True
                    )
                    record = self.store.get_execution(execution_id)
                except errors.StoreError as exc:
                    LOG.warning("progress of execution %s not recorded: %s", execution_id, exc)
                    record = dict(
                        record, **changes, tasks=taskview.merge(record.get("tasks"), tree)
                    )
                if on_progress:
                    on_progress(record)
            sleep(interval)

    def _settle(self, record, interval, on_progress, sleep, settle_timeout):
        """An ended execution whose tasks are not all done in the engine yet
        (a `succeed` command with a task still running): follow them."""
        still = taskview.open_count(record.get("tasks"))
        deadline = self.clock() + settle_timeout
        try:
            while still and self.clock() < deadline:
                if on_progress:
                    on_progress(record)
                sleep(interval)
                still = results.refresh_tasks(self.engine, self.store, record)
                record = self.store.get_execution(record["id"])
        except errors.StoreError as exc:
            LOG.warning("the task view of %s is not followed further: %s", record["id"], exc)
        if still:
            LOG.warning(
                "execution %s is %s with %d tasks still going in the engine; its task "
                "view shows them as last read",
                record["id"],
                record["status"],
                taskview.open_count(record.get("tasks")),
            )
        return record

    def _ended_unrecorded(self, record, exc, warnings):
        """The engine's end of an execution whose record cannot be written now."""
        root = record["engine_execution_id"]
        execution = self.engine.get_execution(root, fields=results.FINAL_FIELDS)
        execution = results.answers.execution(execution, root, results.FINAL_FIELDS)
        tasks = taskview.merge(record.get("tasks"), taskview.read_tree(self.engine, root))
        record = dict(record, **results.terminal_changes(execution, tasks, self.clock(), "wait"))
        warnings.append(
            "execution %s ended (%s) but the store could not record it (%s); the record "
            "catches up when a st2bridge-resultstracker checks it"
            % (record["id"], record["status"], store_reason(exc))
        )
        return record
