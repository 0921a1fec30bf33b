"""Scale benchmark of st2bridge-resultstracker against the engine simulator
(tests/support/engine_sim.py). Prints each figure beside its goal with
PASS/MISS, and asserts nothing about timing.

    python -m benchmarks.tracker [--executions 10000] [--trackers 1] [--churn 0.1]
        [--measure 60] [--query-interval 5] [--pool 10] [--idle 20] [--no-baseline]
        [--sim-port 0] [--json-out FILE]
    python -m benchmarks.tracker --growth 2000,10000,20000,30000,50000 --trackers 1,2
        [--json-out FILE] [--markdown-out FILE]

One run, for N executions and K tracker processes sharing one store:
  1. empty store: the trackers' RSS and idle CPU (single runs only: --idle);
  2. N records tracked, none due: idle CPU;
  3. a burst: all N fall due within one interval (as after N submissions in
     one interval, or a tracker restart). "First round" is the time until
     every one of them has been checked once (from the store's next_poll_at);
     "steady" is when a heartbeat window's p99 lateness is under 1 s;
  4. `--measure` seconds of checks/s, CPU per check, lateness, RSS, while the
     simulator finishes `--churn` of the executions per interval and a
     submitter records as many new ones (so N stays N, and a check includes
     real work: finishing an execution is a GET of its output, a task listing
     and a store write);
  5. the baseline: the prior art's one-GET-per-execution poller
     (benchmarks/baseline_poller.py) against the same simulator and the same
     executions, for the same time, in this run.
Lateness comes from the trackers' heartbeat statistics (every check, no
sampling cap): K trackers are combined conservatively (the max of their p99s).
A p99 over fewer than 100 checks is printed as a max, with the count.
--growth runs each (N, K) afresh (new simulator, new store) and prints the
growth table; memory per execution is the slope of steady RSS between sizes
(one tracker), not a fixed overhead divided by N.
Ports: the simulator takes --sim-port (0: any free port); the trackers run
with their metrics and web listeners off, so no daemon's default port is used.
"""

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from benchmarks.common import add_backend_option, chosen_backends, side_by_side
from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from tests.support.procs import ROOT, Proc, load

LIGHT = ["id", "state", "state_info", "updated_at"]
TERMINAL = ("succeeded", "failed", "canceled", "timeout", "abandoned")
MIN_P99_SAMPLES = 100


def git_state():
    """The commit measured, and whether the tree had uncommitted changes."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no").strip()),
    }


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# -- the simulator -------------------------------------------------------------


def start_sim(tmp, port, duration):
    proc = Proc(
        [sys.executable, "-m", "tests.support.engine_sim", "--port", str(port)]
        + ["--duration", str(duration)],
        tmp / "engine_sim.log",
        pipe_stdout=True,
    )
    line = proc.p.stdout.readline().decode().strip()  # the "listening on" line, or EOF
    if "listening on" not in line:
        proc.kill()
        raise SystemExit("bench: the simulator did not start: %r" % line)
    proc.url = line.rsplit(" ", 1)[1]
    proc.base = proc.url[: -len("/v2")]
    return proc


def sim_call(sim, method, path, body=None):
    resp = requests.request(method, sim.base + "/_sim/" + path, json=body, timeout=120)
    resp.raise_for_status()
    return resp.json()


def bare_get_cost(url, ex_id, n=1500):
    """CPU ms of one light GET made with the bridge's own client, in this process."""
    with MistralClient(url, retry=RetryPolicy(stop_max_msec=0)) as client:
        for _ in range(100):
            client.get_execution(ex_id, fields=LIGHT[1:])
        c0 = time.process_time()
        for _ in range(n):
            client.get_execution(ex_id, fields=LIGHT[1:])
        return (time.process_time() - c0) / n * 1000


# -- the store and the trackers ---------------------------------------------------


