"""De-duplication keys and concurrency slots: the two questions that must have
one answer across every API process, answered by compare-and-set on small
documents in the store (Store.get_state / put_state).

A de-duplication entry (kind "dedup", key RULE \\x1f DEDUP_KEY) names the
action that owns the key: {action, event_id, alert, queued, claimed_at,
expires_at, resolved_by}. It is live while the owner's execution runs,
within the rule's cooldown after it ended, while the owner waits in the
queue, or (starting, nothing recorded yet) until `expires_at`. A new alert
with a live key joins the owner; otherwise it takes the key over.

A slot set (kind "slots", key RULE) lists the holders of the rule's
concurrency slots: {id (the start's idempotency key), key, expires_at}. A
holder is freed when its execution is terminal, or, when no execution was
recorded for it, at `expires_at`: nobody has to remember to release a slot;
an execution's end frees it (the drainer looks again on every `end` entry
of the change log).
"""

import logging

from st2bridge import errors
from st2bridge import status as st

LOG = logging.getLogger("st2bridge.alarms")
DEDUP, SLOTS = "dedup", "slots"
PREFIX = "alarm:"  # idempotency keys of the starts rules make
TRIES = 50


def idempotency_key(action_id):
    return PREFIX + action_id


class Busy(errors.StoreUnavailable):
    """A compare-and-set lost TRIES times in a row (heavy contention)."""


class Policies:
    def __init__(self, store, hold_seconds=30.0):
        self.store = store
        self.hold_seconds = hold_seconds

    # -- de-duplication ----------------------------------------------------------------

    def owner(self, rule, entry, now):
        """(state, execution summary or None) of a live entry: running,
        cooldown, queued or starting; (None, summary) when it is stale."""
        if entry is None or entry.get("released"):
            return None, None
        found = self.store.execution_summaries(idempotency_keys=[idempotency_key(entry["action"])])
        if found:
            summary = found[0]
            if summary["status"] not in st.TERMINAL:
                return "running", summary
            if rule.cooldown and (summary.get("ended_at") or 0) + rule.cooldown > now:
                return "cooldown", summary
            return None, summary
        if entry.get("queued"):
            try:
                item = self.store.get_queue_item(entry["action"])
            except errors.NotFound:
                return None, None
            return ("queued", None) if item["status"] == "pending" else (None, None)
        if (entry.get("expires_at") or 0) > now:
            return "starting", None
        return None, None

    def claim(self, rule, dedup_key, action, now, event_id, alert):
        """(True, entry) when this action owns the key now (a re-run of the
        same action owns it again); (False, entry, state, summary) when a
        live owner is there: the alert joins it."""
        ident = rule.name + "\x1f" + dedup_key
        for _ in range(TRIES):
            entry, version = self.store.get_state(DEDUP, ident)
            if entry is not None and entry.get("action") == action:
                return True, entry, None, None
            state, summary = self.owner(rule, entry, now)
            if state is not None:
                return False, entry, state, summary
            new = {
                "rule": rule.name,
                "key": dedup_key,
                "action": action,
                "event_id": event_id,
                "alert": alert,
                "queued": False,
                "claimed_at": now,
                "expires_at": now + self.hold_seconds,
                "resolved_by": None,
            }
            if self.store.put_state(DEDUP, ident, new, version, now):
                return True, new, None, None
        raise Busy("de-duplication key %s of rule %s: too much contention" % (dedup_key, rule.name))

    def entry(self, rule, dedup_key):
        return self.store.get_state(DEDUP, rule.name + "\x1f" + dedup_key)

    def change(self, rule, dedup_key, action, changes, now):
        """Change the entry if `action` still owns it; True if changed."""
        ident = rule.name + "\x1f" + dedup_key
        for _ in range(TRIES):
            entry, version = self.store.get_state(DEDUP, ident)
            if entry is None or entry.get("action") != action:
                return False
            if self.store.put_state(DEDUP, ident, dict(entry, **changes), version, now):
                return True
        raise Busy("de-duplication key %s of rule %s: too much contention" % (dedup_key, rule.name))

    def mark_resolved(self, rule, dedup_key, action, now, event_id, alert):
        """The first resolved alert of an incident takes it (True); a repeat
        is told who handled it: (False, that action)."""
        ident = rule.name + "\x1f" + dedup_key
        for _ in range(TRIES):
            entry, version = self.store.get_state(DEDUP, ident)
            if entry is not None and entry.get("resolved_by") not in (None, action):
                return False, entry["resolved_by"]
            if entry is not None and entry.get("resolved_by") == action:
                return True, action
            new = dict(
                entry
                or {
                    "rule": rule.name,
                    "key": dedup_key,
                    "action": action,
                    "event_id": event_id,
                    "alert": alert,
                    "queued": False,
                    "claimed_at": now,
                    "expires_at": now,
                    "released": True,
                },
                resolved_by=action,
            )
            if self.store.put_state(DEDUP, ident, new, version, now):
                return True, action
        raise Busy("de-duplication key %s of rule %s: too much contention" % (dedup_key, rule.name))

    # -- concurrency slots -----------------------------------------------------------------

    def live_holders(self, holders, now):
        if not holders:
            return []
        found = {
            s["idempotency_key"]: s
            for s in self.store.execution_summaries(idempotency_keys=[h["id"] for h in holders])
        }
        live = []
        for holder in holders:
            summary = found.get(holder["id"])
            if summary is not None:
                if summary["status"] not in st.TERMINAL:
                    live.append(dict(holder, execution_id=summary["id"]))
            elif (holder.get("expires_at") or 0) > now:
                live.append(holder)
        return live

    def acquire(self, rule, key, holder_id, now):
        """(True, None) when `holder_id` holds a slot of the rule for `key`
        (already, or now); (False, why) when the policy is full."""
        c = rule.concurrency
        for _ in range(TRIES):
            doc, version = self.store.get_state(SLOTS, rule.name)
            holders = (doc or {}).get("holders", [])
            for holder in holders:
                if holder["id"] == holder_id:
                    return True, None
            live = self.live_holders(holders, now)
            same = sum(1 for h in live if h["key"] == key)
            if same >= c.limit:
                return False, "%d running for concurrency key %r (limit %d)" % (same, key, c.limit)
            if c.total is not None and len(live) >= c.total:
                return False, "%d running for rule %s (total %d)" % (len(live), rule.name, c.total)
            live.append({"id": holder_id, "key": key, "expires_at": now + self.hold_seconds})
            if self.store.put_state(SLOTS, rule.name, {"holders": live}, version, now):
                return True, None
        raise Busy("concurrency slots of rule %s: too much contention" % rule.name)

    def release(self, rule, holder_id, now):
        """Give a slot back (its start failed before anything was recorded)."""
        for _ in range(TRIES):
            doc, version = self.store.get_state(SLOTS, rule.name)
            holders = (doc or {}).get("holders", [])
            kept = [h for h in holders if h["id"] != holder_id]
            if len(kept) == len(holders):
                return False
            if self.store.put_state(SLOTS, rule.name, {"holders": kept}, version, now):
                return True
        raise Busy("concurrency slots of rule %s: too much contention" % rule.name)

    def running(self, rule, now):
        """The live holders of the rule's slots (for views and the drainer)."""
        doc, _ = self.store.get_state(SLOTS, rule.name)
        return self.live_holders((doc or {}).get("holders", []), now)
