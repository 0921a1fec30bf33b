"""Alarms with real clients: Prometheus scrapes two small targets of the
test and evaluates TargetDown (up == 0); Alertmanager sends to
st2bridge-api's /v1/events/alertmanager with a bearer API key; a real
Mistral runs the remediation, a real tracker (hybrid) records it.

The test stops one target: exactly one remediation starts for that
instance however many times Alertmanager re-sends (repeat_interval 3 s);
the target comes back: the resolved notification starts the rule's
on_resolved workflow, once.
"""

import json
import signal
import time

import pytest

from tests.support.api_procs import create_key, start_api, wait_healthy
from tests.support.bridge import Bridge, start_listening_tracker, wait_for
from tests.support.monitoring import Monitoring, Target, binaries
from tests.support.net import free_port

pytestmark = pytest.mark.integration

WORKFLOWS = """version: '2.0'
remediate_host:
  input: [host]
  output:
    fixed: <% $.fixed %>
  tasks:
    look:
      action: std.echo output="restarting <% $.host %>"
      publish:
        fixed: <% task().result %>
      on-success: [settle]
    settle:
      action: std.sleep seconds=4
after_resolved:
  input: [host]
  tasks:
    note:
      action: std.echo output="<% $.host %> is back"
"""
RULE = """
name: restart-on-target-down
source: alertmanager
criteria:
  labels.alertname: {equals: TargetDown}
  labels.job: {equals: node}
workflow: remediate_host
input:
  host: "{{ labels.instance }}"
dedup_key: "{{ fingerprint }}"
cooldown: 10m
concurrency: {key: "{{ labels.instance }}", limit: 1, overflow: queue}
on_resolved:
  workflow: after_resolved
  input: {host: "{{ labels.instance }}"}
"""


@pytest.fixture
def stack(tmp_path, mistral):
    binaries()
    bridge = Bridge(tmp_path, mistral.api_url)
    callback_port, api_port = free_port(), free_port()
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "remediate.yaml").write_text(RULE)
    bridge.write(mode="hybrid", callback_port=callback_port, extra="stale_after = 60\n")
    with open(bridge.conf, "a") as conf:
        conf.write(
            "[metrics]\nport = 0\n[web]\nport = 0\n[api]\nport = %d\nrules_dir = %s\n"
            % (api_port, rules)
        )
    (tmp_path / "wf.yaml").write_text(WORKFLOWS)
    registered = bridge.cli("workflow", "register", tmp_path / "wf.yaml")
    assert registered.returncode == 0, registered.stderr
    key = create_key(bridge.conf, "alertmanager")
    procs = [start_listening_tracker(bridge, callback_port)]
    url = "http://127.0.0.1:%d" % api_port
    procs.append(start_api(bridge.conf, tmp_path / "api.log"))
    wait_healthy(url, procs[-1])
    targets = [Target(), Target()]
    monitoring = Monitoring(tmp_path / "monitoring", targets, url + "/v1/events/alertmanager", key)
    monitoring.start()
    yield bridge, targets, monitoring
    monitoring.stop()
    for target in targets:
        target.stop()
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def events(bridge):
    listed = bridge.cli("event", "list", "--limit", "500", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def executions(bridge, workflow):
    return [r for r in bridge.records() if r["workflow_name"] == workflow]


def test_one_remediation_per_fault_however_often_alertmanager_resends(stack):
    bridge, (down, healthy), monitoring = stack
    wait_for("both targets up in Prometheus", lambda: set(monitoring.up().values()) == {"1"}, 60)
    down.stop()
    started = time.monotonic()
    remediation = wait_for(
        "the remediation of %s" % down.instance, lambda: executions(bridge, "remediate_host"), 60
    )
    print("alert to remediation: %.1f s" % (time.monotonic() - started))
    assert len(remediation) == 1
    record = remediation[0]
    assert record["input"] == {"host": down.instance}
    assert record["labels"]["rule"] == "restart-on-target-down"
    # Alertmanager sends the group again every 3 s: every one joins.
    wait_for("Alertmanager to re-send 3 times", lambda: len(events(bridge)) >= 4, 60)
    done = wait_for(
        "the remediation to end",
        lambda: (
            bridge.get(record["id"])["status"] in ("succeeded", "failed")
            and bridge.get(record["id"])
        ),
        90,
    )
    assert done["status"] == "succeeded", done
    assert done["output"]["fixed"] == "restarting %s" % down.instance
    seen = events(bridge)
    assert sum(1 for e in seen if e["outcome"] == "started") == 1
    assert {e["outcome"] for e in seen} == {"started", "joined"}
    joined = [e for e in seen if e["outcome"] == "joined"]
    assert len(joined) >= 3 and all(e["executions"] == [record["id"]] for e in joined)
    got = bridge.cli("event", "get", joined[0]["id"])
    assert "rule restart-on-target-down: joined execution %s" % record["id"] in got.stdout
    # The target comes back: the resolved alert starts after_resolved, once.
    down.start()
    wait_for("the resolved workflow", lambda: executions(bridge, "after_resolved"), 60)
    time.sleep(4)  # room for repeats
    after = executions(bridge, "after_resolved")
    assert len(after) == 1 and after[0]["input"] == {"host": down.instance}
    assert len(executions(bridge, "remediate_host")) == 1
    assert healthy.instance not in json.dumps([r["input"] for r in bridge.records()])
    wait_for(
        "after_resolved to succeed", lambda: bridge.get(after[0]["id"])["status"] == "succeeded", 60
    )
