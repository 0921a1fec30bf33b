"""Alarms inside st2bridge-api: the rules in force (re-read on SIGHUP), the
event endpoints, and one loop that drains the start queue and takes over
events other processes left unfinished. Woken by the change log (any news:
an execution that ended may free a slot) and every second."""

import logging
import time

from st2bridge import concurrency, errors
from st2bridge.alarms.drainer import Drainer
from st2bridge.alarms.endpoints import EventHandlers
from st2bridge.alarms.metrics import AlarmMetrics
from st2bridge.alarms.policy import DEDUP
from st2bridge.alarms.processor import Processor
from st2bridge.alarms.rules import RuleSet

LOG = logging.getLogger("st2bridge.alarms")
TICK = 1.0


class Alarms:
    def __init__(self, conf, store, engine, starter, owner, api_metrics=None, clock=time.time):
        self.conf = conf
        self.store = store
        self.clock = clock
        self.ruleset = self._load(initial=True) or RuleSet(rules_dir=conf.api.rules_dir)
        rules = lambda: self.ruleset  # noqa: E731 -- replaced whole on reload
        self.processor = Processor(store, rules, starter, engine, owner=owner, clock=clock)
        self.drainer = Drainer(store, rules, starter, owner=owner, clock=clock)
        self.handlers = EventHandlers(store, self.processor, conf.api.event_secrets, clock)
        self.metrics = None
        if api_metrics is not None:
            self.metrics = AlarmMetrics(api_metrics.registry, self.drainer, rules)
            self.processor.observers.append(self.metrics.observe_event)
        self._wake = concurrency.current().event()
        self.stopping = False

    def _load(self, initial=False):
        folder = self.conf.api.rules_dir
        ruleset = RuleSet.load(folder)
        for line in ruleset.errors:
            LOG.error("alarm rule: %s", line)
        if ruleset.errors and not initial:
            LOG.error(
                "SIGHUP: %d mistakes in the rules of %s: the %d rules loaded before stay in force",
                len(ruleset.errors),
                folder,
                len(self.ruleset.rules),
            )
            return None
        LOG.info(
            "%d alarm rules loaded from %s%s",
            len(ruleset.rules),
            folder,
            " (%d files with mistakes left out)" % len(ruleset.errors) if ruleset.errors else "",
        )
        return ruleset

    def reload(self):
        fresh = self._load()
        if fresh is not None:
            self.ruleset = fresh
            self.wake()

    def routes(self):
        return self.handlers.routes()

    def wake(self):
        self._wake.set()

    def stop(self):
        self.stopping = True
        self._wake.set()

    def run(self, sleep, stop_requested):
        down = False
        while not (stop_requested() or self.stopping):
            try:
                self.processor.recover()
                self.drainer.drain()
                if down:
                    LOG.info("store reachable again: queued starts and unfinished events go on")
                down = False
            except errors.StoreError as exc:
                if not down:
                    LOG.warning(
                        "alarms paused (queue, unfinished events): %s; retrying every %.0f s",
                        exc,
                        TICK,
                    )
                down = True
            self._wake.wait(TICK)
            self._wake.clear()

    def prune(self, now):
        keep = self.conf.api.event_retention
        try:
            events = self.store.prune_events(now - keep)
            keys = self.store.prune_state(DEDUP, now - keep)
        except errors.StoreError as exc:
            LOG.warning("pruning old events failed: %s; trying again later", exc)
            return
        if events or keys:
            LOG.info(
                "pruned %d events and %d de-duplication keys older than [api] event_retention",
                events,
                keys,
            )

    def stats(self):
        return {
            "rules": len(self.ruleset.rules),
            "rule_errors": len(self.ruleset.errors),
            "queued": sum(self.drainer.depth.values()),
            "queue_started": self.drainer.started,
        }
