"""Alarms end to end in-process: the event endpoints, rules, de-duplication,
concurrency (queue, drop), resolved alerts, signatures, and taking over an
unfinished event; against the engine simulator (executions are ended by
writing the record, as a tracker would)."""

import json
import time

import pytest

from st2bridge import status as st
from st2bridge.api import signing
from tests.support import engine_sim
from tests.support.alarm_app import AlarmHarness, Clock, am_alert, am_payload

RULE = """
name: restart-on-target-down
source: alertmanager
criteria:
  labels.alertname: {equals: TargetDown}
workflow: remediate_host
input:
  host: "{{ labels.instance }}"
  summary: "{{ annotations.summary }} ({{ status }})"
dedup_key: "{{ fingerprint }}"
cooldown: %(cooldown)s
concurrency: {key: "{{ labels.instance }}", limit: 1, %(total)s overflow: %(overflow)s}
on_resolved: %(resolved)s
"""
WF = """version: '2.0'
%s:
  input: [host, summary]
  tasks:
    a:
      action: std.noop
"""


@pytest.fixture(scope="module")
def sim():
    handle = engine_sim.start_in_thread(duration=600)
    yield handle
    handle.stop()


def harness(tmp_path, sim, cooldown=0, overflow="queue", resolved="nothing", total="", **kw):
    return registered(
        AlarmHarness(
            tmp_path,
            sim,
            RULE
            % {"cooldown": cooldown, "overflow": overflow, "resolved": resolved, "total": total},
            **kw,
        ),
        sim,
    )


def registered(h, sim):
    for name in ("remediate_host", "after_resolved"):
        if ("", name) not in sim.sim.defs.workflows:
            h.engine.create_workflows(WF % name)
    return h


@pytest.fixture
def api(tmp_path, sim):
    h = harness(tmp_path, sim)
    yield h
    h.close()


def actions(answer_or_event, api):
    event = api.call("GET", "/v1/events/" + answer_or_event.body["id"]).body
    return [a for alert in event["alerts"] for a in alert["actions"]]


def end(api, execution_id, status=st.SUCCEEDED, at=None):
    assert api.store.update_execution(
        execution_id, {"status": status, "ended_at": at or time.time()}
    )


def test_a_firing_alert_starts_its_workflow_with_labels_and_input(api):
    answer = api.alertmanager(["db1:9100"])
    assert answer.status == 200 and answer.body["outcome"] == "started"
    [action] = actions(answer, api)
    record = api.store.get_execution(action["execution_id"])
    assert record["workflow_name"] == "remediate_host"
    assert record["input"] == {"host": "db1:9100", "summary": "db1:9100 is down (firing)"}
    assert record["labels"] == {"rule": "restart-on-target-down", "event": answer.body["id"]}
    found = api.call("GET", "/v1/executions?label=rule=restart-on-target-down").body
    assert [e["id"] for e in found["executions"]] == [record["id"]]
    assert answer.body["executions"] == [record["id"]]


def test_repeats_join_the_running_execution_then_start_again_once_it_ended(api):
    first = api.alertmanager(["db1:9100"])
    [started] = actions(first, api)
    for _ in range(3):
        again = api.alertmanager(["db1:9100"])
        assert again.body["outcome"] == "joined"
        [joined] = actions(again, api)
        assert joined["execution_id"] == started["execution_id"]
        assert joined["joined_event"] == first.body["id"]
        assert "is running" in joined["reason"]
    end(api, started["execution_id"])
    later = api.alertmanager(["db1:9100"])  # no cooldown: a new remediation
    assert later.body["outcome"] == "started"
    assert actions(later, api)[0]["execution_id"] != started["execution_id"]
    assert len(api.store.list_executions(labels={"rule": "restart-on-target-down"})) == 2


def test_cooldown_after_the_end(tmp_path, sim):
    clock = Clock()
    api = harness(tmp_path, sim, cooldown="10m", clock=clock)
    try:
        [started] = actions(api.alertmanager(["db2:9100"]), api)
        end(api, started["execution_id"], at=clock.now)
        clock.now += 300
        again = api.alertmanager(["db2:9100"])
        assert again.body["outcome"] == "joined"
        assert "cooldown" in actions(again, api)[0]["reason"]
        clock.now += 301
        assert api.alertmanager(["db2:9100"]).body["outcome"] == "started"
    finally:
        api.close()


