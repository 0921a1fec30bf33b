"""Fault campaign (issue 9): real workflows on a private Mistral through several trackers in
hybrid mode on one SQLite store, while faults are injected on a schedule; then every execution
is compared with the engine's own record. A second stage (tests/faults/mongo_stage.py) does the same on
a MongoDB store that becomes unreachable for a while.

    .venv/bin/python -m tests.faults.campaign [--small] [--workflows 300] [--trackers 3]
        [--span 300] [--api-outage 60] [--callback-outage 45] [--store-lock 20] [--no-rabbit]
        [--stage all|sqlite|mongo] [--mongo-workflows 100] [--mongo-span 120] [--mongo-outage 30]
        [--mistral-db sqlite|postgresql] [--json-out FILE] [--keep]

Faults (each one recorded with its start and end, wall clock):
  kill9        kill -9 of a tracker, restarted 3 s later (its leases lapse, another takes over);
  sigterm      a burst of workflows that all end together, a tracker SIGTERMed as they end
               (it drains and releases), then restarted;
  api_down     the trackers reach the engine API through a TCP relay; the relay refuses and cuts
               connections for --api-outage s (the runner submits directly, workflows keep going);
  rabbit       `rabbitmqctl stop_app`, 15 s, `start_app` (--no-rabbit skips it): this machine's own
               broker is restarted, so every Mistral on this machine sees it (their oslo.messaging
               reconnects; a test session's idle Mistral still works afterwards);
  callback_down the engine's webhooks reach the trackers through a relay ([callback] url); it is down
               for --callback-outage s while workflows finish: those callbacks are lost;
  store_lock   another process holds `BEGIN EXCLUSIVE` on the SQLite store for --store-lock s
               (trackers have busy_timeout = 2 s, so their writes fail meanwhile);
  bad_client   throughout: duplicated, delayed (3-20 s), reordered (old RUNNING events after the
               terminal one) callbacks with the right secret (read from the execution's
               params.notify in the engine), built from the engine's real execution and tasks, and
               forged ones (wrong secret, no secret) that must be answered 403/401.
  mongo_down   (MongoDB stage, tests/faults/mongo_stage.py) the trackers' store refuses connections for
               --mongo-outage s, twice: mongomock behind a fault hook with the trackers in one
               process, or a real server (ST2BRIDGE_TEST_MONGO_URL) behind a TCP relay.
Goal: 0 lost, 0 wrong, 0 completed twice, 0 forged accepted, 0 HTTP 500, in every stage; exit 1
otherwise.
"""

import argparse
import calendar
import collections
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from st2bridge import app, config, workflow
from st2bridge import status as st
from st2bridge.callbacks import secrets, webhook
from tests.support.net import free_port
from tests.support.procs import ROOT, Proc, load
from tests.support.tcp_relay import Relay
from tools.mistral_local import PrivateMistral

WF = """version: '2.0'
%(name)s:
  input: [seconds, tag, fail]
  output:
    tag: <%% $.tag %%>
    echoed: <%% $.echoed %%>
  tasks:
    nap:
      action: std.sleep seconds=<%% $.seconds %%>
      on-success:
        - boom: <%% $.fail %%>
        - echo: <%% not $.fail %%>
    boom:
      action: std.fail
    echo:
      action: std.echo output=<%% $.tag %%>
      publish:
        echoed: <%% task().result %%>
"""
FINISHED = re.compile(r"execution (\S+) (\S+) \(finished by (poll|callback)\)")
ENGINE_TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")
# Seconds after its submit at which an execution the engine still runs is the engine's problem:
# its sleep is at most 8 s (a 15 s broker restart and the load delay it by ~20 s more).
STUCK_AFTER = 45
STOP = threading.Event()


def say(msg):
    print("[campaign %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def engine_epoch(ts):
    """Mistral's 'YYYY-MM-DD HH:MM:SS' (UTC, whole seconds) as epoch seconds."""
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%d %H:%M:%S")) if ts else None


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p / 100.0))], 2) if values else None