def write_config(tmp, store_url, api_url, a):
    path = tmp / "bridge.conf"
    path.write_text(
        "[DEFAULT]\nconcurrency = %s\nstate_path = %s\nlog_level = %s\n[store]\nurl = %s\n"
        "[engine]\napi_url = %s\n[resultstracker]\nmode = poll\nquery_interval = %s\n"
        "jitter_interval = %s\nthread_pool_size = %d\n[metrics]\nport = 0\n[web]\nport = 0\n"
        % (a.backend, tmp, a.log_level, store_url, api_url, a.query_interval, a.jitter, a.pool)
    )
    return path


def make_records(store, ids, now, next_poll_at, engine_updated_at):
    """Records as the runner leaves them after a submit: running, with the
    engine's state and updated_at as the submit's answer gave them."""
    for ex_id in ids:
        store.create_execution(
            new_execution_record(
                id=str(uuid.uuid4()),
                workflow_name="sim.wf",
                engine_execution_id=ex_id,
                status="running",
                tracked=True,
                created_at=now,
                updated_at=now,
                engine_state="RUNNING",
                engine_updated_at=engine_updated_at(ex_id),
                next_poll_at=next_poll_at(),
            )
        )


class StoreFile:
    """Direct read-only questions to the SQLite file (indexed columns only)."""

    def __init__(self, path, check_same_thread=True):
        self.db = sqlite3.connect(
            "file:%s?mode=ro" % path, uri=True, timeout=30, check_same_thread=check_same_thread
        )

    def _count(self, sql, *args):
        return self.db.execute(sql, args).fetchone()[0]

    def not_checked_since(self, due_before):
        """Active records still due before `due_before`: records are due within
        one interval of the burst and a checked one is due an interval after
        its check, so these have not been checked yet."""
        return self._count(
            "SELECT count(*) FROM executions WHERE tracked = 1 AND next_poll_at < ? "
            "AND status NOT IN (%s)" % ",".join("?" * len(TERMINAL)),
            due_before,
            *TERMINAL,
        )

    def terminal(self):
        return self._count(
            "SELECT count(*) FROM executions WHERE status IN (%s)" % ",".join("?" * len(TERMINAL)),
            *TERMINAL,
        )


