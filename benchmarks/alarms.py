"""Benchmark of alarms in st2bridge-api (one API process, SQLite store,
engine simulator).

    python -m benchmarks.alarms [--faults 200] [--alerts 20000] [--group 50]
                                [--clients 8] [--starts 300] [--json FILE]

Figures, each printed beside its goal (issue 20):
  * ingest with de-duplication: `--faults` distinct alerts fire first (each
    starts a workflow; they run for an hour in the simulator), then
    `--alerts` repeats of them are posted by `--clients` clients in
    Alertmanager groups of `--group`: alerts/s over the repeats (each one
    recorded in the event log, matched, de-duplicated): >= 1,000;
  * submit latency: `--starts` new alerts, one per request, one at a time:
    from the request sent to the answer received, which comes after the
    engine accepted the start (the event is recorded, matched, the
    execution recorded and submitted, the event written again): p50 <= 20
    ms. It is an upper bound of "arrival to submitted".
The simulator and the API each run as a process of their own; the clients
are threads of this one.
"""

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.api import cpu_model, pct
from tests.support.alarm_app import am_alert, am_payload
from tests.support.api_procs import ROOT, create_key, start_api, wait_healthy
from tests.support.net import free_port
from tests.support.procs import load

GOALS = {"ingest_alerts_per_s": (">=", 1000.0), "submit_p50_ms": ("<=", 20.0)}
WF = "version: '2.0'\nremediate_host:\n  input: [host]\n  tasks:\n    a:\n      action: std.noop\n"
RULE = """
name: bench
source: alertmanager
criteria:
  labels.alertname: {regex: "^Bench"}
workflow: remediate_host
input:
  host: "{{ labels.instance }}"
dedup_key: "{{ fingerprint }}"
concurrency: {key: "{{ labels.instance }}", limit: 1, overflow: queue}
"""


class Conn:
    def __init__(self, port, key):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}

    def post(self, alerts):
        self.c.request(
            "POST", "/v1/events/alertmanager", json.dumps(am_payload(alerts)), self.headers
        )
        answer = self.c.getresponse()
        return answer.status, json.loads(answer.read())


def ingest(port, key, faults, alerts, group, clients):
    first = [am_alert("f%05d:9100" % i, alertname="BenchFault") for i in range(faults)]
    conn = Conn(port, key)
    for i in range(0, faults, group):
        status, body = conn.post(first[i : i + group])
        assert status == 200 and body["outcome"] == "started", body
    batches = [
        [first[(b * group + j) % faults] for j in range(group)]
        for b in range(max(1, alerts // group))
    ]
    work, lock, outcomes = list(batches), threading.Lock(), {}

    def client():
        c = Conn(port, key)
        while True:
            with lock:
                if not work:
                    return
                batch = work.pop()
            status, body = c.post(batch)
            with lock:
                outcomes[(status, body.get("outcome"))] = (
                    outcomes.get((status, body.get("outcome")), 0) + 1
                )

    threads = [threading.Thread(target=client) for _ in range(clients)]
    begun = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - begun
    sent = len(batches) * group
    return {
        "ingest_alerts_per_s": round(sent / took, 1),
        "ingest_requests_per_s": round(len(batches) / took, 1),
        "ingest_alerts": sent,
        "ingest_outcomes": {"%d %s" % k: v for k, v in outcomes.items()},
    }


def submit(port, key, n):
    conn = Conn(port, key)
    times = []
    for i in range(20 + n):
        alert = am_alert("s%05d:9100" % i, alertname="BenchStart")
        t = time.perf_counter()
        status, body = conn.post([alert])
        took = (time.perf_counter() - t) * 1000
        assert status == 200 and body["outcome"] == "started", body
        if i >= 20:  # after a warm-up
            times.append(took)
    return {
        "submit_p50_ms": round(pct(times, 50), 2),
        "submit_p99_ms": round(pct(times, 99), 2),
        "submit_n": n,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--alerts", type=int, default=20000)
    ap.add_argument("--group", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--starts", type=int, default=300)
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-alarms-"))
    sim_port, api_port = free_port(), free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "tests.support.engine_sim", "--port", str(sim_port)]
        + ["--duration", "3600"],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    (tmp / "rules.d").mkdir()
    (tmp / "rules.d" / "bench.yaml").write_text(RULE)
    conf = tmp / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\nlog_level = WARNING\n[engine]\napi_url = "
        "http://127.0.0.1:%d/v2\n[resultstracker]\nmode = poll\n[api]\nport = %d\nrules_dir = %s\n"
        % (tmp, sim_port, api_port, tmp / "rules.d")
    )
    api = None
    try:
        key = create_key(conf, "bench")
        api = start_api(conf, tmp / "api.log")
        wait_healthy("http://127.0.0.1:%d" % api_port, api)
        engine = http.client.HTTPConnection("127.0.0.1", sim_port, timeout=30)
        engine.request("POST", "/v2/workflows", WF.encode(), {"Content-Type": "text/plain"})
        engine.getresponse().read()
        load_before = load()
        figures = {}
        figures.update(ingest(api_port, key, a.faults, a.alerts, a.group, a.clients))
        figures.update(submit(api_port, key, a.starts))
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        sim.terminate()
        sim.wait(10)
    figures["machine"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": load(),
        "python": platform.python_version(),
    }
    print(
        "alarms benchmark (st2bridge-api, SQLite, engine simulator; %s, %d cores, load %.1f -> %.1f)"
        % (figures["machine"]["cpu"], os.cpu_count(), load_before, figures["machine"]["load_after"])
    )
    for name, (op, goal) in GOALS.items():
        value = figures.get(name)
        met = value is not None and (value <= goal if op == "<=" else value >= goal)
        print(
            "  %-22s %10s   goal %s %s   %s" % (name, value, op, goal, "met" if met else "MISSED")
        )
    print("  details: %s" % json.dumps({k: v for k, v in figures.items() if k != "machine"}))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