class Tracker:
    """One tracker slot: its own config (callback port), restarted with a new log each time."""

    def __init__(self, tmp, slot, conf_text, port):
        self.tmp, self.slot, self.port, self.gen, self.proc = tmp, slot, port, 0, None
        self.conf = tmp / ("tracker-%d.conf" % slot)
        self.conf.write_text(conf_text)

    def start(self, timeout=60):
        for _attempt in range(10):  # the port may linger a moment after a kill -9
            self.gen += 1
            self.proc = Proc(
                [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(self.conf)],
                self.tmp / ("tracker-%d-%d.log" % (self.slot, self.gen)),
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.p.poll() is None:
                if self.healthy():
                    return
                time.sleep(0.3)
            if self.proc.p.poll() is None:
                raise SystemExit("campaign: tracker %d did not answer /v1/health" % self.slot)
            self.proc.log.close()
            time.sleep(1)
        raise SystemExit(
            "campaign: tracker %d could not start (see its logs in %s)" % (self.slot, self.tmp)
        )

    def healthy(self):
        try:
            return requests.get("http://127.0.0.1:%d/v1/health" % self.port, timeout=2).ok
        except requests.RequestException:
            return False

    def alive(self):
        return self.proc is not None and self.proc.p.poll() is None

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.p.wait()
        self.proc.log.close()

    def sigterm(self, timeout=60):
        return self.proc.stop(timeout)


class Campaign:
    def __init__(self, a, tmp, api_url):
        self.a, self.tmp, self.api_url = a, tmp, api_url
        self.db = tmp / "bridge.db"
        self.runs = {}  # bridge id -> {engine_id, tag, fail, submitted}
        self.lock = threading.Lock()
        self.faults = []  # (kind, start, end, detail)
        self.seen = {}  # bridge id -> wall time first seen terminal in the store
        self.bad = collections.Counter()  # bad client: "kind status" -> count
        self.forged_accepted = 0
        self.server_errors = 0
        self.lock_proc = None
        self.rabbit_stopped = False
        self.submitting_paused = threading.Event()
        api_port = int(api_url.split(":")[2].split("/")[0])
        self.api_relay = Relay([api_port])
        ports = [free_port() for _ in range(a.trackers)]
        self.cb_relay = Relay(ports)
        relay_api = "http://127.0.0.1:%d/v2" % self.api_relay.port
        # The runner submits straight to the engine (and to the store): the outages are the
        # trackers' view.
        (tmp / "runner.conf").write_text(
            self.conf_text(api_url, free_port(), self.runner_store_url())
        )
        conf = config.load(["--config-file", str(tmp / "runner.conf")], config_files=[])
        self.store = self.open_store(conf)
        self.engine = app.build_engine(conf)
        self.runner = app.build_runner(conf, self.engine, self.store)
        self.name = "campaign_%s" % uuid.uuid4().hex[:8]
        self.wf = workflow.parse(WF % {"name": self.name}, "campaign.yaml")
        self.runner.register(self.wf)
        self.trackers = [
            self.make_tracker(
                i, self.conf_text(relay_api, ports[i], self.tracker_store_url()), ports[i]
            )
            for i in range(a.trackers)
        ]

    # -- what a stage on another store overrides (tests/faults/mongo_stage.py) ------------------------

    def conf_text(self, api_url, port, store_url):
        a = self.a
        return (
            "[DEFAULT]\nstate_path = %s\nlog_level = INFO\n[store]\nurl = %s\n"
            "busy_timeout = 2\nconnect_timeout = 2\n[engine]\napi_url = %s\nretry_exp_msec = 200\n"
            "retry_exp_max_msec = 1000\nretry_stop_max_msec = 3000\nread_timeout = 15\n"
            "[resultstracker]\nmode = hybrid\nquery_interval = %s\nstale_after = %s\n"
            "lease_seconds = %s\nheartbeat_interval = 1\ndrain_timeout = 10\n"
            "[callback]\nhost = 127.0.0.1\nport = %d\nurl = http://127.0.0.1:%d\n"
            "[metrics]\nport = 0\n[web]\nport = 0\n"
            % (
                self.tmp,
                store_url,
                api_url,
                a.query_interval,
                a.stale_after,
                a.lease_seconds,
                port,
                self.cb_relay.port,
            )
        )

    def runner_store_url(self):
        return "sqlite:///%s" % self.db

    def tracker_store_url(self):
        return "sqlite:///%s" % self.db

    def open_store(self, conf):
        """The store the runner, the watcher and verify() use."""
        return app.build_store(conf)

    def make_tracker(self, slot, conf_text, port):
        return Tracker(self.tmp, slot, conf_text, port)

    @contextlib.contextmanager
    def terminal_reader(self):
        """A function returning the ids of the records terminal in the store now (the
        watcher's read: raw SQLite, so that it still reads while the store is locked)."""
        conn = sqlite3.connect(str(self.db), timeout=1)
        query = "SELECT id FROM executions WHERE status IN (%s)" % ",".join(
            "'%s'" % s for s in st.TERMINAL
        )

        def read():
            try:
                return [rid for (rid,) in conn.execute(query)]
            except sqlite3.OperationalError:
                return []

        try:
            yield read
        finally:
            conn.close()

    def plan(self):
        return plan(self.a)

    def inject(self, kind, args):
        if kind in ("api_down", "callback_down"):
            self.outage(kind, self.api_relay if kind == "api_down" else self.cb_relay, *args)
        else:
            {
                "kill9": self.kill9,
                "sigterm": self.sigterm_burst,
                "store_lock": self.store_lock,
                "rabbit": self.rabbit,
            }[kind](*args)

    def extra_results(self):
        return {}

    # -- workflows -------------------------------------------------------------------------

    def submit(self, tag, seconds, fail):
        while self.submitting_paused.is_set() and not STOP.is_set():
            time.sleep(0.2)
        for _attempt in range(5):
            try:
                rec = self.runner.start(
                    self.wf, self.name, {"seconds": seconds, "tag": tag, "fail": fail}
                )
                break
            except Exception as exc:  # noqa: BLE001 - a submit failure is reported, not fatal
                say("submit %d failed (%s: %s); again" % (tag, type(exc).__name__, exc))
                time.sleep(2)
        else:
            return
        with self.lock:
            self.runs[rec["id"]] = {
                "engine_id": rec["engine_execution_id"],
                "tag": tag,
                "fail": fail,
                "submitted": time.time(),
            }

    def submitter(self, schedule, t0):
        for at, tag, seconds, fail in schedule:
            while time.monotonic() - t0 < at and not STOP.is_set():
                time.sleep(0.05)
            if STOP.is_set():
                return
            self.submit(tag, seconds, fail)

    def watcher(self):
        with self.terminal_reader() as read:
            while not STOP.is_set():
                t = time.time()
                for rid in read():
                    self.seen.setdefault(rid, t)
                time.sleep(0.2)

    # -- the misbehaving client --------------------------------------------------------------

    def post(self, kind, rid, event, secret, expect_ok=True):
        port = random.choice([t.port for t in self.trackers])
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[webhook.SECRET_HEADER] = secret
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(
                "POST", "/v1/callbacks/mistral/" + rid, json.dumps(event).encode(), headers
            )
            status = conn.getresponse().status
            conn.close()
        except (OSError, http.client.HTTPException):
            status = "unreachable"
        self.bad["%s %s" % (kind, status)] += 1
        if status == 500:
            self.server_errors += 1
        if not expect_ok and isinstance(status, int) and status < 300:
            self.forged_accepted += 1
            say("FORGED callback accepted: %s for %s" % (kind, rid))

    def events_of(self, eid):
        """(secret, workflow event, task events) built from the engine's own record."""
        ex = requests.get("%s/executions/%s" % (self.api_url, eid), timeout=15).json()
        params = json.loads(ex.get("params") or "{}")
        secret = next(
            (
                n["headers"][webhook.SECRET_HEADER]
                for n in params.get("notify") or []
                if webhook.SECRET_HEADER in (n.get("headers") or {})
            ),
            None,
        )
        kind = {
            "SUCCESS": "WORKFLOW_SUCCEEDED",
            "ERROR": "WORKFLOW_FAILED",
            "CANCELLED": "WORKFLOW_CANCELLED",
        }.get(ex["state"], "WORKFLOW_LAUNCHED")
        wf_event = {
            "event": kind,
            "id": eid,
            "name": ex.get("workflow_name"),
            "workflow_name": ex.get("workflow_name"),
            "state": ex["state"],
            "state_info": ex.get("state_info"),
            "root_execution_id": None,
            "created_at": ex.get("created_at"),
            "updated_at": ex.get("updated_at"),
        }
        tasks = requests.get("%s/executions/%s/tasks" % (self.api_url, eid), timeout=15).json()[
            "tasks"
        ]
        task_events = [
            {
                "event": {"SUCCESS": "TASK_SUCCEEDED", "ERROR": "TASK_FAILED"}.get(
                    t["state"], "TASK_LAUNCHED"
                ),
                "id": t["id"],
                "name": t["name"],
                "workflow_execution_id": eid,
                "workflow_name": ex.get("workflow_name"),
                "state": t["state"],
                "state_info": t.get("state_info"),
                "type": t.get("type", "ACTION"),
                "created_at": t.get("created_at"),
                "updated_at": t.get("updated_at"),
                "started_at": t.get("started_at"),
                "finished_at": t.get("finished_at"),
            }
            for t in tasks
        ]
        return secret, wf_event, task_events

    def bad_client(self, interval):
        delayed = []  # (send at, kind, rid, event, secret)
        while not STOP.is_set():
            time.sleep(interval)
            now = time.time()
            for item in [d for d in delayed if d[0] <= now]:
                delayed.remove(item)
                self.post(item[1], item[2], item[3], item[4])
            with self.lock:
                runs = list(self.runs.items())
            if not runs:
                continue
            rid, run = random.choice(runs)
            try:
                secret, wf_event, task_events = self.events_of(run["engine_id"])
            except (requests.RequestException, ValueError, KeyError):
                continue
            if secret is None:
                continue
            # Forged: a terminal event without the secret, and with a wrong one.
            forged = dict(wf_event, event="WORKFLOW_SUCCEEDED", state="SUCCESS")
            self.post("forged-missing", rid, forged, None, expect_ok=False)
            self.post("forged-wrong", rid, forged, secrets.new_secret(), expect_ok=False)
            self.post("forged-other", rid, forged, secret[::-1], expect_ok=False)
            # Duplicated: the same real event twice now.
            for ev in ([wf_event] + task_events)[:3]:
                self.post("duplicate", rid, ev, secret)
                self.post("duplicate", rid, ev, secret)
            if wf_event["state"] in ENGINE_TERMINAL:
                # Reordered: what was true while it ran, after the terminal event.
                self.post(
                    "reordered",
                    rid,
                    dict(wf_event, event="WORKFLOW_LAUNCHED", state="RUNNING"),
                    secret,
                )
                for ev in task_events:
                    self.post(
                        "reordered",
                        rid,
                        dict(ev, event="TASK_LAUNCHED", state="RUNNING", finished_at=None),
                        secret,
                    )
            else:
                # Delayed: this running state, delivered 3-20 s later (likely after the end).
                for ev in [wf_event] + task_events:
                    delayed.append((now + random.uniform(3, 20), "delayed", rid, ev, secret))

    # -- faults ---------------------------------------------------------------------------------

    def fault(self, kind, start, detail=""):
        self.faults.append((kind, start, time.time(), detail))
        say("fault %s done (%.1f s) %s" % (kind, time.time() - start, detail))

    def kill9(self, slot):
        t = self.trackers[slot]
        start = time.time()
        say("fault kill9: kill -9 tracker %d (pid %d)" % (slot, t.proc.pid))
        t.kill9()
        time.sleep(3)
        t.start()
        self.fault("kill9", start, "tracker %d restarted (pid %d)" % (slot, t.proc.pid))

    def sigterm_burst(self, slot, count, seconds, tag0):
        t = self.trackers[slot]
        say("fault sigterm: burst of %d workflows ending together in ~%d s" % (count, seconds))
        threads = [
            threading.Thread(target=self.submit, args=(tag0 + i, seconds, i % 5 == 4))
            for i in range(count)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        time.sleep(seconds + 0.5)
        start = time.time()
        code = t.sigterm()
        say("fault sigterm: tracker %d exited %s after SIGTERM" % (slot, code))
        t.start()
        self.fault("sigterm", start, "exit code %s; tracker %d restarted" % (code, slot))

    def outage(self, kind, relay, seconds):
        start = time.time()
        say("fault %s: relay down for %.0f s" % (kind, seconds))
        relay.down()
        time.sleep(seconds)
        relay.up()
        self.fault(kind, start)

    def store_lock(self, seconds):
        start = time.time()
        say("fault store_lock: exclusive SQLite transaction held for %.0f s" % seconds)
        code = (
            "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], timeout=30, "
            "isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\nc.execute('COMMIT')\n"
        )
        self.submitting_paused.set()  # the runner is not under test here
        self.lock_proc = Proc(
            [sys.executable, "-c", code, str(self.db), str(seconds)],
            self.tmp / "store-lock.log",
            pipe_stdout=True,
        )
        line = self.lock_proc.p.stdout.readline().decode().strip()
        self.lock_proc.p.wait()
        self.lock_proc.log.close()
        self.lock_proc = None
        self.submitting_paused.clear()
        self.fault("store_lock", start, "" if line == "locked" else "LOCK NOT TAKEN: %r" % line)

    def rabbit(self, seconds):
        start = time.time()
        say(
            "fault rabbit: rabbitmqctl stop_app for %.0f s (every Mistral on this machine)"
            % seconds
        )
        subprocess.run(["rabbitmqctl", "stop_app"], capture_output=True)
        self.rabbit_stopped = True
        time.sleep(seconds)
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True)
        self.rabbit_stopped = False
        self.fault("rabbit", start)

    # -- the end ----------------------------------------------------------------------------------

    def progress(self, t0):
        with self.lock:
            ids = list(self.runs)
        done = sum(1 for i in ids if i in self.seen)
        say(
            "%4.0fs: submitted %d/%d, finished in the bridge %d, faults %d, trackers up %d, load %.2f"
            % (
                time.monotonic() - t0,
                len(ids),
                self.a.workflows,
                done,
                len(self.faults),
                sum(t.alive() for t in self.trackers),
                load(),
            )
        )

    def wait_final(self, timeout, t0):
        """Until every execution is terminal in the bridge, or the ones that are not have not
        ended in the engine either, long after they should have (the broker restart can leave
        one RUNNING in Mistral for good: verify() counts it as the engine's, not as lost)."""
        deadline, last = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            with self.lock:
                runs = dict(self.runs)
            waiting = [run for rid, run in runs.items() if rid not in self.seen]
            if not waiting:
                return
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                self.progress(t0)
                if all(self.engine_stuck(run) for run in waiting):
                    say(
                        "the %d executions not finished in the bridge have not ended in the engine "
                        "either, %d s or more after their submit: not waiting for them"
                        % (len(waiting), STUCK_AFTER)
                    )
                    return
            time.sleep(0.5)

    def engine_stuck(self, run):
        if time.time() - run["submitted"] < STUCK_AFTER:
            return False
        try:
            ex = requests.get(
                "%s/executions/%s" % (self.api_url, run["engine_id"]), timeout=15
            ).json()
        except (requests.RequestException, ValueError):
            return False
        return ex.get("state") not in ENGINE_TERMINAL

    def verify(self):
        counts = collections.Counter()
        for log in self.tmp.glob("tracker-*-*.log"):
            counts.update(m.group(1) for m in FINISHED.finditer(log.read_text(errors="replace")))
        records = {r["id"]: r for r in self.store.list_executions(limit=100000)}
        lost, wrong, twice, unfinished, lat, lat_fault, by = (
            [],
            [],
            [],
            [],
            [],
            [],
            collections.Counter(),
        )
        tasks_differ, unfinished_detail = [], {}
        windows = [(f[0], f[1], f[2]) for f in self.faults]
        lat_kind = collections.defaultdict(list)
        for rid, run in self.runs.items():
            rec = records.get(rid)
            ex = requests.get(
                "%s/executions/%s" % (self.api_url, run["engine_id"]), timeout=30
            ).json()
            if ex.get("state") not in ENGINE_TERMINAL:
                unfinished.append(rid)  # the engine never ended it: not the bridge's doing
                tasks = (
                    requests.get(
                        "%s/executions/%s/tasks" % (self.api_url, run["engine_id"]), timeout=30
                    )
                    .json()
                    .get("tasks", [])
                )
                unfinished_detail[rid] = {
                    "engine_id": run["engine_id"],
                    "state": ex.get("state"),
                    "bridge": rec and rec["status"],
                    "tasks": sorted((t["name"], t["state"]) for t in tasks),
                }
                if rec and st.is_terminal(rec["status"]):
                    wrong.append((rid, "bridge %s, engine %s" % (rec["status"], ex.get("state"))))
                continue
            if rec is None or not st.is_terminal(rec["status"]):
                lost.append(rid)
                continue
            by[rec.get("finished_by")] += 1
            output = (
                json.loads(ex["output"]) if isinstance(ex.get("output"), str) else ex.get("output")
            )
            if rec["status"] != st.from_engine(ex["state"]) or rec.get("output") != (output or {}):
                wrong.append(
                    (
                        rid,
                        "bridge %s %r, engine %s %r"
                        % (rec["status"], rec.get("output"), ex["state"], output),
                    )
                )
            if counts[rid] > 1:
                twice.append(rid)
            tasks = requests.get(
                "%s/executions/%s/tasks" % (self.api_url, run["engine_id"]), timeout=30
            ).json()["tasks"]
            if sorted((t["name"], t["state"]) for t in tasks) != sorted(
                (t.get("name"), t.get("state")) for t in rec.get("tasks") or []
            ):
                tasks_differ.append(rid)
            ended = engine_epoch(ex.get("updated_at"))
            if rid in self.seen and ended:
                d = self.seen[rid] - ended
                lat.append(d)
                kinds = {k for k, s, e in windows if s <= ended <= e}
                if kinds:
                    lat_fault.append(d)
                for k in kinds:
                    lat_kind[k].append(d)
        return {
            "executions": len(self.runs),
            "lost": lost,
            "wrong": wrong,
            "twice": twice,
            "engine_unfinished": unfinished,
            "engine_unfinished_detail": unfinished_detail,
            "finished_by": dict(by),
            "tasks_differ": tasks_differ,
            "no_finish_line": sum(
                1
                for rid in self.runs
                if records.get(rid) and st.is_terminal(records[rid]["status"]) and counts[rid] == 0
            ),
            "latency_s": {
                "p50": pct(lat, 50),
                "p99": pct(lat, 99),
                "max": pct(lat, 100),
                "n": len(lat),
            },
            "latency_under_fault_s": {
                "p50": pct(lat_fault, 50),
                "p99": pct(lat_fault, 99),
                "max": pct(lat_fault, 100),
                "n": len(lat_fault),
            },
            "latency_by_fault_s": {
                k: {"p99": pct(v, 99), "max": pct(v, 100), "n": len(v)}
                for k, v in sorted(lat_kind.items())
            },
        }

    def close(self):
        STOP.set()
        if self.lock_proc is not None:
            self.lock_proc.kill()
        if self.rabbit_stopped:
            subprocess.run(["rabbitmqctl", "start_app"], capture_output=True)
        codes = []
        for t in self.trackers:
            if t.alive():
                code = t.sigterm(timeout=30)
                if code is None:
                    t.proc.kill()
                codes.append(code)
        for relay in (self.api_relay, self.cb_relay):
            relay.close()
        self.engine.close()
        self.store.close()
        return codes


def plan(a):
    """(submission schedule, fault schedule) in seconds from the start."""
    burst = max(6, a.workflows // 10)
    steady = a.workflows - burst
    rnd = random.Random(a.seed)
    schedule = [(a.span * i / steady, i, rnd.randint(1, 8), i % 7 == 6) for i in range(steady)]
    s = a.span
    faults = [
        (0.08 * s, "kill9", (0,)),
        (0.18 * s, "sigterm", (1 % a.trackers, burst, 3, steady)),
        (0.28 * s, "api_down", (a.api_outage,)),
        (0.60 * s, "callback_down", (a.callback_outage,)),
        (0.80 * s, "store_lock", (a.store_lock,)),
        (0.90 * s, "kill9", ((a.trackers - 1),)),
    ]
    if a.rabbit:
        faults.append((0.50 * s, "rabbit", (15,)))
    return schedule, sorted(faults)


def run(a, tmp, api_url, stage=None):
    """One stage: the campaign over SQLite, or `stage` (a Campaign subclass)."""
    c = (stage or Campaign)(a, tmp, api_url)
    res = {}
    try:
        for t in c.trackers:
            t.start()
        say(
            "%d trackers up (callback ports %s), API relay :%d, callback relay :%d"
            % (a.trackers, [t.port for t in c.trackers], c.api_relay.port, c.cb_relay.port)
        )
        schedule, faults = c.plan()
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=c.submitter, args=(schedule, t0), daemon=True),
            threading.Thread(target=c.watcher, daemon=True),
            threading.Thread(target=c.bad_client, args=(a.bad_interval,), daemon=True),
        ]
        for th in threads:
            th.start()
        progress = threading.Event()

        def reporter():  # progress every 5 s, faults or not, until the final wait takes over
            while not progress.wait(5):
                c.progress(t0)

        threading.Thread(target=reporter, daemon=True).start()
        for at, kind, args in faults:
            while time.monotonic() - t0 < at:
                time.sleep(0.2)
            c.inject(kind, args)
        threads[0].join()
        progress.set()
        say(
            "all %d workflows submitted; waiting for every one to finish in the bridge"
            % len(c.runs)
        )
        c.wait_final(a.stale_after * 4 + 90, t0)
        time.sleep(2)  # late duplicates, if any
        res = c.verify()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        res.update(c.extra_results())
    finally:
        res["tracker_exit_codes"] = c.close()
    res["faults"] = collections.Counter(f[0] for f in c.faults)
    res["fault_log"] = [(f[0], round(f[2] - f[1], 1), f[3]) for f in c.faults]
    res["bad_client"] = dict(c.bad)
    res["forged_accepted"] = c.forged_accepted
    res["server_errors"] = c.server_errors
    return res