def start_trackers(k, conf, tmp, store):
    trackers = []
    for i in range(k):
        trackers.append(
            Proc(
                [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
                tmp / ("tracker-%d.log" % i),
            )
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for t in trackers:
            if t.p.poll() is not None:
                raise SystemExit(
                    "bench: a tracker exited with %s:\n%s"
                    % (t.p.returncode, Path(t.log.name).read_text()[-3000:])
                )
        if all(service(store, t.pid) for t in trackers):
            return trackers
        time.sleep(0.5)
    raise SystemExit("bench: the trackers did not register in the service registry")


def service(store, pid):
    return next((s for s in store.list_services() if s.get("pid") == pid), None)


def tracker_stats(store, pid):
    rec = service(store, pid)
    stats = ((rec or {}).get("info") or {}).get("stats")
    return dict(stats, heartbeat_at=rec.get("heartbeat_at")) if stats else None


def idle_phase(trackers, seconds, label):
    c0, t0, l0 = sum(t.cpu() for t in trackers), time.monotonic(), load()
    time.sleep(seconds)
    pct_core = (sum(t.cpu() for t in trackers) - c0) / (time.monotonic() - t0) * 100
    rss = sum(t.mem_kb()[0] for t in trackers)
    print(
        "  %-30s CPU %.2f%% of a core over %.0f s, RSS %.1f MB (load %.2f -> %.2f)"
        % (label, pct_core, seconds, rss / 1024, l0, load()),
        flush=True,
    )
    return {"cpu_pct": round(pct_core, 3), "rss_kb": rss, "seconds": seconds}


class Submitter(threading.Thread):
    """Keeps N executions running: for each record the trackers finished, a
    new execution in the simulator (finishing `duration` s later) and its
    record, written one by one as the runner writes them."""

    def __init__(self, sim, store_url, store_path, duration, query_interval):
        super().__init__(daemon=True)
        self.sim, self.store_url = sim, store_url
        self.store_file = StoreFile(store_path[len("sqlite:///") :], check_same_thread=False)
        self.duration, self.qi = duration, query_interval
        self.stop_event, self.created, self.error = threading.Event(), 0, None
        self.base = self.store_file.terminal()

    def run(self):
        store = open_store(self.store_url)
        try:
            while not self.stop_event.wait(1.0):
                missing = self.store_file.terminal() - self.base - self.created
                if missing <= 0:
                    continue
                made = sim_call(
                    self.sim, "POST", "executions", {"count": missing, "duration": self.duration}
                )
                now = time.time()
                make_records(
                    store,
                    made["ids"],
                    now,
                    lambda now=now: now + self.qi,
                    lambda _id, made=made: made["updated_at"],
                )
                self.created += missing
        except Exception as exc:  # reported, not raised: the figures say it happened
            self.error = repr(exc)
        finally:
            store.close()


# -- the phases ---------------------------------------------------------------------


def combined_windows(store, trackers, seen):
    """New heartbeat windows of each tracker since `seen` (tracker -> heartbeat_at)."""
    out = []
    for t in trackers:
        ts = tracker_stats(store, t.pid)
        late = (ts or {}).get("lateness_ms") or {}
        if ts and late.get("count") and ts["heartbeat_at"] != seen.get(t.pid):
            seen[t.pid] = ts["heartbeat_at"]
            out.append(late)
    return out


def first_round_and_warm_up(a, trackers, store, store_file, burst_at, res):
    """Time until every record of the burst was checked once, then until a
    heartbeat window of every tracker has p99 lateness under 1 s."""
    t0, seen, worst, first_round, steady_since = time.monotonic(), {}, 0.0, None, {}
    print(
        "burst: %d due within one interval: waiting for the first round, then steady lateness"
        % a.executions
    )
    while time.monotonic() - t0 < a.warmup_max:
        time.sleep(0.5)
        if first_round is None and store_file is not None:
            left = store_file.not_checked_since(burst_at + a.query_interval)
            if left == 0:
                first_round = round(time.monotonic() - t0, 1)
                print("  first round done in %.1f s" % first_round, flush=True)
        for late in combined_windows(store, trackers, seen):
            worst = max(worst, late["max"])
            print(
                "  [%3.0fs] a tracker's window: lateness p99 %.0f ms, max %.0f ms (%d checks)"
                % (time.monotonic() - t0, late["p99"], late["max"], late["count"]),
                flush=True,
            )
        for t in trackers:
            ts = tracker_stats(store, t.pid) or {}
            late = ts.get("lateness_ms") or {}
            if late.get("count") and late["p99"] < 1000 and first_round is not None:
                steady_since.setdefault(t.pid, time.monotonic())
        if len(steady_since) == len(trackers) and time.monotonic() - t0 >= a.warmup:
            break
    res["first_round_s"] = first_round
    res["warm_up"] = {
        "seconds": round(time.monotonic() - t0, 1),
        "steady": len(steady_since) == len(trackers),
        "lateness_max_ms": worst,
    }


def measure(a, trackers, sim, store, submitter, res):
    print("measuring %.0f s" % a.measure, flush=True)
    sim_call(sim, "POST", "stats/reset")
    s0 = {t.pid: tracker_stats(store, t.pid) for t in trackers}
    c0 = {t.pid: t.cpu() for t in trackers}
    sc0, t0, created0 = sim.cpu(), time.monotonic(), submitter.created
    windows, seen, rss_samples = (
        [],
        {t.pid: (s0[t.pid] or {}).get("heartbeat_at") for t in trackers},
        [],
    )
    while time.monotonic() - t0 < a.measure:
        time.sleep(min(5.0, a.measure - (time.monotonic() - t0)))
        new = combined_windows(store, trackers, seen)
        windows += new
        rss = sum(t.mem_kb()[0] for t in trackers)
        rss_samples.append(rss)
        cpu = sum(t.cpu() - c0[t.pid] for t in trackers) / (time.monotonic() - t0) * 100
        print(
            "  [%3.0fs] trackers CPU %3.0f%% of a core, RSS %6.1f MB | finished+replaced %d | "
            "lateness p99 %s | load %.2f"
            % (
                time.monotonic() - t0,
                cpu,
                rss / 1024,
                submitter.created - created0,
                ", ".join("%.0f ms" % w["p99"] for w in new) or "-",
                load(),
            ),
            flush=True,
        )
    wall = time.monotonic() - t0
    cpu = sum(t.cpu() - c0[t.pid] for t in trackers)
    st = sim_call(sim, "GET", "stats")
    polls = probes = flagged = 0
    for t in trackers:
        s1 = tracker_stats(store, t.pid) or {}
        polls += s1.get("polls", 0) - (s0[t.pid] or {}).get("polls", 0)
        # The stuck watch: engine reads for suspects (executions quiet for [stuck]
        # probe_after) and executions flagged (the simulator's are healthy: 0 expected).
        probes += s1.get("stuck_probes", 0) - (s0[t.pid] or {}).get("stuck_probes", 0)
        flagged += s1.get("stuck_flagged", 0)
    # Polls are counted at heartbeats; over the measured span they are close
    # to what the trackers did in it (one heartbeat interval of edge).
    polls_s = polls / wall
    late = {"count": sum(w["count"] for w in windows)}
    if windows:
        late.update(
            p50=sorted(w["p50"] for w in windows)[len(windows) // 2],
            p99=max(w["p99"] for w in windows),
            max=max(w["max"] for w in windows),
            windows=len(windows),
        )
    res["measure"] = {
        "seconds": round(wall, 1),
        "checks_per_s": round(polls_s, 1),
        "trackers_cpu_pct": round(cpu / wall * 100, 1),
        "cpu_ms_per_check": round(cpu / wall / polls_s * 1000, 4) if polls_s else None,
        "finished_and_replaced": submitter.created - created0,
        "finished_per_interval_pct": round(
            100.0 * (submitter.created - created0) / a.executions / (wall / a.query_interval), 1
        ),
        "submitter_error": submitter.error,
        "engine_requests_per_s": round(st["requests_total"] / wall, 1),
        "engine_requests": st["requests"],
        "stuck_probes": probes,
        "stuck_flagged": flagged,
        "sim_cpu_pct": round((sim.cpu() - sc0) / wall * 100, 1),
        "rss_kb": rss_samples[-1] if rss_samples else None,
        "rss_kb_samples": rss_samples,
        "peak_rss_kb": sum(t.mem_kb()[1] for t in trackers),
        "lateness_ms": late,
        "load": load(),
    }


def run_baseline(a, sim, tmp, ids, res):
    ids_file = tmp / "baseline-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    print("baseline: one light GET per execution per interval, %d threads" % a.pool, flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.baseline_poller", "--api-url", sim.url]
        + ["--ids-file", str(ids_file), "--interval", str(a.query_interval)]
        + ["--pool", str(a.pool), "--warmup", str(a.query_interval * 2)]
        + ["--measure", str(a.measure)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        res["baseline"] = {"error": proc.stderr[-2000:]}
        return
    res["baseline"] = json.loads(proc.stdout.strip().splitlines()[-1])
    print("  baseline: %s" % json.dumps(res["baseline"]), flush=True)


def run_one(a, n, k, tmp):
    """One (N, K) run; returns its result dict."""
    a = argparse.Namespace(**dict(vars(a), executions=n, trackers=k))
    store_url = a.store_url or "sqlite:///%s/bridge.db" % tmp
    res = {"executions": n, "trackers": k, "store": store_url.split(":")[0], "load_start": load()}
    sim = store = None
    trackers, submitter = [], None
    try:
        sim = start_sim(tmp, a.sim_port, 10 * 86400)
        recorded_at = time.time()  # the bridge records before it submits
        made = sim_call(sim, "POST", "executions", {"count": n, "duration": 10 * 86400})
        ids = made["ids"]
        res["bare_get_cpu_ms"] = round(bare_get_cost(sim.url, ids[0]), 4)
        store = open_store(store_url)
        t0 = time.monotonic()
        make_records(
            store, ids, recorded_at, lambda: recorded_at + 30 * 86400, lambda _: made["updated_at"]
        )
        print("%d records written in %.1f s" % (n, time.monotonic() - t0), flush=True)
        store_file = (
            StoreFile(store_url[len("sqlite:///") :]) if store_url.startswith("sqlite") else None
        )
        conf = write_config(tmp, store_url, sim.url, a)
        trackers = start_trackers(k, conf, tmp, store)
        time.sleep(3)  # imports and first ticks done
        if a.idle:
            res["empty"] = {"rss_kb": sum(t.mem_kb()[0] for t in trackers)}
            res["idle"] = idle_phase(trackers, a.idle, "%d tracked, none due" % n)
        # The burst, and the pace of finishes from now on.
        duration = a.query_interval / a.churn if a.churn else 10 * 86400
        sim_call(sim, "POST", "reschedule", {"duration": 0.0, "spread": duration})
        burst_at = time.time()
        store.update_many(
            [
                (r["id"], {"next_poll_at": burst_at + random.random() * a.query_interval})
                for r in store.list_executions(limit=n + 1)
            ]
        )
        submitter = Submitter(sim, store_url, store_url, duration, a.query_interval)
        submitter.start()
        first_round_and_warm_up(a, trackers, store, store_file, burst_at, res)
        measure(a, trackers, sim, store, submitter, res)
        submitter.stop_event.set()
        submitter.join(30)
        res["tracker_exit_codes"] = [t.stop() for t in trackers]
        if a.baseline:
            active = [
                r["engine_execution_id"]
                for r in store.list_executions(limit=2 * n)
                if r["status"] not in TERMINAL
            ]
            run_baseline(a, sim, tmp, active, res)
    finally:
        if submitter is not None:
            submitter.stop_event.set()
        for proc in trackers + [sim]:
            if proc is not None and proc.p.poll() is None:
                if proc.stop(timeout=30) is None:
                    proc.kill()
        if store is not None:
            store.close()
    return res


# -- the report ------------------------------------------------------------------------


def late_text(late):
    """p99 only over 100 checks or more; otherwise the max, with the count."""
    if not late.get("count"):
        return "n/a"
    if late["count"] < MIN_P99_SAMPLES:
        return "max %.0f (%d checks)" % (late["max"], late["count"])
    return "%.0f" % late["p99"]


def verdict(ok, value):
    return "" if ok is None else "n/a" if value is None else "PASS" if ok(value) else "MISS"


def report_one(a, res):
    m, n, qi = res.get("measure", {}), res["executions"], a.query_interval
    late, base = m.get("lateness_ms", {}), res.get("baseline") or {}
    needed = n / (qi + a.jitter / 2)
    p99_ok = late.get("count", 0) >= MIN_P99_SAMPLES
    rows = [
        (
            "checks/s",
            m.get("checks_per_s"),
            ">= %.0f (98%% of N / (qi + jitter/2))" % (0.98 * needed),
            lambda v: v >= 0.98 * needed,
        ),
        ("tracker CPU ms per check", m.get("cpu_ms_per_check"), "<= 0.5", lambda v: v <= 0.5),
        ("first round after the burst, s", res.get("first_round_s"), "(linear in N)", None),
        ("until steady, s", res.get("warm_up", {}).get("seconds"), "(info)", None),
        ("lateness p50 ms", late.get("p50"), "(info)", None),
        (
            "lateness p99 ms",
            late_text(late),
            "<= 1000 (interval + 1 s)",
            (lambda v: late["p99"] <= 1000) if p99_ok else None,
        ),
        ("lateness max ms", late.get("max"), "(info)", None),
        (
            "finished per interval %",
            m.get("finished_per_interval_pct"),
            "~%.0f (--churn)" % (100 * a.churn),
            None,
        ),
        ("trackers CPU % of a core", m.get("trackers_cpu_pct"), "(info)", None),
        (
            "idle CPU % (N tracked, none due)",
            res.get("idle", {}).get("cpu_pct"),
            "< 1",
            lambda v: v < 1,
        ),
        ("simulator CPU %", m.get("sim_cpu_pct"), "(info: well < 100: not the bottleneck)", None),
        ("stuck-watch engine reads", m.get("stuck_probes"), "(info: suspects only)", None),
        ("flagged stuck (false positives)", m.get("stuck_flagged"), "0", lambda v: v == 0),
        ("baseline checks/s", base.get("checks_per_s"), "(needs %.0f)" % (n / qi), None),
        ("baseline CPU % of a core", base.get("cpu_pct"), "(info)", None),
        ("baseline lateness p99 ms", late_text(base.get("lateness_ms") or {}), "(info)", None),
        (
            "CPU per check, bridge / baseline",
            m.get("cpu_ms_per_check")
            and base.get("cpu_ms_per_check")
            and round(m["cpu_ms_per_check"] / base["cpu_ms_per_check"], 3),
            "(lower is better)",
            None,
        ),
    ]
    print(
        "\n== N = %d, %d tracker(s), query_interval %g s, pool %d, churn %.0f%%, store %s, "
        "load %.2f ==" % (n, res["trackers"], qi, a.pool, 100 * a.churn, res["store"], load())
    )
    verdicts = {}
    for name, value, goal, ok in rows:
        verdicts[name] = verdict(ok, value)
        print(
            "  %-34s %16s   goal %-44s %s"
            % (name, "n/a" if value is None else value, goal, verdicts[name])
        )
    res["verdicts"] = verdicts


def rss_slopes(results):
    """KB per execution between consecutive sizes, one tracker, steady RSS
    (each backend's runs apart)."""
    slopes = []
    for backend in sorted({r.get("backend", "eventlet") for r in results}):
        one = sorted(
            (r["executions"], r["measure"]["rss_kb"])
            for r in results
            if r["trackers"] == 1
            and r.get("backend", "eventlet") == backend
            and r.get("measure", {}).get("rss_kb")
        )
        slopes += [
            {
                "backend": backend,
                "from": n1,
                "to": n2,
                "kb_per_execution": round((r2 - r1) / (n2 - n1), 3),
            }
            for (n1, r1), (n2, r2) in zip(one, one[1:])
            if n2 != n1
        ]
    return slopes


def growth_table(a, results):
    lines = [
        "| N | trackers | backend | checks/s (needed) | CPU ms/check | first round s | lateness p50 / p99 / max ms "
        "| CPU % of a core | RSS MB | baseline checks/s, CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m, late, b = (
            r.get("measure", {}),
            r.get("measure", {}).get("lateness_ms", {}),
            r.get("baseline") or {},
        )
        lines.append(
            "| %s | %d | %s | %s (%.0f) | %s | %s | %s / %s / %s | %s | %s | %s |"
            % (
                "{:,}".format(r["executions"]),
                r["trackers"],
                r.get("backend", "eventlet"),
                m.get("checks_per_s"),
                r["executions"] / (a.query_interval + a.jitter / 2),
                m.get("cpu_ms_per_check"),
                r.get("first_round_s"),
                late.get("p50"),
                late_text(late),
                late.get("max"),
                m.get("trackers_cpu_pct"),
                m.get("rss_kb") and round(m["rss_kb"] / 1024, 1),
                "%s, %s" % (b.get("checks_per_s"), b.get("cpu_pct")) if b else "-",
            )
        )
    slopes = rss_slopes(results)
    if slopes:
        lines.append("")
        lines.append(
            "RSS slope (one tracker, steady RSS): "
            + "; ".join(
                "%s, %s -> %s: %.2f KB per execution"
                % (
                    s["backend"],
                    "{:,}".format(s["from"]),
                    "{:,}".format(s["to"]),
                    s["kb_per_execution"],
                )
                for s in slopes
            )
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executions", type=int, default=10000)
    ap.add_argument("--trackers", default="1", help="tracker processes (a list with --growth)")
    ap.add_argument(
        "--growth", help="comma-separated sizes: one fresh run per size and tracker count"
    )
    ap.add_argument("--query-interval", type=float, default=5.0)
    ap.add_argument("--jitter", type=float, default=0.1, help="[resultstracker] jitter_interval")
    ap.add_argument("--pool", type=int, default=10, help="[resultstracker] thread_pool_size")
    ap.add_argument("--churn", type=float, default=0.1, help="fraction finishing per interval")
    ap.add_argument("--measure", type=float, default=60.0)
    ap.add_argument(
        "--warmup", type=float, help="minimum seconds before measuring (default: 2 intervals)"
    )
    ap.add_argument("--warmup-max", type=float, default=300.0)
    ap.add_argument(
        "--idle",
        type=float,
        default=None,
        help="seconds of the idle phase (0 skips; default 20, or 0 with --growth)",
    )
    ap.add_argument("--no-baseline", dest="baseline", action="store_false")
    ap.add_argument("--sim-port", type=int, default=0, help="the simulator's port (0: any free)")
    ap.add_argument("--store-url", help="default: a SQLite file in a temp dir")
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument("--json-out")
    ap.add_argument("--markdown-out")
    add_backend_option(ap)
    a = ap.parse_args(argv)
    a.warmup = 2 * a.query_interval if a.warmup is None else a.warmup
    sizes = [int(s) for s in a.growth.split(",")] if a.growth else [a.executions]
    counts = [int(k) for k in str(a.trackers).split(",")]
    a.idle = (0.0 if a.growth else 20.0) if a.idle is None else a.idle
    meta = {
        "argv": sys.argv if argv is None else ["benchmarks.tracker"] + list(argv),
        "args": vars(a),
        "git": git_state(),
        "cpu": cpu_model(),
        "load_start": load(),
    }
    if meta["git"]["dirty"]:
        print("NOTE: the tree has uncommitted changes: these figures are not publishable")
    results = []
    try:
        for n in sizes:
            for k in counts:
                by_backend = {}
                for backend in chosen_backends(a):
                    tmp = Path(tempfile.mkdtemp(prefix="st2bridge-bench-"))
                    print(
                        "\n#### N = %d, %d tracker(s), %s; logs in %s" % (n, k, backend, tmp),
                        flush=True,
                    )
                    run_a = argparse.Namespace(**dict(vars(a), backend=backend))
                    res = dict(run_one(run_a, n, k, tmp), backend=backend)
                    report_one(argparse.Namespace(**dict(vars(run_a), executions=n)), res)
                    results.append(res)
                    by_backend[backend] = res
                table = side_by_side(by_backend)
                if table:
                    print("\n#### N = %d, %d tracker(s): threading / eventlet\n%s" % (n, k, table))
    finally:
        meta["load_end"] = load()
        out = dict(meta, results=results, rss_slopes=rss_slopes(results))
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(out, default=str) + "\n")
        table = growth_table(a, results)
        print("\n" + table)
        if a.markdown_out:
            Path(a.markdown_out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
