"""From a posted event to started workflows, recorded before it is answered.

    receive(source, name, payload, by)
      1. decide, in one store transaction: each alert of the event is matched
         against each rule of its source on its own; for a match, firing:
         de-duplication (join the live owner of the key), then the rule's
         concurrency policy (a slot, or the queue, or drop); resolved: what
         `on_resolved` says. The event is written in the same transaction,
         with every decision (SQLite: one commit; MongoDB: each decision is
         a compare-and-set, the event is written after them).
      2. act: the starts and cancels decided, through the engine (the
         Runner, with the idempotency key alarm:EVENT:ALERT:RULE, so doing
         it again never starts a second execution).
      3. the event is written again with what happened; then answered.

An event whose actions could not all be done (the engine down) stays
`received` with a lease; when the lease lapses, any API process takes it
over (recover) and runs the whole procedure again: every step is idempotent
(a key claimed by this action is its own, a slot held by its idempotency key
is held, a queue item with its id exists, a start with its key returns the
execution it started). A kill -9 anywhere loses nothing an answer promised.
"""

import logging
import time
import uuid

from st2bridge import control, errors
from st2bridge.alarms import match, sources
from st2bridge.alarms.policy import Policies, idempotency_key
from st2bridge.api.starter import StartRequest
from st2bridge.text import one_line

LOG = logging.getLogger("st2bridge.alarms")
# The event's outcome: the most telling of its actions', in this order.
OUTCOMES = (
    "rejected",
    "error",
    "pending",
    "started",
    "canceled",
    "queued",
    "joined",
    "dropped",
    "resolved",
    "no_match",
)
PENDING = ("start", "cancel")  # decided, not yet done
MAX_MISSES = 20


def summary(alerts):
    seen = {a["outcome"] for alert in alerts for a in alert["actions"]}
    seen = {"pending" if o in PENDING else o for o in seen}
    for outcome in OUTCOMES:
        if outcome in seen:
            return outcome
    return "no_match"