def report(res, a):
    faults = res.get("faults", {})
    print(
        "\n== fault campaign: %d executions, %d trackers, load avg %.2f, %s =="
        % (res.get("executions", 0), a.trackers, load(), open("/proc/loadavg").read().strip())
    )
    print("  faults injected:        %s (%d)" % (dict(faults), sum(faults.values())))
    for kind, dur, detail in res.get("fault_log", []):
        print("    %-14s %6.1f s  %s" % (kind, dur, detail))
    bad = res.get("bad_client", {})
    print("  bad client requests:    %d: %s" % (sum(bad.values()), dict(sorted(bad.items()))))
    rows = [
        (
            "lost (never finished in the bridge)",
            len(res.get("lost", [])) if "lost" in res else None,
        ),
        ("wrong final status or output", len(res.get("wrong", [])) if "wrong" in res else None),
        ("completed twice", len(res.get("twice", [])) if "twice" in res else None),
        ("forged callbacks accepted", res.get("forged_accepted")),
        ("HTTP 500 answers", res.get("server_errors")),
    ]
    ok = True
    for name, v in rows:
        verdict = "PASS" if v == 0 else "FAIL"
        ok = ok and v == 0
        print("  %-38s %5s   goal 0  %s" % (name, v, verdict))
    print("  engine never ended (not the bridge's)  %5s" % len(res.get("engine_unfinished", [])))
    for rid, detail in (res.get("engine_unfinished_detail") or {}).items():
        print("    %s: %s" % (rid, detail))
    print("  finished by                            %s" % res.get("finished_by"))
    print("  terminal with no 'finished by' line    %s" % res.get("no_finish_line"))
    print(
        "  task view differs from the engine's    %s (info: tasks are not part of the goal)"
        % len(res.get("tasks_differ", []))
    )
    print("  detection latency s (all)              %s" % res.get("latency_s"))
    print("  detection latency s (under fault)      %s" % res.get("latency_under_fault_s"))
    for kind, fig in (res.get("latency_by_fault_s") or {}).items():
        print(
            "    ended during %-14s p99 %s s, max %s s (n %d)"
            % (kind, fig["p99"], fig["max"], fig["n"])
        )
    print(
        "  (latency = first seen terminal in the store - engine updated_at, whole seconds: +-1 s)"
    )
    for key in ("lost", "wrong", "twice"):
        for item in res.get(key, [])[:10]:
            print("  %s: %s" % (key, item))
    print(
        "  tracker exit codes at the end: %s; wall %s s"
        % (res.get("tracker_exit_codes"), res.get("wall_s"))
    )
    return ok


