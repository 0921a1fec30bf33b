"""st2bridge-api with alarms, in-process over a SQLite store and the engine
simulator (tests/support/api_app.py), and Alertmanager payloads made here."""

import time

from st2bridge.alarms.drainer import Drainer
from st2bridge.alarms.endpoints import EventHandlers
from st2bridge.alarms.processor import Processor
from st2bridge.alarms.rules import RuleSet
from st2bridge.alarms.sources import label_fingerprint
from st2bridge.api import routes
from tests.support.api_app import ApiHarness


class Clock:
    def __init__(self, now=None):
        self.now = time.time() if now is None else now

    def __call__(self):
        return self.now


class AlarmHarness(ApiHarness):
    def __init__(self, tmp_path, sim, rules_text, clock=time.time, secrets=None, owner="test"):
        super().__init__(tmp_path, sim)
        self.rules_dir = tmp_path / "rules.d"
        self.rules_dir.mkdir(exist_ok=True)
        (self.rules_dir / "rules.yaml").write_text(rules_text)
        self.ruleset = RuleSet.load(str(self.rules_dir))
        assert not self.ruleset.errors, self.ruleset.errors
        self.clock = clock
        rules = lambda: self.ruleset  # noqa: E731
        self.processor = Processor(
            self.store, rules, self.starter, self.engine, owner=owner, clock=clock
        )
        self.drainer = Drainer(self.store, rules, self.starter, owner=owner, clock=clock)
        self.handlers = EventHandlers(self.store, self.processor, secrets, clock)
        self.app = routes.build(
            self.store,
            self.engine,
            self.starter,
            self.feed,
            keepalive=0.2,
            extra_routes=self.handlers.routes(),
        )

    def alertmanager(self, alerts, **kw):
        return self.call("POST", "/v1/events/alertmanager", am_payload(alerts), **kw)


def am_alert(instance, status="firing", alertname="TargetDown", **labels):
    labels = dict(labels, alertname=alertname, instance=instance, job="node")
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "%s is down" % instance},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": label_fingerprint(labels),
    }


def am_payload(alerts):
    alerts = [am_alert(a) if isinstance(a, str) else a for a in alerts]
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="TargetDown"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "st2bridge",
        "groupLabels": {"alertname": "TargetDown"},
        "commonLabels": {"alertname": "TargetDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": alerts,
    }
