"""An alarm storm against st2bridge-api as a process (engine simulator,
a polling tracker): 1,000 generated Alertmanager alerts over 50 instances,
two faults per instance, duplicates and resolved alerts mixed in, posted by
8 clients at once in groups. The rule: one remediation per instance at a
time, 10 at most in all, the rest queued; a cooldown of an hour, so each
fault runs exactly once.

Checked: every alert is in the event log with an outcome; each fault ran
once (one engine execution each: none lost, none twice); no two executions
of one instance overlapped and never more than 10 at once (from the
records' start and end); the API is killed (-9) with starts still queued and
the queue drains once it is back.
"""

import json
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from st2bridge import status as st
from st2bridge.store import open_store
from tests.support.alarm_app import am_alert, am_payload
from tests.support.api_procs import ROOT, create_key, start_api, wait_healthy
from tests.support.bridge import wait_for
from tests.support.net import free_port

pytestmark = pytest.mark.integration

INSTANCES, FAULTS, ALERTS, TOTAL = 50, 2, 1000, 10
RULE = (
    """
name: storm
source: alertmanager
workflow: remediate_host
input:
  host: "{{ labels.instance }}"
  fault: "{{ fingerprint }}"
dedup_key: "{{ fingerprint }}"
cooldown: 1h
concurrency: {key: "{{ labels.instance }}", limit: 1, total: %d, overflow: queue}
"""
    % TOTAL
)
WF = (
    "version: '2.0'\nremediate_host:\n  input: [host, fault]\n"
    "  tasks:\n    a:\n      action: std.noop\n"
)


def storm(seed=7):
    """1,000 alerts: each fault fires first somewhere, then repeats and
    resolved ones, shuffled in groups of up to 25."""
    rng = random.Random(seed)
    faults = [("h%02d:9100" % i, "Fault%d" % f) for i in range(INSTANCES) for f in range(FAULTS)]
    alerts = [am_alert(inst, alertname=name) for inst, name in faults]
    while len(alerts) < ALERTS:
        inst, name = rng.choice(faults)
        status = "resolved" if rng.random() < 0.15 else "firing"
        alerts.append(am_alert(inst, alertname=name, status=status))
    head, tail = alerts[: len(faults)], alerts[len(faults) :]
    rng.shuffle(tail)
    alerts = head + tail
    groups, i = [], 0
    while i < len(alerts):
        n = rng.randint(1, 25)
        groups.append(alerts[i : i + n])
        i += n
    return groups


@pytest.fixture
def bridge(tmp_path):
    sim_port, api_port = free_port(), free_port()
    procs = []
    sim = subprocess.Popen(
        [sys.executable, "-m", "tests.support.engine_sim", "--port", str(sim_port)]
        + ["--duration", "0.4", "--duration-jitter", "0.4"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    procs.append(sim)
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "storm.yaml").write_text(RULE)
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = http://127.0.0.1:%d/v2\n"
        "retry_exp_msec = 50\nretry_exp_max_msec = 200\n"
        "[resultstracker]\nmode = poll\nquery_interval = 0.2\n"
        "[metrics]\nport = 0\n[web]\nport = 0\n"
        "[api]\nport = %d\nrules_dir = %s\n" % (tmp_path, sim_port, api_port, rules)
    )
    wait_for("the simulator", lambda: _answers("http://127.0.0.1:%d/_sim/stats" % sim_port), 20)
    requests.post("http://127.0.0.1:%d/v2/workflows" % sim_port, data=WF, timeout=10)
    key = create_key(conf)
    log = open(tmp_path / "tracker.log", "ab")
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    env = {
        "conf": conf,
        "url": "http://127.0.0.1:%d" % api_port,
        "sim": "http://127.0.0.1:%d" % sim_port,
        "key": key,
        "dir": tmp_path,
        "api": None,
    }
    env["api"] = start_api(conf, tmp_path / "api.log")
    wait_healthy(env["url"], env["api"])
    yield env
    for proc in [env["api"]] + procs[::-1]:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _answers(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def post_all(env, groups, clients=8):
    answers, lock, work = [], threading.Lock(), list(enumerate(groups))

    def client():
        session = requests.Session()
        while True:
            with lock:
                if not work:
                    return
                index, group = work.pop(0)
            got = session.post(
                env["url"] + "/v1/events/alertmanager",
                json=am_payload(group),
                headers={"Authorization": "Bearer " + env["key"]},
                timeout=60,
            )
            with lock:
                answers.append((index, got.status_code, got.json()))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_storm_each_fault_once_within_the_policy_and_the_queue_survives_kill_9(bridge):
    groups = storm()
    started = time.monotonic()
    answers = post_all(bridge, groups)
    took = time.monotonic() - started
    print("posted %d alerts in %d requests in %.2f s" % (ALERTS, len(groups), took))
    assert sorted(a[1] for a in answers) == [200] * len(groups), [a for a in answers if a[1] != 200]
    db = "sqlite:///%s/bridge.db" % bridge["dir"]
    with open_store(db) as store:
        queued = sum(store.count_queue().values())
    assert queued > 0, "the storm should leave starts queued (10 at once for 100 faults)"
    bridge["api"].send_signal(signal.SIGKILL)  # with starts still queued
    bridge["api"].wait(10)
    print("killed the API with %d starts queued" % queued)
    bridge["api"] = start_api(bridge["conf"], bridge["dir"] / "api-2.log")
    wait_healthy(bridge["url"], bridge["api"])

    def drained():
        with open_store(db) as store:
            if store.count_queue():
                return False
            records = store.list_executions(limit=None)
        return len(records) == INSTANCES * FAULTS and all(
            r["status"] == st.SUCCEEDED for r in records
        )

    wait_for("the queue to drain and every remediation to end", drained, timeout=120)
    with open_store(db) as store:
        records = store.list_executions(limit=None)
        events = store.list_events(limit=1000)
        assert store.count_queue("pending") == {}
    # Each fault ran once: one record and one engine execution each.
    faults = [r["input"]["fault"] for r in records]
    assert len(set(faults)) == len(faults) == INSTANCES * FAULTS
    engine = requests.get(bridge["sim"] + "/_sim/stats", timeout=10).json()
    assert engine["executions"]["total"] == INSTANCES * FAULTS
    # Every alert is in the event log, with an outcome that accounts for it.
    alerts = [a for e in events for a in e["alerts"]]
    assert len(events) == len(groups) and len(alerts) == ALERTS
    outcomes = {}
    for alert in alerts:
        [action] = alert["actions"]
        outcomes[action["outcome"]] = outcomes.get(action["outcome"], 0) + 1
        if alert["status"] == "resolved":
            assert action["outcome"] == "resolved"
        else:
            assert action["outcome"] in ("started", "queued", "joined"), action
    print("outcomes: %s" % json.dumps(outcomes, sort_keys=True))
    assert outcomes.get("started", 0) + outcomes.get("queued", 0) == INSTANCES * FAULTS
    # The policy held: one per instance at a time, at most TOTAL at once.
    spans = sorted((r["created_at"], r["ended_at"], r["input"]["host"]) for r in records)
    by_host = {}
    for begin, end, host in spans:
        for other_begin, other_end in by_host.get(host, []):
            assert end <= other_begin or begin >= other_end, "two at once on %s" % host
        by_host.setdefault(host, []).append((begin, end))
    edges = sorted([(b, 1) for b, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    print("peak concurrent executions: %d (policy total %d)" % (peak, TOTAL))
    assert peak <= TOTAL