def test_each_alert_of_a_group_on_its_own_and_why_nothing_started(api):
    other = am_alert("x:1", alertname="DiskFull")
    answer = api.alertmanager([am_alert("a:1"), am_alert("b:1"), other])
    event = api.call("GET", "/v1/events/" + answer.body["id"]).body
    outcomes = [[a["outcome"] for a in alert["actions"]] for alert in event["alerts"]]
    assert outcomes == [["started"], ["started"], []]
    assert event["alerts"][2]["unmatched"] == [
        {
            "rule": "restart-on-target-down",
            "reason": "labels.alertname is 'DiskFull', not 'TargetDown'",
        }
    ]
    nothing = api.alertmanager([other])
    assert nothing.body["outcome"] == "no_match"


def test_one_per_instance_the_rest_queued_fifo_and_started_when_a_slot_frees(api):
    a1 = am_alert("h1:1", alertname="TargetDown", probe="a")
    a2 = am_alert("h1:1", alertname="TargetDown", probe="b")
    a3 = am_alert("h1:1", alertname="TargetDown", probe="c")
    first = api.alertmanager([a1])
    queued = api.alertmanager([a2, a3])
    assert queued.body["outcome"] == "queued"
    q = actions(queued, api)
    assert [a["outcome"] for a in q] == ["queued", "queued"]
    assert "1 running for concurrency key 'h1:1'" in q[0]["reason"]
    assert api.drainer.drain() == 0  # still running
    end(api, actions(first, api)[0]["execution_id"])
    assert api.drainer.drain() == 1  # one at a time for h1, the oldest first
    now = actions(queued, api)
    assert now[0]["outcome"] == "started" and now[1]["outcome"] == "queued"
    record = api.store.get_execution(now[0]["execution_id"])
    assert record["labels"]["event"] == queued.body["id"]
    assert api.store.count_queue() == {"restart-on-target-down": 1}
    end(api, now[0]["execution_id"])
    assert api.drainer.drain() == 1
    assert api.drainer.drain() == 0
    assert api.store.count_queue() == {}
    # A repeat of a queued alert joined its queue item, not a new start.
    assert len(api.store.list_executions(labels={"rule": "restart-on-target-down"})) == 3


def test_overflow_drop_and_a_total(tmp_path, sim):
    api = harness(tmp_path, sim, overflow="drop", total="total: 2,")
    try:
        assert api.alertmanager(["a:1"]).body["outcome"] == "started"
        dropped = api.alertmanager([am_alert("a:1", probe="2")])
        assert dropped.body["outcome"] == "dropped"
        assert "limit 1" in actions(dropped, api)[0]["reason"]
        assert api.alertmanager(["b:1"]).body["outcome"] == "started"
        full = api.alertmanager(["c:1"])
        assert full.body["outcome"] == "dropped"
        assert "total 2" in actions(full, api)[0]["reason"]
        # A dropped alert did not keep its dedup key: sent again later, it starts.
        [b] = api.store.list_executions(labels={"rule": "restart-on-target-down"}, limit=1)
        end(api, b["id"])
        assert api.alertmanager(["c:1"]).body["outcome"] == "started"
    finally:
        api.close()


def test_resolved_cancels_the_running_remediation(tmp_path, sim):
    api = harness(tmp_path, sim, resolved="cancel")
    try:
        [started] = actions(api.alertmanager(["a:1"]), api)
        resolved = api.alertmanager([am_alert("a:1", status="resolved")])
        assert resolved.body["outcome"] == "canceled"
        record = api.store.get_execution(started["execution_id"])
        assert record["status"] in (st.CANCELING, st.CANCELED)
        ex = sim.sim.execs[record["engine_execution_id"]]
        assert sim.sim.state(ex, sim.sim.now()) == "CANCELLED"
    finally:
        api.close()


def test_resolved_starts_another_workflow_once(tmp_path, sim):
    api = harness(
        tmp_path,
        sim,
        resolved="{workflow: after_resolved, input: {host: '{{ labels.instance }}', summary: r}}",
    )
    try:
        api.alertmanager(["a:1"])
        first = api.alertmanager([am_alert("a:1", status="resolved")])
        assert first.body["outcome"] == "started"
        [action] = actions(first, api)
        assert api.store.get_execution(action["execution_id"])["workflow_name"] == "after_resolved"
        again = api.alertmanager([am_alert("a:1", status="resolved")])
        assert again.body["outcome"] == "joined"
    finally:
        api.close()


