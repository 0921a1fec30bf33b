"""Prometheus metrics of alarms, on st2bridge-api's /metrics (same key rules):

st2bridge_events_total{source,outcome}        events received (outcome: the event's summary)
st2bridge_alarm_actions_total{rule,outcome}   what rules did with alerts (started, joined, ...)
st2bridge_alarm_queue_depth{policy}           queued starts per rule (last drain pass, <= 1 s old)
st2bridge_alarm_rules, st2bridge_alarm_rule_errors   rules loaded; mistakes in the rule files
"""

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily


class AlarmMetrics:
    def __init__(self, registry, drainer, rules):
        self.drainer = drainer
        self.rules = rules
        self.events = Counter(
            "st2bridge_events",
            "Events received, by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.actions = Counter(
            "st2bridge_alarm_actions",
            "What the rules did with alerts, by rule and outcome.",
            ["rule", "outcome"],
            registry=registry,
        )
        registry.register(_Live(self))

    def observe_event(self, event):
        self.events.labels(event["source"], event.get("outcome") or "").inc()
        for alert in event.get("alerts") or []:
            for action in alert.get("actions") or []:
                self.actions.labels(action["rule"], action["outcome"]).inc()


class _Live:
    def __init__(self, metrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        depth = GaugeMetricFamily(
            "st2bridge_alarm_queue_depth",
            "Starts waiting for a concurrency slot, per policy (rule).",
            labels=["policy"],
        )
        ruleset = self.m.rules()
        names = {r.name for r in ruleset.rules if r.concurrency is not None}
        for policy in sorted(names | set(self.m.drainer.depth)):
            depth.add_metric([policy], self.m.drainer.depth.get(policy, 0))
        yield depth
        yield GaugeMetricFamily(
            "st2bridge_alarm_rules", "Alarm rules loaded.", value=len(ruleset.rules)
        )
        yield GaugeMetricFamily(
            "st2bridge_alarm_rule_errors",
            "Mistakes found in the rule files at the last load.",
            value=len(ruleset.errors),
        )
