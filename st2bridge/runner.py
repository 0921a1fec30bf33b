"""The runner: register a workflow definition, start it once, follow it.

Order matters for never losing an execution: the record is written (status
`requested`, with the engine execution id chosen here) before the engine is
asked, and the engine is asked with that id, so a retried or repeated submit
finds the same execution instead of starting a second one.
"""

import hashlib
import json
import logging
import time
import uuid

import yaml

from st2bridge import errors, results, taskview, workflow
from st2bridge import status as st
from st2bridge.callbacks import events, secrets
from st2bridge.schedule import Schedule
from st2bridge.store.base import new_execution_record

LOG = logging.getLogger(__name__)

CALLBACK_PATH = "/v1/callbacks/mistral/"
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
    two; an engine that lost the definition meanwhile is caught at submit."""

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
        self.definition_cache_seconds = definition_cache_seconds
        self.task_events = task_events
        self.clock = clock
        self.schedule = Schedule(mode, query_interval=query_interval, stale_after=stale_after)
        self._registered = {}  # workflow name -> (digest of its spec, when registered)

    # -- definitions ------------------------------------------------------

    def register(self, wf_file):
        """Create the file's workflows in the engine, or update them when they
        changed. Returns 'created', 'updated', 'unchanged', or 'cached' when
        this runner registered the same definitions less than
        `definition_cache_seconds` ago (the engine is not asked)."""
        now = self.clock()
        digests = {name: _digest(wf_file.spec(name)) for name in wf_file.workflows}
        if all(
            self._registered.get(name, (None, None))[0] == digest
            and now - self._registered[name][1] < self.definition_cache_seconds
            for name, digest in digests.items()
        ):
            return "cached"
        outcome = self._register(wf_file)
        self._registered.update((name, (digest, now)) for name, digest in digests.items())
        return outcome

    def forget(self, wf_file):
        """Drop the file's workflows from the definition cache."""
        for name in wf_file.workflows:
            self._registered.pop(name, None)

    def _register(self, wf_file):
        existing = {}
        for name in wf_file.workflows:
            try:
                existing[name] = self.engine.get_workflow(name)
            except errors.EngineNotFound:
                pass
        if not existing:
            try:
                self.engine.create_workflows(wf_file.text)
                return "created"
            except errors.EngineConflict:
                pass  # created meanwhile by another submit: update below
        elif len(existing) < len(wf_file.workflows):
            # Some exist, some not: Mistral creates or updates a file only as a
            # whole, so register each workflow on its own.
            for name, spec in wf_file.workflows.items():
                text = yaml.safe_dump({"version": "2.0", name: spec}, sort_keys=False)
                if name in existing:
                    self.engine.update_workflows(text)
                else:
                    self.engine.create_workflows(text)
            return "updated"
        elif all(_same_spec(existing[n], n, wf_file.spec(n)) for n in existing):
            return "unchanged"
        self.engine.update_workflows(wf_file.text)
        return "updated"

    # -- executions -------------------------------------------------------

    def start(self, wf_file, workflow_name, input=None, *, timeout=None, extra_notify=()):
        """Register, record and submit. Returns the record as stored.
        `extra_notify`: more webhook entries for Mistral's params.notify."""
        input = dict(input or {})
        workflow.check_input(wf_file, workflow_name, input)
        registered = self._register_or_reject(wf_file)
        now = self.clock()
        execution_id = str(uuid.uuid4())
        notify = list(extra_notify)
        secret = None
        if self.mode != "poll":
            secret = secrets.new_secret()
            webhook = {
                "type": "webhook",
                "url": self.callback_url + CALLBACK_PATH + execution_id,
                "headers": {"Content-Type": "application/json", secrets.HEADER: secret},
            }
            if not self.task_events:
                webhook["event_types"] = sorted(events.WORKFLOW_EVENTS)
            notify.insert(0, webhook)
        record = new_execution_record(
            id=execution_id,
            workflow_name=workflow_name,
            engine_execution_id=str(uuid.uuid4()),
            status=st.REQUESTED,
            input=input,
            created_at=now,
            updated_at=now,
            # Tracked in every mode: in callback mode the poller is only the
            # safety net (st2bridge.schedule).
            tracked=True,
            next_poll_at=self.schedule.first(now),
            timeout_at=now + timeout if timeout else None,
            callback_secret_hash=secrets.hash_secret(secret) if secret else None,
        )
        self.store.create_execution(record)
        # A definition taken from the cache may have been deleted or changed in
        # the engine since: on a rejection, register it afresh and submit again.
        reregister = (
            (lambda: (self.forget(wf_file), self.register(wf_file)))
            if registered == "cached"
            else None
        )
        return self.submit(record, notify, reregister=reregister)

    def _register_or_reject(self, wf_file):
        try:
            return self.register(wf_file)
        except errors.EngineBadRequest as exc:
            raise errors.InputError(
                "workflow %s rejected by the engine: %s" % (wf_file.path, exc)
            ) from None

    def submit(self, record, notify=(), reregister=None):
        """Ask the engine to run a recorded execution (safe to repeat: the
        engine answers a known id with the existing execution). `reregister`:
        called once, then the submit repeated, if the engine rejects it."""
        params = {"env": {"st2bridge_execution_id": record["id"]}}
        if notify:
            params["notify"] = list(notify)
        start = lambda: self.engine.start_execution(  # noqa: E731
            record["workflow_name"],
            record["input"],
            execution_id=record["engine_execution_id"],
            params=params,
            description="st2bridge execution %s" % record["id"],
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
            # Rejected: nothing runs in the engine. Close the record with the
            # engine's reason instead of leaving it half-done.
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
            raise
        except errors.EngineError as exc:
            raise type(exc)(
                "%s; execution %s stays 'requested' and a running "
                "st2bridge-resultstracker submits it once the engine answers" % (exc, record["id"]),
                exc.status,
            ) from None
        if execution.get("state") in st.ENGINE_TERMINAL:
            # A repeated submit answered with an execution that has ended (the
            # first submit got through late): its final status must come with
            # its output, so finish it; if that fails the record stays active
            # and the tracker (or --wait) finishes it.
            try:
                results.finish(self.engine, self.store, record, self.clock, "submit")
            except errors.BridgeError as exc:
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
            "started execution %s (engine execution %s, workflow %s)",
            record["id"],
            record["engine_execution_id"],
            record["workflow_name"],
        )
        return record

    def wait(
        self,
        execution_id,
        *,
        interval=0.5,
        on_progress=None,
        sleep=time.sleep,
        settle_timeout=SETTLE_WAIT,
    ):
        """Follow an execution until its record is terminal; return the record.

        Polls the engine itself (a light query) so --wait works without a
        tracker; a tracker finishing it first is fine: the record is written
        once and both read the same result. The task view (sub-workflows
        included) is merged into the record, never written over it, so tasks
        that callbacks reported stay. Tasks still going in the engine after
        the end are followed for up to `settle_timeout` seconds.
        """
        last = None
        while True:
            record = self.store.get_execution(execution_id)
            if st.is_terminal(record["status"]):
                return self._settle(record, interval, on_progress, sleep, settle_timeout)
            engine_id = record["engine_execution_id"]
            execution = results.get_light(self.engine, engine_id)
            now = self.clock()
            if execution["state"] in st.ENGINE_TERMINAL:
                if results.finish(self.engine, self.store, record, self.clock, "wait").ended:
                    continue
            # The CLI reads the tasks on every round (one person watching), so
            # progress shows even while the execution's own state stands still.
            tree = taskview.read_tree(self.engine, engine_id, record.get("tasks"))
            changes = results.progress_changes(execution, None, now)
            seen = (changes["status"], [(t["id"], t["state"]) for t in tree])
            if seen != last:
                last = seen
                results.write_tasks(
                    self.engine, self.store, execution_id, tree, changes, if_active=True
                )
                if on_progress:
                    on_progress(self.store.get_execution(execution_id))
            sleep(interval)

    def _settle(self, record, interval, on_progress, sleep, settle_timeout):
        """An ended execution whose tasks are not all done in the engine yet
        (a `succeed` command with a task still running): follow them."""
        still = taskview.open_count(record.get("tasks"))
        deadline = self.clock() + settle_timeout
        while still and self.clock() < deadline:
            if on_progress:
                on_progress(record)
            sleep(interval)
            still = results.refresh_tasks(self.engine, self.store, record)
            record = self.store.get_execution(record["id"])
        if still:
            LOG.warning(
                "execution %s is %s with %d tasks still going in the engine; its task "
                "view shows them as last read",
                record["id"],
                record["status"],
                taskview.open_count(record.get("tasks")),
            )
        return record


def _digest(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _same_spec(engine_workflow, name, spec):
    """Whether the engine's stored definition of `name` equals `spec`.

    Compared as parsed YAML, so formatting differences do not count. When the
    stored text cannot be understood it counts as changed (an update is safe).
    """
    try:
        stored = yaml.safe_load(engine_workflow.get("definition") or "")
    except yaml.YAMLError:
        return False
    if isinstance(stored, dict) and name in stored:
        stored = stored[name]
    return stored == spec
