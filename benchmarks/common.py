"""What the benchmarks share: small HTTP servers (probe, tap, counting proxy),
a bridge config with its processes, a private Mistral, statistics helpers.
Run the benchmarks from the repository root: `python -m benchmarks.NAME`."""

import collections
import http.client
import json
import re
import socket
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from st2bridge import app, config
from tests.support.net import free_port
from tests.support.procs import Proc, load
from tools.mistral_local import PrivateMistral

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["Proc", "load", "free_port", "PrivateMistral"]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

TERMINAL_EVENTS = ("WORKFLOW_CANCELLED", "WORKFLOW_FAILED", "WORKFLOW_SUCCEEDED")


TERMINAL = ("succeeded", "failed", "canceled", "timeout", "abandoned")


STOP = threading.Event()


def pct(values, p):
    """Nearest-rank percentile (None for no values)."""
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p / 100.0))], 1) if values else None


def dist(values):
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "max": round(max(values), 1) if values else None,
    }


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler, **attrs):
        super().__init__(("127.0.0.1", 0), handler)
        self.lock, self.log = threading.Lock(), collections.defaultdict(list)
        self.counts = collections.Counter()
        self.__dict__.update(attrs)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def note(self, kind, key, value):
        with self.lock:
            self.log[kind, key].append(value)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, body=b"{}", ctype="application/json"):
        head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            status,
            http.client.responses.get(status, "-"),
            ctype,
            len(body),
        )
        self.wfile.write(head.encode() + body)


class Probe(Handler):
    """POST /probe: the extra_notify listener. POST /v1/callbacks/...: the tap in front of the
    tracker's listener (server.target). Both note when a root terminal event arrived."""

    def do_POST(self):
        body = self.body()
        arrived = (time.monotonic(), time.time())
        try:
            ev = json.loads(body)
        except ValueError:
            ev = {}
        terminal = ev.get("event") in TERMINAL_EVENTS and not ev.get("task_execution_id")
        if self.path.startswith("/probe"):
            if terminal:
                self.server.note("probe", ev["id"], arrived)
            return self.reply(200)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn = http.client.HTTPConnection(*self.server.target, timeout=60)
        try:
            conn.request("POST", self.path, body, headers)
            resp = conn.getresponse()
            status, answer = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            status, answer = 502, json.dumps({"error": str(exc)}).encode()
        finally:
            conn.close()
        if terminal:
            self.server.note(
                "tap",
                ev["id"],
                arrived + (status, answer.decode(errors="replace"), time.monotonic()),
            )
        self.reply(status, answer)


class Counting(Handler):
    """Forwards every request to server.upstream (host, port), one upstream connection per client
    connection, and counts requests by method and path template."""

    def forward(self):
        body = self.body()
        key = "%s %s" % (self.command, UUID.sub("{id}", self.path.split("?")[0]))
        with self.server.lock:
            self.server.counts[key] += 1
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "connection", "keep-alive")
        }
        for attempt in (1, 2):
            if getattr(self, "up", None) is None:
                self.up = http.client.HTTPConnection(*self.server.upstream, timeout=120)
            try:
                self.up.request(self.command, self.path, body or None, headers)
                resp = self.up.getresponse()
                answer = resp.read()
                break
            except (OSError, http.client.HTTPException):
                self.up.close()
                self.up = None
                if attempt == 2:
                    return self.reply(502, b'{"faultstring": "proxy: upstream failed"}')
        self.reply(resp.status, answer, resp.getheader("Content-Type", "application/json"))

    do_GET = do_POST = do_PUT = do_DELETE = forward