class Processor:
    def __init__(
        self,
        store,
        rules,
        starter,
        engine,
        *,
        owner,
        clock=time.time,
        lease_seconds=10.0,
        hold_seconds=30.0,
        observers=(),
    ):
        self.store = store
        self.rules = rules  # a callable: the RuleSet in force
        self.starter = starter
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.policies = Policies(store, hold_seconds)
        self.observers = list(observers)  # metrics: called with the processed event

    # -- entry points ----------------------------------------------------------------------

    def receive(self, source, name, payload, by):
        """Record and process one posted body; the event record. A body the
        source never sends is recorded as `rejected` and raised (400)."""
        now = self.clock()
        event = {
            "id": uuid.uuid4().hex,
            "source": source,
            "name": name,
            "received_at": now,
            "by": by,
            "payload": payload,
            "alerts": [],
            "attempts": 0,
        }
        try:
            sources.alerts(source, payload, self._event_context(event))
        except errors.InputError as exc:
            event.update(status="processed", outcome="rejected", processed_at=now)
            event["alerts"] = [{"index": None, "error": one_line(exc), "actions": []}]
            self.store.add_event(event)
            self._observe(event)
            raise
        return self.process(event, first=True)

    def recover(self, limit=20):
        """Take over events left `received` (their lease lapsed); the count."""
        events = self.store.claim_events(self.owner, self.clock(), self.lease_seconds, limit)
        for event in events:
            LOG.info(
                "event %s (%s, received %.0f s ago) was left unfinished; processing it again "
                "(attempt %d)",
                event["id"],
                event["source"],
                self.clock() - event["received_at"],
                (event.get("attempts") or 0) + 1,
            )
            try:
                self.process(event, first=False)
            except errors.StoreError as exc:
                LOG.warning(
                    "event %s: %s; its lease lapses and it is tried again", event["id"], exc
                )
        return len(events)

    # -- the procedure -------------------------------------------------------------------------

    def process(self, event, first):
        now = self.clock()
        rerun = not first
        rules = self.rules().for_source(event["source"], event.get("name"))
        context = self._event_context(event)
        found = sources.alerts(event["source"], event["payload"], context)
        with self.store.transaction():
            alerts = [
                self._decide(event, i, alert, rules, now, rerun) for i, alert in enumerate(found)
            ]
            event.update(
                alerts=alerts,
                outcome=summary(alerts),
                lease_owner=self.owner,
                lease_expires_at=now + self.lease_seconds,
                attempts=(event.get("attempts") or 0) + (0 if first else 1),
            )
            self._settle_status(event, now)
            if first:
                self.store.add_event(event)
            else:
                self.store.update_event(event["id"], _changes(event))
        if event["status"] != "processed":
            self._act(event)
            event["outcome"] = summary(event["alerts"])
            self._settle_status(event, self.clock())
            self.store.update_event(event["id"], _changes(event))
        self._observe(event)
        return event

    def _settle_status(self, event, now):
        pending = any(a["outcome"] in PENDING for al in event["alerts"] for a in al["actions"])
        if pending:
            event["status"] = "received"
            # Tried again by whichever process claims it (recover) after this.
            event["lease_expires_at"] = now + min(
                60.0, self.lease_seconds * (2 ** event["attempts"])
            )
        else:
            event.update(status="processed", processed_at=now, lease_expires_at=None)

    def _event_context(self, event):
        return {
            "id": event["id"],
            "source": event["source"],
            "name": event.get("name"),
            "received_at": event["received_at"],
        }

    # -- deciding (store only) ------------------------------------------------------------------

    def _decide(self, event, index, alert, rules, now, rerun):
        row = {
            "index": index,
            "status": alert.status,
            "fingerprint": alert.fingerprint,
            "labels": alert.labels,
            "actions": [],
        }
        misses = []
        for rule in rules:
            ok, why = match.matches(rule.criteria, alert.context)
            if not ok:
                misses.append({"rule": rule.name, "reason": why})
                continue
            action = {"rule": rule.name, "action": "%s:%05d:%s" % (event["id"], index, rule.name)}
            try:
                action.update(
                    self._decide_one(event, index, alert, rule, action["action"], now, rerun)
                )
            except match.TemplateError as exc:
                action.update(outcome="error", reason=str(exc))
            row["actions"].append(action)
        if not row["actions"]:
            row["unmatched"] = misses[:MAX_MISSES] if rules else []
            row["reason"] = (
                "no rule of source %s matched" % event["source"]
                if rules
                else "no enabled rule listens to %s" % _source_name(event)
            )
        return row

    def _decide_one(self, event, index, alert, rule, action_id, now, rerun):
        ctx = alert.context
        dedup = match.render_text(rule.dedup_key, ctx) if rule.dedup_key else alert.default_dedup
        if alert.status == sources.RESOLVED:
            return self._decide_resolved(event, index, alert, rule, action_id, dedup, now)
        if alert.status != sources.FIRING:
            return {"outcome": "resolved", "reason": "state %s starts nothing" % alert.status}
        start = {
            "workflow": rule.workflow,
            "namespace": rule.namespace,
            "input": match.render_value(rule.input, ctx),
            "labels": {"rule": rule.name, "event": event["id"]},
        }
        key = None
        if rule.concurrency is not None:
            key = match.render_text(rule.concurrency.key, ctx) if rule.concurrency.key else ""
        out = {"dedup_key": dedup, "concurrency_key": key}
        if dedup:
            won, entry, state, summary_ = self.policies.claim(
                rule, dedup, action_id, now, event["id"], index
            )
            if not won:
                return dict(out, **_joined(entry, state, summary_, dedup, rule))
        holder = idempotency_key(action_id)
        if rerun:
            done = self.store.execution_summaries(idempotency_keys=[holder])
            if done:
                return dict(out, outcome="started", execution_id=done[0]["id"], start=start)
        if rule.concurrency is not None:
            got, why = self.policies.acquire(rule, key, holder, now)
            if not got and rule.concurrency.overflow == "drop":
                if dedup:
                    self.policies.change(rule, dedup, action_id, {"released": True}, now)
                return dict(out, outcome="dropped", reason="concurrency: " + why)
            if not got:
                self.store.enqueue(
                    {
                        "id": action_id,
                        "policy": rule.name,
                        "key": key,
                        "created_at": event["received_at"],
                        "event_id": event["id"],
                        "alert": index,
                        "rule": rule.name,
                        "dedup_key": dedup,
                        "start": start,
                    }
                )
                if dedup:
                    self.policies.change(rule, dedup, action_id, {"queued": True}, now)
                return dict(out, outcome="queued", queue_id=action_id, reason="concurrency: " + why)
        return dict(out, outcome="start", start=start)

    def _decide_resolved(self, event, index, alert, rule, action_id, dedup, now):
        out = {"dedup_key": dedup}
        if rule.on_resolved == "nothing":
            return dict(out, outcome="resolved", reason="on_resolved: nothing")
        entry = self.policies.entry(rule, dedup)[0] if dedup else None
        if rule.on_resolved == "cancel":
            return dict(out, **self._decide_cancel(rule, entry, now))
        if dedup:
            first, by = self.policies.mark_resolved(rule, dedup, action_id, now, event["id"], index)
            if not first:
                return dict(
                    out, outcome="joined", joined=by, reason="resolved already handled by %s" % by
                )
        start = {
            "workflow": rule.on_resolved["workflow"],
            "namespace": rule.on_resolved.get("namespace"),
            "input": match.render_value(rule.on_resolved["input"], alert.context),
            "labels": {"rule": rule.name, "event": event["id"]},
        }
        return dict(out, outcome="start", start=start)

    def _decide_cancel(self, rule, entry, now):
        if entry is None:
            return {"outcome": "resolved", "reason": "no execution of this key to cancel"}
        state, found = self.policies.owner(rule, entry, now)
        if state == "queued":
            self.store.update_queue_item(
                entry["action"],
                {"status": "canceled", "reason": "resolved before it started"},
                if_status="pending",
            )
            return {
                "outcome": "canceled",
                "queue_id": entry["action"],
                "reason": "resolved while queued",
            }
        if state == "running":
            return {"outcome": "cancel", "execution_id": found["id"]}
        if found is not None:
            return {
                "outcome": "resolved",
                "execution_id": found["id"],
                "reason": "execution %s had ended (%s): nothing to cancel"
                % (found["id"], found["status"]),
            }
        return {"outcome": "resolved", "reason": "no execution of this key to cancel"}

    # -- acting (the engine) ----------------------------------------------------------------------

    def _act(self, event):
        for alert in event["alerts"]:
            for action in alert["actions"]:
                if action["outcome"] == "start":
                    self._start(event, action)
                elif action["outcome"] == "cancel":
                    self._cancel(action)

    def _start(self, event, action):
        start = action["start"]
        request = StartRequest(
            workflow=start["workflow"],
            namespace=start.get("namespace"),
            input=start["input"],
            labels=start["labels"],
            idempotency_key=idempotency_key(action["action"]),
            started_by=event.get("by"),
        )
        rule = self.rules().get(action["rule"])
        try:
            started = self.starter.start(request)
        except (errors.EngineUnavailable, errors.EngineServerError, errors.StoreUnavailable) as exc:
            action["reason"] = "start pending (%s); tried again" % one_line(exc)
            LOG.warning("event %s: rule %s: %s", event["id"], action["rule"], action["reason"])
            return
        except errors.BridgeError as exc:  # refused: the workflow, its input, the key
            action.update(outcome="error", reason="start refused: %s" % one_line(exc))
            LOG.warning("event %s: rule %s: %s", event["id"], action["rule"], action["reason"])
            if rule is not None and rule.concurrency is not None:
                self.policies.release(rule, idempotency_key(action["action"]), self.clock())
            if rule is not None and action.get("dedup_key"):
                self.policies.change(
                    rule, action["dedup_key"], action["action"], {"released": True}, self.clock()
                )
            return
        action.update(outcome="started", execution_id=started.record["id"], reason=None)
        if started.warning:
            action["warning"] = started.warning
        LOG.info(
            "event %s: rule %s started execution %s of %s",
            event["id"],
            action["rule"],
            started.record["id"],
            start["workflow"],
        )

    def _cancel(self, action):
        try:
            control.change_state(self.engine, self.store, action["execution_id"], "cancel")
        except (errors.EngineUnavailable, errors.EngineServerError, errors.StoreUnavailable) as exc:
            action["reason"] = "cancel pending (%s); tried again" % one_line(exc)
            return
        except errors.BridgeError as exc:
            action.update(outcome="resolved", reason="not canceled: %s" % one_line(exc))
            return
        action.update(outcome="canceled", reason="resolved: execution canceled")

    def _observe(self, event):
        for observe in self.observers:
            observe(event)


def _joined(entry, state, found, dedup, rule):
    why = {
        "running": "execution %s for dedup key %r is running",
        "cooldown": "execution %s for dedup key %r ended less than the cooldown ago",
        "queued": "the start for dedup key %r is queued",
        "starting": "the start for dedup key %r is under way",
    }[state]
    execution_id = found["id"] if found else None
    reason = why % ((execution_id, dedup) if state in ("running", "cooldown") else (dedup,))
    out = {
        "outcome": "joined",
        "joined": entry["action"],
        "joined_event": entry.get("event_id"),
        "reason": reason,
    }
    if execution_id:
        out["execution_id"] = execution_id
    if state == "queued":
        out["queue_id"] = entry["action"]
    return out


def _changes(event):
    return {k: v for k, v in event.items() if k != "id"}


def _source_name(event):
    return "webhook/%s" % event["name"] if event["source"] == "webhook" else event["source"]