def test_signed_webhook_events_and_keys(tmp_path, sim):
    rule = (
        "name: hook\nsource: webhook/ci\ncriteria:\n  body.host: {exists: true}\n"
        "workflow: remediate_host\ninput: {host: '{{ body.host }}', summary: x}\n"
    )
    api = registered(
        AlarmHarness(tmp_path, sim, rule, secrets={"webhook/ci": "s3cret-s3cret-s3cret"}), sim
    )
    try:
        body = json.dumps({"host": "h9"}).encode()
        headers = signing.sign("s3cret-s3cret-s3cret", body)
        ok = api.call("POST", "/v1/events/webhook/ci", raw=body, headers=headers, key=None)
        assert ok.status == 200 and ok.body["outcome"] == "started"
        assert api.store.get_event(ok.body["id"])["by"] == "signature:webhook/ci"
        bad = dict(headers, **{"X-St2bridge-Signature": "sha256=" + "0" * 64})
        assert (
            api.call("POST", "/v1/events/webhook/ci", raw=body, headers=bad, key=None).status == 401
        )
        old = signing.sign("s3cret-s3cret-s3cret", body, now=time.time() - 3600)
        assert (
            api.call("POST", "/v1/events/webhook/ci", raw=body, headers=old, key=None).status == 401
        )
        other = signing.sign("s3cret-s3cret-s3cret", body)
        assert (
            api.call("POST", "/v1/events/webhook/cd", raw=body, headers=other, key=None).status
            == 401
        )
        assert api.call("POST", "/v1/events/webhook/ci", {"host": "h"}, key=None).status == 401
        assert api.call("POST", "/v1/events/webhook/ci", {"host": "h"}, key="ro").status == 403
        assert api.call("POST", "/v1/events/webhook/ci", {"host": "h"}).status == 200
        assert len(api.store.list_events()) == 2  # refused requests record nothing
    finally:
        api.close()


def test_a_payload_the_source_never_sends_is_recorded_and_refused(api):
    answer = api.call("POST", "/v1/events/alertmanager", {"version": "3", "alerts": []})
    assert answer.status == 400 and "version" in answer.body["error"]
    [event] = api.store.list_events()
    assert event["outcome"] == "rejected" and "version" in event["alerts"][0]["error"]


def test_a_template_error_is_the_reason(tmp_path, sim):
    rule = "name: r\nsource: aodh\nworkflow: remediate_host\ninput: {host: '{{ resource }}'}\n"
    api = AlarmHarness(tmp_path, sim, rule)
    try:
        answer = api.call(
            "POST", "/v1/events/aodh", {"alarm_id": "a1", "alarm_name": "cpu", "current": "alarm"}
        )
        assert answer.body["outcome"] == "error"
        assert "'resource' is undefined" in actions(answer, api)[0]["reason"]
    finally:
        api.close()


def test_an_event_left_unfinished_is_taken_over_and_started_once(tmp_path, sim):
    clock = Clock()
    api = harness(tmp_path, sim, clock=clock)
    try:
        # A process that decided and died before it started anything: the
        # event as it would have been written, its lease lapsing.
        real_start = api.processor._start
        api.processor._start = lambda event, action: None
        answer = api.alertmanager(["a:1"])
        assert answer.status == 202 and answer.body["status"] == "received"
        api.processor._start = real_start
        assert api.processor.recover() == 0  # its lease holds
        assert api.store.list_executions() == []
        clock.now += 60
        assert api.processor.recover() == 1
        event = api.store.get_event(answer.body["id"])
        assert event["status"] == "processed" and event["outcome"] == "started"
        clock.now += 600
        api.store.update_event(event["id"], {"status": "received", "lease_expires_at": 0})
        assert api.processor.recover() == 1  # again: the same execution, not a second one
        assert len(api.store.list_executions()) == 1
        assert api.store.get_event(event["id"])["outcome"] == "started"
    finally:
        api.close()


def test_engine_down_the_start_waits_and_is_retried(tmp_path, sim):
    clock = Clock()
    api = harness(tmp_path, sim, clock=clock)
    try:
        sim.sim.faults["error_rate"] = 1.0
        answer = api.alertmanager(["down:1"])
        assert answer.status == 202
        [action] = actions(answer, api)
        assert action["outcome"] == "start" and "start pending" in action["reason"]
        sim.sim.faults.clear()
        clock.now += 120
        assert api.processor.recover() == 1
        assert api.store.get_event(answer.body["id"])["outcome"] == "started"
    finally:
        sim.sim.faults.clear()
        api.close()


