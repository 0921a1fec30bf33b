"""The start queue: items wait for a slot of their rule's concurrency policy
and are started, FIFO, when one frees.

Who drains: every st2bridge-api process, woken by the store's change log
(an `end` entry: an execution finished, so a slot may be free; the API reads
the log anyway, for its stream) and every `interval` (slots held by starts
that never got recorded lapse on their own). Several processes drain
together without starting an item twice: an item is claimed with a lease
before its slot is taken, the slot's holder is the start's idempotency key
(two holders of one item are one), and the start itself carries that key.

Order: FIFO per policy, by arrival; an item whose key has no free slot does
not hold back the items of other keys (one busy host never stalls the
rest), but the items of one key start in their order.
"""

import logging
import time

from st2bridge import errors
from st2bridge.alarms.policy import Policies, idempotency_key
from st2bridge.alarms.processor import summary
from st2bridge.api.starter import StartRequest
from st2bridge.text import one_line

LOG = logging.getLogger("st2bridge.alarms")
BATCH = 500


class Drainer:
    def __init__(
        self,
        store,
        rules,
        starter,
        *,
        owner,
        clock=time.time,
        lease_seconds=30.0,
        hold_seconds=30.0,
    ):
        self.store = store
        self.rules = rules
        self.starter = starter
        self.owner = owner
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.policies = Policies(store, hold_seconds)
        self.started = 0
        self.depth = {}  # policy -> pending items, as of the last pass

    def drain(self):
        """One pass over every policy with pending items; the starts made."""
        self.depth = self.store.count_queue()
        made = 0
        for policy in sorted(self.depth):
            rule = self.rules().get(policy)
            if rule is None or rule.concurrency is None:
                LOG.warning(
                    "%d queued starts wait for rule %s, which is no longer loaded (or has no "
                    "concurrency policy): they stay queued until it is back",
                    self.depth[policy],
                    policy,
                )
                continue
            made += self._drain_policy(rule)
        return made

    def _drain_policy(self, rule):
        made, busy = 0, set()
        for item in self.store.list_queue(policy=rule.name, status="pending", limit=BATCH):
            if item["key"] in busy:
                continue  # an earlier item of this key waits: keep the order
            now = self.clock()
            claimed = self.store.claim_queue_item(item["id"], self.owner, now, self.lease_seconds)
            if claimed is None:
                busy.add(item["key"])  # another process has it
                continue
            holder = idempotency_key(item["id"])
            got, why = self.policies.acquire(rule, item["key"], holder, now)
            if not got:
                self.store.update_queue_item(
                    item["id"],
                    {"lease_owner": None, "lease_expires_at": None},
                    if_lease_owner=self.owner,
                )
                busy.add(item["key"])
                if "total" in why:
                    break  # the whole policy is full
                continue
            if self._start(rule, claimed):
                made += 1
        return made

    def _start(self, rule, item):
        start = item["start"]
        request = StartRequest(
            workflow=start["workflow"],
            namespace=start.get("namespace"),
            input=start["input"],
            labels=start["labels"],
            idempotency_key=idempotency_key(item["id"]),
            started_by="queue:%s" % rule.name,
        )
        try:
            started = self.starter.start(request)
        except (errors.EngineUnavailable, errors.EngineServerError, errors.StoreUnavailable) as exc:
            LOG.warning(
                "queued start %s of rule %s: %s; its lease lapses in %.0f s and it is tried again",
                item["id"],
                rule.name,
                one_line(exc),
                self.lease_seconds,
            )
            return False
        except errors.BridgeError as exc:
            reason = "start refused: %s" % one_line(exc)
            self.store.update_queue_item(
                item["id"], {"status": "canceled", "reason": reason, "lease_owner": None}
            )
            self.policies.release(rule, idempotency_key(item["id"]), self.clock())
            self._note_event(item, {"outcome": "error", "reason": reason})
            LOG.warning("queued start %s of rule %s: %s", item["id"], rule.name, reason)
            return False
        now = self.clock()
        self.store.update_queue_item(
            item["id"],
            {
                "status": "started",
                "execution_id": started.record["id"],
                "started_at": now,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )
        self._note_event(
            item,
            {
                "outcome": "started",
                "execution_id": started.record["id"],
                "reason": "queued, started %.1f s after the event" % (now - item["created_at"]),
            },
        )
        self.started += 1
        LOG.info(
            "queued start %s of rule %s (key %r) started execution %s",
            item["id"],
            rule.name,
            item["key"],
            started.record["id"],
        )
        return True

    def _note_event(self, item, changes):
        """Tell the event what became of its queued action (best effort: the
        queue item and the execution's labels say it too)."""
        try:
            event = self.store.get_event(item["event_id"])
        except errors.NotFound:
            return
        alerts = event["alerts"]
        for alert in alerts:
            for action in alert.get("actions") or []:
                if action.get("action") == item["id"]:
                    action.update(changes)
        self.store.update_event(event["id"], {"alerts": alerts, "outcome": summary(alerts)})

    def run(self, wake, wait, stop_requested, interval=1.0):
        """Drain when woken (an execution ended) and every `interval`."""
        down = False
        while not stop_requested():
            try:
                self.drain()
                if down:
                    LOG.info("store reachable again; the start queue drains again")
                down = False
            except errors.StoreError as exc:
                if not down:
                    LOG.warning(
                        "the start queue is paused: %s; retrying every %.1f s", exc, interval
                    )
                down = True
            wait(interval)
