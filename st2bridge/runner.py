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
from st2bridge.callbacks import secrets
from st2bridge.launch import CALLBACK_PATH, StartRequest, StartResult  # noqa: F401 (API)
from st2bridge.registration import Registrar

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
        """Ask the engine to run a recorded execution (safe to repeat: the
        engine answers a known id with the existing execution). Returns the
        record. `notify`: the entries of the first submit, secret included;
        None for a re-submit (the tracker's, of a record the engine never
        received): the record's notify gets a new callback secret (the first
        one is known only by its hash), whose hash is recorded first.
        `reregister`: called once, then the submit repeated, if the engine
        rejects it. `warnings`: a list that gets what the caller should tell."""
        told = warnings is not None  # the caller reports them; otherwise they are logged
        warnings = [] if warnings is None else warnings
        renewed = notify is None
        if renewed:
            notify = copy.deepcopy(record.get("notify") or [])
            secret_hash = launch.fill_secret(notify)
            if secret_hash:
                self.store.update_execution(record["id"], {"callback_secret_hash": secret_hash})
                record["callback_secret_hash"] = secret_hash
        start = lambda: self.engine.start_execution(  # noqa: E731
            record["workflow_name"],
            record["input"],
            execution_id=record["engine_execution_id"],
            params=launch.engine_params(record, notify),
            description="st2bridge execution %s" % record["id"],
            namespace=record.get("namespace") or None,
        )
        try:
            try:
                execution = start()
            except (errors.EngineNotFound, errors.EngineBadRequest):
                if reregister is None:
                    raise
                LOG.info(
                    "engine rejected a submit of workflow %s registered from the cache: "
                    "registering it again",
                    record["workflow_name"],
                )
                reregister()
                execution = start()
        except errors.EngineClientError as exc:
            self._rejected(record, exc)
        except errors.EngineError as exc:
            raise type(exc)(
                "%s; execution %s stays 'requested' and a running "
                "st2bridge-resultstracker submits it once the engine answers" % (exc, record["id"]),
                exc.status,
            ) from None
        try:
            if renewed:
                self._adopt_engine_secret(record, execution)
            return self._accepted(record, execution, warnings)
        except errors.StoreError as exc:
            # The engine runs it: never report a failure for that, nor ask to
            # try again (that would start it twice).
            message = (
                "the engine accepted execution %s but the store could not record it (%s); "
                "the record catches up when a st2bridge-resultstracker checks it"
                % (record["id"], _reason(exc))
            )
            if not told:
                LOG.warning("%s", message)
            warnings.append(message)
            record.update(results.progress_changes(execution, None, self.clock()))
            return record

    def _rejected(self, record, exc):
        """Rejected: nothing runs in the engine. Close the record with the
        engine's reason instead of leaving it half-done."""
        now = self.clock()
        self.store.update_execution(
            record["id"],
            {
                "status": st.FAILED,
                "error": "rejected by the engine: %s" % exc,
                "tracked": False,
                "ended_at": now,
                "updated_at": now,
                "finished_by": "submit",
            },
        )
        if isinstance(exc, errors.EngineBadRequest):
            raise errors.InputError(
                "workflow %s rejected its input: %s" % (record["workflow_name"], exc)
            ) from None
        raise exc

    def _accepted(self, record, execution, warnings):
        if execution.get("state") in st.ENGINE_TERMINAL:
            # A repeated submit answered with an execution that has ended (the
            # first submit got through late): its final status must come with
            # its output, so finish it; if that fails the record stays active
            # and the tracker (or --wait) finishes it.
            try:
                results.finish(self.engine, self.store, record, self.clock, "submit")
            except errors.EngineError as exc:
                LOG.warning(
                    "execution %s has ended in the engine already; fetching its "
                    "result failed (%s): it is finished later",
                    record["id"],
                    exc,
                )
            record.update(self.store.get_execution(record["id"]))
            return record
        changes = results.submitted_changes(execution, self.clock())
        self.store.update_execution(record["id"], changes, if_active=True)
        record.update(changes)
        LOG.info(
            "started execution %s (engine execution %s, workflow %s%s)",
            record["id"],
            record["engine_execution_id"],
            record["workflow_name"],
            " in namespace %s" % record["namespace"] if record.get("namespace") else "",
        )
        return record

    def _adopt_engine_secret(self, record, execution):
        """After a re-submit: if the first submit got through after all, the
        engine holds the first secret; record the hash of the one it holds."""
        params = execution.get("params") if isinstance(execution.get("params"), dict) else {}
        for entry in params.get("notify") or []:
            if not isinstance(entry, dict) or not str(entry.get("url") or "").endswith(
                CALLBACK_PATH + record["id"]
            ):
                continue
            secret = (entry.get("headers") or {}).get(secrets.HEADER)
            secret_hash = secrets.hash_secret(secret) if secret else None
            if secret_hash and secret_hash != record.get("callback_secret_hash"):
                self.store.update_execution(record["id"], {"callback_secret_hash": secret_hash})
                record["callback_secret_hash"] = secret_hash
            return

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
            % (record["id"], record["status"], _reason(exc))
        )
        return record


def _reason(exc):
    """A store error's reason without its advice to try again: once the engine
    runs the execution, trying again is what must not happen."""
    return str(exc).replace("; try again", "")