class Watcher(threading.Thread):
    """Polls the bridge's SQLite file every 2 ms: when each record is first seen terminal (the time
    of the query that saw it first: the commit happened before it and after the previous one)."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.seen, self.halt = db, {}, threading.Event()

    def run(self):
        conn = sqlite3.connect(str(self.db), timeout=5)
        query = "SELECT id FROM executions WHERE status IN (%s)" % ",".join(
            "'%s'" % s for s in TERMINAL
        )
        while not self.halt.is_set():
            t = time.monotonic()
            try:
                for (rid,) in conn.execute(query):
                    self.seen.setdefault(rid, t)
            except sqlite3.OperationalError:
                pass
            time.sleep(0.002)
        conn.close()


class Bridge:
    """A config in its own dir, a tracker subprocess, and an in-process runner on the same store."""

    def __init__(self, tmp, name, mode, api_url, a, callback_url=None, task_events=True):
        self.dir = tmp / name
        self.dir.mkdir()
        self.db, self.port, self.mode = self.dir / "bridge.db", free_port(), mode
        path = self.dir / "bridge.conf"
        path.write_text(
            "[DEFAULT]\nconcurrency = %s\nstate_path = %s\nlog_level = %s\n"
            "[store]\nurl = sqlite:///%s\n"
            "[engine]\napi_url = %s\n[resultstracker]\nmode = %s\nquery_interval = %s\n"
            "thread_pool_size = %d\njitter_interval = %s\nstale_after = %s\n"
            "[callback]\nhost = 127.0.0.1\nport = %d\ntask_events = %s\n%s"
            % (
                getattr(a, "backend", "eventlet"),
                self.dir,
                a.log_level,
                self.db,
                api_url,
                mode,
                a.query_interval,
                a.pool,
                a.jitter,
                a.stale_after,
                self.port,
                task_events,
                "url = %s\n" % callback_url if callback_url else "",
            )
        )
        self.conf = config.load(["--config-file", str(path)], config_files=[])
        self.store = app.build_store(self.conf)
        self.engine = app.build_engine(self.conf)
        self.runner = app.build_runner(self.conf, self.engine, self.store)
        self.watcher = Watcher(self.db)
        self.watcher.start()
        self.tracker = Proc(
            [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(path)],
            self.dir / "tracker.log",
        )
        deadline = time.monotonic() + 60
        while not self.ready():
            if self.tracker.p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "bench: the tracker did not start:\n%s"
                    % (self.dir / "tracker.log").read_text()[-3000:]
                )
            time.sleep(0.2)

    def ready(self):
        if self.mode == "poll":
            return any(s.get("pid") == self.tracker.pid for s in self.store.list_services())
        try:
            return requests.get("http://127.0.0.1:%d/v1/health" % self.port, timeout=2).ok
        except requests.RequestException:
            return False

    def close(self):
        self.watcher.halt.set()
        code = self.tracker.stop(timeout=30)
        if code is None:
            self.tracker.kill()
        self.engine.close()
        self.store.close()
        return code


def engine_count(api_url, name):
    """Executions of a workflow in the engine (a duplicated submit would show here)."""
    resp = requests.get(
        api_url + "/executions",
        params={"fields": "id,workflow_name", "limit": 1000, "workflow_name": name},
        timeout=60,
    )
    return sum(e.get("workflow_name") == name for e in resp.json()["executions"])


def start_mistral(a, tmp):
    """A private Mistral for the run (tools/mistral_local.py: own port and vhost)."""
    instance = PrivateMistral(tmp / "mistral", db=a.mistral_db, prefix="st2bridge-bench")
    print(
        "starting a private Mistral (port %d, vhost %s, load %.2f)"
        % (instance.port, instance.vhost, load()),
        flush=True,
    )
    if not instance.up():
        instance.stop()
        raise SystemExit("bench: could not start Mistral")
    return instance


def stop_mistral(instance):
    """Stop the private Mistral, delete its vhost (and database). Returns None (nothing left)."""
    if instance:
        instance.stop()
        print("private Mistral stopped, vhost %s deleted" % instance.vhost, flush=True)


# -- backends ------------------------------------------------------------------------

BACKENDS = ("eventlet", "threading")


def add_backend_option(ap):
    ap.add_argument(
        "--backend",
        choices=BACKENDS + ("both",),
        default="both",
        help="[DEFAULT] concurrency of the bridge's processes (default: both, side by side)",
    )


def chosen_backends(a):
    return list(BACKENDS) if a.backend == "both" else [a.backend]


def _numbers(value, prefix=""):
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield prefix, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers(inner, "%s.%s" % (prefix, key) if prefix else str(key))


def side_by_side(by_backend):
    """Every figure both runs have, one line each: eventlet, threading, and
    threading / eventlet."""
    if set(by_backend) != set(BACKENDS):
        return ""
    left, right = (dict(_numbers(by_backend[name])) for name in BACKENDS)
    lines = ["%-60s %14s %14s %8s" % ("figure", "eventlet", "threading", "ratio")]
    for key in sorted(set(left) & set(right)):
        ratio = "%.2f" % (right[key] / left[key]) if left[key] else "-"
        lines.append("%-60s %14s %14s %8s" % (key[:60], left[key], right[key], ratio))
    return "\n".join(lines)
