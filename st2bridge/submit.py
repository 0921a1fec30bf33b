"""Submitting a recorded execution to the engine: the one step both the runner
(a new execution) and the tracker (a record the engine never received) take.

The submit is safe to repeat: the engine answers a known execution id with
the execution it holds. A re-submit gives the record's webhook a new callback
secret (the first one is known only by its hash) and, should the first
submit have got through after all, records the hash of the one the engine
holds. A rejection closes the record with the engine's reason; once the
engine runs the execution, a store failure is a warning, never an error.
"""

import copy
import logging
import time

from st2bridge import errors, launch, results
from st2bridge import status as st
from st2bridge.callbacks import secrets, webhook

# The runner's logger, as before the submit had a module of its own (log filters name it).
LOG = logging.getLogger("st2bridge.runner")


class Submitter:
    """Submits recorded executions (see the module docstring)."""

    def __init__(self, engine, store, *, clock=time.time):
        self.engine = engine
        self.store = store
        self.clock = clock

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
                % (record["id"], store_reason(exc))
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
            if not webhook.is_ours(entry, record["id"]):
                continue
            secret = (entry.get("headers") or {}).get(webhook.SECRET_HEADER)
            secret_hash = secrets.hash_secret(secret) if secret else None
            if secret_hash and secret_hash != record.get("callback_secret_hash"):
                self.store.update_execution(record["id"], {"callback_secret_hash": secret_hash})
                record["callback_secret_hash"] = secret_hash
            return


def store_reason(exc):
    """A store error's reason without its advice to try again: once the engine
    runs the execution, trying again is what must not happen."""
    return str(exc).replace("; try again", "")