def test_list_events_filters_and_pages(api):
    for host in ("a:1", "a:1", "b:1"):
        api.alertmanager([host])
    listed = api.call("GET", "/v1/events?outcome=joined").body["events"]
    assert [e["outcome"] for e in listed] == ["joined"]
    page = api.call("GET", "/v1/events?limit=2").body
    rest = api.call("GET", "/v1/events?limit=2&marker=" + page["next_marker"]).body
    assert len(page["events"]) == 2 and len(rest["events"]) == 1
    assert api.call("GET", "/v1/events?colour=red").status == 400
    assert api.call("GET", "/v1/events/nope").status == 404


def test_aodh_alarm_and_ok(tmp_path, sim):
    rule = (
        "name: aodh-cpu\nsource: aodh\ncriteria:\n  severity: {in: [critical, moderate]}\n"
        "workflow: remediate_host\ninput: {host: '{{ alarm_name }}', summary: '{{ reason }}'}\n"
        "on_resolved: cancel\n"
    )
    api = registered(AlarmHarness(tmp_path, sim, rule), sim)
    try:
        alarm = {
            "alarm_id": "a1",
            "alarm_name": "cpu",
            "severity": "critical",
            "current": "alarm",
            "previous": "ok",
            "reason": "cpu > 90",
            "reason_data": {},
        }
        assert api.call("POST", "/v1/events/aodh", alarm).body["outcome"] == "started"
        assert api.call("POST", "/v1/events/aodh", alarm).body["outcome"] == "joined"
        ok = api.call("POST", "/v1/events/aodh", dict(alarm, current="ok", previous="alarm"))
        assert ok.body["outcome"] == "canceled"
    finally:
        api.close()


def test_payload_is_kept_and_shown_with_secrets_masked(api):
    payload = am_payload(["a:1"])
    payload["commonAnnotations"] = {"password": "hunter2"}
    answer = api.call("POST", "/v1/events/alertmanager", payload)
    shown = api.call("GET", "/v1/events/" + answer.body["id"]).body
    assert shown["payload"]["commonAnnotations"] == {"password": "***"}
    assert api.store.get_event(answer.body["id"])["payload"] == payload


def test_the_web_view_lists_events_linked_to_their_executions(api):
    from st2bridge.web.app import make_app
    from tests.unit.test_web import call

    alert = am_alert("a:1", note="<script>x</script>")
    started = api.alertmanager([alert])
    api.alertmanager([alert])
    api.alertmanager([am_alert("z:1", alertname="Other")])
    execution_id = started.body["executions"][0]
    status, _, body = call(make_app(api.store, None), "/events")
    assert status == 200
    assert body.count('href="executions/%s"' % execution_id) == 2  # started, and joined
    assert "no rule of source alertmanager matched" in body
    assert "<script>x" not in body


def test_sighup_reload_keeps_the_rules_in_force_when_a_file_is_wrong_and_metrics(
    tmp_path, sim, caplog
):
    from st2bridge import config
    from st2bridge.alarms.service import Alarms
    from st2bridge.api.metrics import ApiMetrics

    rules = tmp_path / "other-rules.d"
    rules.mkdir()
    (rules / "a.yaml").write_text("name: a\nsource: aodh\nworkflow: remediate_host\n")
    conf_file = tmp_path / "bridge.conf"
    conf_file.write_text("[DEFAULT]\nstate_path = %s\n[api]\nrules_dir = %s\n" % (tmp_path, rules))
    conf = config.load(["--config-file", str(conf_file)])
    api = harness(tmp_path, sim)
    try:
        metrics = ApiMetrics(api.feed, None)
        alarms = Alarms(conf, api.store, api.engine, api.starter, "o", metrics)
        assert [r.name for r in alarms.ruleset.rules] == ["a"]
        (rules / "b.yaml").write_text("name: b\nsource: aodh\nworkflow: remediate_host\n")
        alarms.reload()
        assert [r.name for r in alarms.ruleset.rules] == ["a", "b"]
        (rules / "c.yaml").write_text("name: c\nsource: aodh\n")
        alarms.reload()
        assert [r.name for r in alarms.ruleset.rules] == ["a", "b"]  # kept
        assert "c.yaml:1: rule c: workflow is required" in caplog.text
        assert "the 2 rules loaded before stay in force" in caplog.text
        alarms.processor.receive(
            "aodh", None, {"alarm_id": "x", "current": "insufficient data"}, "k"
        )
        text = metrics.render().decode()
        assert 'st2bridge_events_total{outcome="resolved",source="aodh"} 1.0' in text
        assert 'st2bridge_alarm_actions_total{outcome="resolved",rule="a"} 1.0' in text
        assert "st2bridge_alarm_rules 2.0" in text
    finally:
        api.close()