def run_mongo_stage(a, tmp, api_url):
    """tests/faults/mongo_stage.py on this campaign's Mistral, in a process of its own (it runs trackers
    in its own green threads): (its JSON figures, passed)."""
    out = tmp / "mongo.json"
    argv = [
        sys.executable,
        "-m",
        "tests.faults.mongo_stage",
        "--api-url",
        api_url,
        "--tmp",
        str(tmp / "mongo"),
        "--workflows",
        str(a.mongo_workflows),
        "--span",
        str(a.mongo_span),
        "--outage",
        str(a.mongo_outage),
        "--trackers",
        str(min(a.trackers, 2)),
        "--stale-after",
        str(a.stale_after),
        "--query-interval",
        str(a.query_interval),
        "--lease-seconds",
        str(a.lease_seconds),
        "--bad-interval",
        str(a.bad_interval),
        "--seed",
        str(a.seed),
        "--json-out",
        str(out),
    ]
    say("MongoDB stage: %s" % " ".join(argv[2:]))
    proc = subprocess.Popen(argv, cwd=str(ROOT))
    try:
        code = proc.wait(timeout=a.mongo_span * 3 + 300)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        res = json.loads(out.read_text())
    except (OSError, ValueError):
        res = {}
    return res, code == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--small", action="store_true", help="CI size: 40 workflows, 2 trackers, short faults"
    )
    ap.add_argument("--workflows", type=int)
    ap.add_argument("--trackers", type=int)
    ap.add_argument("--span", type=float, help="seconds over which workflows are submitted")
    ap.add_argument("--api-outage", type=float)
    ap.add_argument("--callback-outage", type=float)
    ap.add_argument("--store-lock", type=float)
    ap.add_argument(
        "--rabbit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restart RabbitMQ for 15 s (stop_app/start_app; on by default): this "
        "machine's broker, so every Mistral on this machine sees it",
    )
    ap.add_argument(
        "--stage",
        choices=["all", "sqlite", "mongo"],
        default="all",
        help="the SQLite stage, the MongoDB stage (tests/faults/mongo_stage.py), or both",
    )
    ap.add_argument("--mongo-workflows", type=int)
    ap.add_argument("--mongo-span", type=float)
    ap.add_argument("--mongo-outage", type=float, help="seconds of each of the 2 store outages")
    ap.add_argument("--stale-after", type=float)
    ap.add_argument("--query-interval", type=float, default=1.0)
    ap.add_argument("--lease-seconds", type=float, default=6.0)
    ap.add_argument(
        "--bad-interval", type=float, default=1.0, help="seconds between bad-client rounds"
    )
    ap.add_argument("--mistral-db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--json-out")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) even on success")
    a = ap.parse_args(argv)
    small = dict(
        workflows=40,
        trackers=2,
        span=70,
        api_outage=12,
        callback_outage=10,
        store_lock=8,
        stale_after=5,
        mongo_workflows=16,
        mongo_span=30,
        mongo_outage=7,
    )
    full = dict(
        workflows=300,
        trackers=3,
        span=300,
        api_outage=60,
        callback_outage=45,
        store_lock=20,
        stale_after=10,
        mongo_workflows=100,
        mongo_span=120,
        mongo_outage=30,
    )
    for k, v in (small if a.small else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="st2bridge-campaign-"))
    mistral = PrivateMistral(tmp / "mistral", db=a.mistral_db, prefix="st2bridge-campaign")
    res, ok, started = {}, False, time.monotonic()
    say(
        "load %.2f; %d workflows over %.0f s, %d trackers; logs in %s"
        % (load(), a.workflows, a.span, a.trackers, tmp)
    )
    try:
        say(
            "starting a private Mistral (port %d, vhost %s, db %s)"
            % (mistral.port, mistral.vhost, a.mistral_db)
        )
        if not mistral.up(capture=True):
            raise SystemExit("campaign: could not start Mistral:\n%s" % mistral.output[-4000:])
        say("Mistral up in %.0f s" % (time.monotonic() - started))
        ok = True
        if a.stage in ("all", "sqlite"):
            res = run(a, tmp, mistral.api_url)
            res["load_end"] = open("/proc/loadavg").read().strip()
            ok = report(res, a)
        if a.stage in ("all", "mongo"):
            res["mongo"], mongo_ok = run_mongo_stage(a, tmp, mistral.api_url)
            ok = ok and mongo_ok
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
    finally:
        STOP.set()
        mistral.stop()
        say(
            "private Mistral stopped, vhost %s deleted; total %.0f s"
            % (mistral.vhost, time.monotonic() - started)
        )
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(dict(res, args=vars(a)), default=str) + "\n")
        if ok and not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in %s" % tmp)
    print("RESULT %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
