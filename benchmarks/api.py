"""Benchmark of st2bridge-api against the engine simulator (one API process).

    python -m benchmarks.api [--latency-starts 300] [--clients 50] [--seconds 10]
                             [--subscribers 100] [--ends 200] [--json FILE]

Figures, each printed beside its goal (issue 19):
  * start latency, bridge side: p50 over starts made one at a time of the
    API's own time (its Server-Timing header: request read to answer ready,
    minus the time its engine calls took): <= 5 ms; beside it, the client's
    view: p50 of the round trip through the API minus p50 of the same start
    sent straight to the simulator;
  * starts/s with `--clients` concurrent clients: >= 300;
  * stream: `--subscribers` open streams; for each of `--ends` terminal
    records (written to the store by this process, as a tracker would), the
    time from the write to the `end` event at every subscriber: p99 <= 50 ms;
  * webhook: each of those executions has a sink here; the time from the
    terminal record to the signed POST arriving: p50 <= 20 ms.
The simulator and the API each run as a process of their own; the clients,
subscribers, receiver and the writer are threads of this one.
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
import uuid
from pathlib import Path

from st2bridge import status as st
from st2bridge.store.sqlite import SqliteStore
from tests.support.api_procs import create_key, start_api, wait_healthy
from tests.support.net import free_port
from tests.support.procs import load
from tests.support.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
WF = "version: '2.0'\nbench_api:\n  input: [n]\n  tasks:\n    t:\n      action: std.noop\n"
GOALS = {
    "start_bridge_p50_ms": ("<=", 5.0),
    "starts_per_s": (">=", 300.0),
    "stream_end_p99_ms": ("<=", 50.0),
    "webhook_p50_ms": ("<=", 20.0),
}


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100.0))] if values else None


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


class Conn:
    """One keep-alive HTTP connection."""

    def __init__(self, port, headers):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = headers

    def post(self, path, body, extra=None):
        data = json.dumps(body).encode()
        headers = dict(self.headers, **{"Content-Type": "application/json"}, **(extra or {}))
        self.c.request("POST", path, data, headers)
        answer = self.c.getresponse()
        payload = answer.read()
        self.timing = answer.getheader("Server-Timing")
        return answer.status, payload


def start_body(i):
    return {"workflow": "bench_api", "input": {"n": i}}


def latency(api_port, sim_port, key, n):
    api = Conn(api_port, {"X-Api-Key": key})
    engine = Conn(sim_port, {})
    for i in range(20):  # warm up: connections, definition caches
        api.post("/v1/executions", start_body(i), {"Idempotency-Key": str(uuid.uuid4())})
    through, direct, inside = [], [], []
    for i in range(n):
        t = time.perf_counter()
        status, _ = api.post(
            "/v1/executions", start_body(i), {"Idempotency-Key": str(uuid.uuid4())}
        )
        through.append((time.perf_counter() - t) * 1000)
        assert status == 201, status
        timing = dict(part.strip().split(";dur=") for part in api.timing.split(","))
        inside.append(float(timing["total"]) - float(timing["engine"]))
        body = {
            "id": str(uuid.uuid4()),
            "workflow_name": "bench_api",
            "input": json.dumps({"n": i}),
            "params": json.dumps({"env": {"st2bridge_execution_id": "x"}}),
            "description": "st2bridge execution x",
        }
        t = time.perf_counter()
        status, _ = engine.post("/v2/executions", body)
        direct.append((time.perf_counter() - t) * 1000)
        assert status == 201, status
    return {
        "start_bridge_p50_ms": round(pct(inside, 50), 2),
        "start_bridge_p99_ms": round(pct(inside, 99), 2),
        "api_p50_ms": round(pct(through, 50), 2),
        "api_p99_ms": round(pct(through, 99), 2),
        "engine_p50_ms": round(pct(direct, 50), 2),
        "client_minus_engine_p50_ms": round(pct(through, 50) - pct(direct, 50), 2),
        "n": n,
    }


def throughput(api_port, key, clients, seconds):
    done, errors, stop = [0] * clients, [0] * clients, threading.Event()

    def client(k):
        conn = Conn(api_port, {"X-Api-Key": key})
        i = 0
        while not stop.is_set():
            status, _ = conn.post(
                "/v1/executions", start_body(i), {"Idempotency-Key": str(uuid.uuid4())}
            )
            i += 1
            if status == 201:
                done[k] += 1
            else:
                errors[k] += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    begun = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    took = time.perf_counter() - begun
    return {
        "starts_per_s": round(sum(done) / took, 1),
        "starts": sum(done),
        "errors": sum(errors),
        "clients": clients,
        "seconds": round(took, 1),
    }


class Subscriber(threading.Thread):
    def __init__(self, port, key, arrivals):
        super().__init__(daemon=True)
        self.port, self.key, self.arrivals = port, key, arrivals
        self.ready = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", "/v1/stream", headers={"X-Api-Key": self.key})
        answer = conn.getresponse()
        event = None
        while True:
            line = answer.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line.startswith("retry:"):
                self.ready.set()
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "end":
                self.arrivals.append((json.loads(line[6:])["execution_id"], time.time()))


def ends(db, api_port, key, subscribers, count, receiver):
    arrivals = []
    subs = [Subscriber(api_port, key, arrivals) for _ in range(subscribers)]
    for s in subs:
        s.start()
    for s in subs:
        if not s.ready.wait(30):
            raise SystemExit("a subscriber did not connect")
    store = SqliteStore(db)
    ids, written = [], {}
    now = time.time()
    for i in range(count):
        rid = "bench-end-%d-%s" % (i, uuid.uuid4().hex[:6])
        store.create_execution(
            {
                "id": rid,
                "workflow_name": "bench_api",
                "engine_execution_id": str(uuid.uuid4()),
                "status": st.RUNNING,
                "created_at": now,
                "updated_at": now,
                "sinks": [{"url": receiver.url, "secret": "bench-secret-0123456789"}],
            }
        )
        ids.append(rid)
    time.sleep(1.0)
    for rid in ids:
        store.update_execution(rid, {"status": st.SUCCEEDED, "output": {}, "ended_at": now})
        written[rid] = time.time()
        time.sleep(0.02)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        len(arrivals) < subscribers * count or len(receiver.requests) < count
    ):
        time.sleep(0.2)
    store.close()
    stream = [(t - written[rid]) * 1000 for rid, t in arrivals if rid in written]
    hooks = []
    for arrived, _, body in receiver.requests:
        rid = json.loads(body)["execution"]["id"]
        if rid in written:
            hooks.append((arrived - written[rid]) * 1000)
    return {
        "stream_end_p50_ms": round(pct(stream, 50), 2) if stream else None,
        "stream_end_p99_ms": round(pct(stream, 99), 2) if stream else None,
        "stream_events": len(stream),
        "stream_events_expected": subscribers * count,
        "webhook_p50_ms": round(pct(hooks, 50), 2) if hooks else None,
        "webhook_p99_ms": round(pct(hooks, 99), 2) if hooks else None,
        "webhooks": len(hooks),
        "subscribers": subscribers,
        "ends": count,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-starts", type=int, default=300)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--ends", type=int, default=200)
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    sim_port, api_port = free_port(), free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "tests.support.engine_sim", "--port", str(sim_port)]
        + ["--duration", "3600"],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    conf = tmp / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\nlog_level = WARNING\n[engine]\napi_url = "
        "http://127.0.0.1:%d/v2\n[resultstracker]\nmode = poll\n[api]\nport = %d\n"
        % (tmp, sim_port, api_port)
    )
    receiver = Receiver()
    api = None
    try:
        key = create_key(conf, "bench")
        api = start_api(conf, tmp / "api.log")
        wait_healthy("http://127.0.0.1:%d" % api_port, api)
        engine = Conn(sim_port, {})
        engine.c.request("POST", "/v2/workflows", WF.encode(), {"Content-Type": "text/plain"})
        engine.c.getresponse().read()
        load_before = load()
        figures = {}
        figures.update(latency(api_port, sim_port, key, a.latency_starts))
        figures.update(throughput(api_port, key, a.clients, a.seconds))
        figures.update(ends(str(tmp / "bridge.db"), api_port, key, a.subscribers, a.ends, receiver))
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        sim.terminate()
        sim.wait(10)
        receiver.close()
    figures["machine"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": load(),
        "python": platform.python_version(),
    }
    print(
        "st2bridge-api benchmark (engine simulator; %s, %d cores, load %.1f -> %.1f)"
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
