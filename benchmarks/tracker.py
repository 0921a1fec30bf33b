"""Scale benchmark of st2bridge-resultstracker against tests/support/engine_sim.py (issue 3).

Tracks N running executions (default 10,000, query_interval 5 s) and prints
each figure beside its goal with PASS/MISS; it asserts nothing about timing.

    .venv/bin/python -m benchmarks.tracker [--executions 10000] [--measure 60]
        [--query-interval 5] [--pool 10] [--idle 20] [--json-out FILE]

Phases, all with ONE tracker process so that its RSS growth is comparable:
  1. empty store: RSS baseline and idle CPU;
  2. N tracked records, none due for days: idle CPU ("nothing due");
  3. the N records made due, spread over one query_interval: after a warm-up,
     `--measure` seconds of polls/s, CPU per poll, lateness, RSS.
Figures come from /proc (tracker CPU and RSS), the tracker's heartbeat stats in
the store's service registry (polls, lateness) and the simulator's /_sim/stats
(requests it answered, gaps between light queries of one execution).
"""

import argparse
import http.client
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from tests.support.procs import ROOT, Proc, load

LIGHT = ["id", "state", "state_info", "updated_at"]


def start_sim(tmp, duration):
    proc = Proc(
        [
            sys.executable,
            "-m",
            "tests.support.engine_sim",
            "--port",
            "0",
            "--duration",
            str(duration),
        ],
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
    resp = requests.request(method, sim.base + "/_sim/" + path, json=body, timeout=60)
    resp.raise_for_status()
    return resp.json()


def sim_throughput(sim, ids, seconds=3.0):
    """Requests/s with one keep-alive http.client connection, and the simulator's
    own CPU per request (so the figure does not depend on the client's speed)."""
    host, port = sim.base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    out = {}
    cases = {
        "light_get": lambda i: (
            "/v2/executions/%s?fields=state,state_info,updated_at" % ids[i % len(ids)]
        ),
        "listing_1000": lambda i: (
            "/v2/executions?fields=id,state,state_info,updated_at"
            "&limit=1000&nulls=task_execution_id"
        ),
    }
    for name, path in cases.items():
        n, c0, t0 = 0, sim.cpu(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            conn.request("GET", path(n))
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            n += 1
        wall, cpu = time.perf_counter() - t0, sim.cpu() - c0
        out[name] = {
            "requests": n,
            "per_s": round(n / wall),
            "sim_cpu_us": round(cpu / n * 1e6, 1),
            "per_s_per_core": round(n / cpu) if cpu else None,
        }
    conn.close()
    return out


def bare_get_cost(url, ex_id, n=1500):
    """CPU ms of one light GET made with the bridge's own client, in this process."""
    with MistralClient(url, retry=RetryPolicy(stop_max_msec=0)) as client:
        for _ in range(100):
            client.get_execution(ex_id, fields=LIGHT[1:])
        c0 = time.process_time()
        for _ in range(n):
            client.get_execution(ex_id, fields=LIGHT[1:])
        return (time.process_time() - c0) / n * 1000


def write_config(tmp, store_url, api_url, a):
    path = tmp / "bridge.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\nlog_level = %s\n[store]\nurl = %s\n"
        "[engine]\napi_url = %s\n[resultstracker]\nmode = poll\nquery_interval = %s\n"
        "jitter_interval = %s\nthread_pool_size = %d\n"
        % (tmp, a.log_level, store_url, api_url, a.query_interval, a.jitter, a.pool)
    )
    return path


def service(store, pid):
    """The tracker's registry record (found by pid), or None before it registers."""
    return next((s for s in store.list_services() if s.get("pid") == pid), None)


def tracker_stats(store, pid):
    rec = service(store, pid)
    stats = ((rec or {}).get("info") or {}).get("stats")
    return dict(stats, heartbeat_at=rec.get("heartbeat_at")) if stats else None


def idle_phase(tracker, seconds, label):
    c0, t0, l0 = tracker.cpu(), time.monotonic(), load()
    time.sleep(seconds)
    cpu = tracker.cpu() - c0
    pct = cpu / (time.monotonic() - t0) * 100
    rss, _ = tracker.mem_kb()
    print(
        "  %-28s CPU %.2f%% of a core over %.0f s, RSS %.1f MB (load %.2f -> %.2f)"
        % (label, pct, seconds, rss / 1024, l0, load()),
        flush=True,
    )
    return {"cpu_pct": round(pct, 3), "rss_kb": rss, "seconds": seconds, "load": [l0, load()]}


def make_records(store, ids, now, due_from, spread, engine_updated_at):
    """Records as the runner leaves them after a submit: running, with the
    engine's state and updated_at as the submit's answer gave them."""
    out = []
    for ex_id in ids:
        rec = new_execution_record(
            id=str(uuid.uuid4()),
            workflow_name="sim.wf",
            engine_execution_id=ex_id,
            status="running",
            tracked=True,
            created_at=now,
            updated_at=now,
            engine_state="RUNNING",
            engine_updated_at=engine_updated_at.get(ex_id),
            next_poll_at=due_from + random.random() * spread,
        )
        store.create_execution(rec)
        out.append(rec["id"])
    return out


def warm_up(a, tracker, store, res):
    """At least --warmup s, then until a heartbeat window has p99 lateness under
    1 s (the first round after a burst of submissions is the costly one)."""
    t0, seen, worst, steady = time.monotonic(), None, 0.0, False
    print(
        "warm-up: at least %.0f s, at most %.0f s, until lateness p99 < 1 s"
        % (a.warmup, a.warmup_max)
    )
    while time.monotonic() - t0 < a.warmup_max and not steady:
        time.sleep(1.0)
        ts = tracker_stats(store, tracker.pid)
        if ts is None:  # no heartbeat stats: a fixed warm-up is all we can do
            steady = time.monotonic() - t0 >= a.warmup
            continue
        late = ts.get("lateness_ms") or {}
        if ts["heartbeat_at"] != seen and late.get("count"):
            seen, worst = ts["heartbeat_at"], max(worst, late["max"])
            print(
                "  [warm-up %3.0fs] lateness p99 %.0f ms, max %.0f ms, tracker CPU total %.1f s"
                % (time.monotonic() - t0, late["p99"], late["max"], tracker.cpu()),
                flush=True,
            )
            steady = time.monotonic() - t0 >= a.warmup and late["p99"] < 1000
    res["warm_up"] = {
        "seconds": round(time.monotonic() - t0, 1),
        "steady": steady,
        "lateness_max_ms": worst,
    }


def measure(a, tracker, sim, store, res):
    """The loaded phase; progress every 5 s; fills res["load_phase"]."""
    n, qi = a.executions, a.query_interval
    warm_up(a, tracker, store, res)
    print("measuring %.0f s" % a.measure, flush=True)
    sim_call(sim, "POST", "stats/reset")
    s0, c0, sc0, t0 = tracker_stats(store, tracker.pid), tracker.cpu(), sim.cpu(), time.monotonic()
    windows, last = {}, (t0, c0, 0, 0)
    while time.monotonic() - t0 < a.measure:
        time.sleep(min(5.0, a.measure - (time.monotonic() - t0)))
        now, cpu, st = time.monotonic(), tracker.cpu(), sim_call(sim, "GET", "stats")
        light, lists = st["light_queries"]["total"], st["requests"].get("GET /v2/executions", 0)
        ts = tracker_stats(store, tracker.pid)
        if ts and ts.get("lateness_ms", {}).get("count"):
            windows[ts["heartbeat_at"]] = ts["lateness_ms"]
        late = ts["lateness_ms"] if ts else {}
        rss, _ = tracker.mem_kb()
        print(
            "  [%3.0fs] engine light GETs/s %5.0f, listings/s %5.1f | tracker CPU %3.0f%% RSS %6.1f MB | "
            "lateness p99 %s ms | load %.2f"
            % (
                now - t0,
                (light - last[2]) / (now - last[0]),
                (lists - last[3]) / (now - last[0]),
                (cpu - last[1]) / (now - last[0]) * 100,
                rss / 1024,
                "%.0f" % late["p99"] if late.get("p99") is not None else "n/a",
                load(),
            ),
            flush=True,
        )
        last = (now, cpu, light, lists)
    wall, cpu = time.monotonic() - t0, tracker.cpu() - c0
    st = requests.get(sim.base + "/_sim/stats?per_execution=1", timeout=60).json()
    s1, rss = tracker_stats(store, tracker.pid), tracker.mem_kb()
    lq, eng_total = st["light_queries"], st["requests_total"]
    if s0 and s1 and s1["heartbeat_at"] != s0["heartbeat_at"]:
        polls_s = (s1["polls"] - s0["polls"]) / (s1["heartbeat_at"] - s0["heartbeat_at"])
        source = "tracker heartbeat stats"
    else:  # no contract stats yet: one light GET per poll is what the tracker sends today
        polls_s, source = lq["total"] / wall, "simulator light-GET count (tracker stats missing)"
    gaps = lq["gap_s"]
    per = lq.get("by_execution", {})
    res["load_phase"] = {
        "seconds": round(wall, 1),
        "polls_per_s": round(polls_s, 1),
        "polls_source": source,
        "tracker_cpu_pct": round(cpu / wall * 100, 1),
        "cpu_ms_per_poll": round(cpu / wall / polls_s * 1000, 4) if polls_s else None,
        "engine_requests_per_s": round(eng_total / wall, 1),
        "engine_requests": st["requests"],
        # The stuck watch's reads (suspects only: executions quiet for [stuck] probe_after)
        # and what it flagged (the simulator's executions are healthy: 0 expected).
        "stuck_probes": (s1 or {}).get("stuck_probes", 0) - (s0 or {}).get("stuck_probes", 0),
        "stuck_flagged": (s1 or {}).get("stuck_flagged", 0),
        "sim_cpu_pct": round((sim.cpu() - sc0) / wall * 100, 1),
        "rss_kb": rss[0],
        "peak_rss_kb": rss[1],
        "load": load(),
        "tracker_lateness_windows": list(windows.values()),
        "engine_gap_s": gaps,
        "executions_queried": len(per),
        "executions_queried_in_window_pct": round(100.0 * len(per) / n, 2),
    }
    if windows:
        ws = list(windows.values())
        res["load_phase"]["lateness_ms"] = {
            "p50": sorted(w["p50"] for w in ws)[len(ws) // 2],
            "p99": max(w["p99"] for w in ws),
            "max": max(w["max"] for w in ws),
            "source": "tracker (median of window p50s, max of p99s)",
        }
    elif gaps.get("count"):
        # Lateness seen from the engine: gap between two light GETs minus the interval.
        res["load_phase"]["lateness_ms"] = {
            k: round((gaps[k] - qi) * 1000, 1) for k in ("p50", "p99", "max")
        }
        res["load_phase"]["lateness_ms"]["source"] = (
            "engine-side gaps minus query_interval (incl. jitter)"
        )


def report(a, res):
    lp, n, qi = res.get("load_phase", {}), a.executions, a.query_interval
    late, expected = lp.get("lateness_ms", {}), n / (qi + a.jitter / 2)
    rss_per = (lp["rss_kb"] - res["empty"]["rss_kb"]) / n if lp and "empty" in res else None
    rows = [
        # Each execution is due every qi + jitter/2 s on average; allow 2% for the window edges.
        (
            "polls/s",
            lp.get("polls_per_s"),
            ">= %.0f (98%% of N / (qi + jitter/2))" % (0.98 * expected),
            lambda v: v >= 0.98 * expected,
        ),
        ("tracker CPU ms per poll", lp.get("cpu_ms_per_poll"), "<= 0.5", lambda v: v <= 0.5),
        (
            "warm-up until steady, s",
            res.get("warm_up", {}).get("seconds"),
            "(info: first round after the burst)",
            None,
        ),
        (
            "lateness max during warm-up ms",
            res.get("warm_up", {}).get("lateness_max_ms"),
            "(info)",
            None,
        ),
        ("lateness p50 ms", late.get("p50"), "(info)", None),
        ("lateness p99 ms", late.get("p99"), "<= 1000", lambda v: v <= 1000),
        (
            "lateness max ms",
            late.get("max"),
            "<= 1000 (every poll within qi + 1 s)",
            lambda v: v <= 1000,
        ),
        ("RSS KB per tracked execution", rss_per and round(rss_per, 2), "< 2", lambda v: v < 2),
        ("idle CPU % (empty store)", res.get("empty", {}).get("cpu_pct"), "< 1", lambda v: v < 1),
        (
            "idle CPU % (N tracked, none due)",
            res.get("idle", {}).get("cpu_pct"),
            "< 1",
            lambda v: v < 1,
        ),
        ("tracker CPU % of a core (loaded)", lp.get("tracker_cpu_pct"), "(info)", None),
        (
            "tracker peak RSS MB",
            lp.get("peak_rss_kb") and round(lp["peak_rss_kb"] / 1024, 1),
            "(info)",
            None,
        ),
        ("engine requests/s", lp.get("engine_requests_per_s"), "(info)", None),
        ("stuck-watch engine reads (window)", lp.get("stuck_probes"), "(info)", None),
        (
            "executions flagged stuck (false positives)",
            lp.get("stuck_flagged"),
            "0",
            lambda v: v == 0,
        ),
        (
            "simulator CPU %",
            lp.get("sim_cpu_pct"),
            "(info: not the bottleneck if well < 100)",
            None,
        ),
        (
            "CPU per poll / bare light GET",
            lp.get("cpu_ms_per_poll")
            and res.get("bare_get_cpu_ms")
            and round(lp["cpu_ms_per_poll"] / res["bare_get_cpu_ms"], 2),
            "(info)",
            None,
        ),
    ]
    print(
        "\n== results: %d executions, query_interval %g s, pool %d, store %s, load avg %.2f =="
        % (n, qi, a.pool, res["store"], load())
    )
    verdicts = {}
    for name, value, goal, ok in rows:
        verdict = "" if ok is None else "n/a " if value is None else "PASS" if ok(value) else "MISS"
        verdicts[name] = verdict.strip()
        print(
            "  %-34s %12s   goal %-40s %s"
            % (name, "n/a" if value is None else value, goal, verdict)
        )
    print(
        "  lateness source: %s; polls source: %s"
        % (late.get("source", "none"), lp.get("polls_source"))
    )
    res["verdicts"] = verdicts
    res["rss_kb_per_execution"] = rss_per


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executions", type=int, default=10000)
    ap.add_argument("--query-interval", type=float, default=5.0)
    ap.add_argument("--jitter", type=float, default=0.1, help="[resultstracker] jitter_interval")
    ap.add_argument("--pool", type=int, default=10, help="[resultstracker] thread_pool_size")
    ap.add_argument("--measure", type=float, default=60.0)
    ap.add_argument(
        "--warmup", type=float, help="minimum seconds before measuring (default: 2 intervals)"
    )
    ap.add_argument("--warmup-max", type=float, default=120.0, help="maximum seconds of warm-up")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of each idle phase (0 skips)")
    ap.add_argument("--duration", type=float, help="how long executions run in the simulator")
    ap.add_argument(
        "--store-url",
        help="default: a SQLite file in a temp dir (mongomock cannot be "
        "shared with a daemon process; a real mongodb:// URL works)",
    )
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument(
        "--sim-only", action="store_true", help="only measure the simulator's throughput"
    )
    ap.add_argument("--json-out")
    a = ap.parse_args(argv)
    a.warmup = 2 * a.query_interval if a.warmup is None else a.warmup
    a.duration = a.duration or (2 * a.idle + a.warmup_max + a.measure + 300)
    tmp = Path(tempfile.mkdtemp(prefix="st2bridge-bench-"))
    store_url = a.store_url or "sqlite:///%s/bridge.db" % tmp
    res = {
        "args": vars(a),
        "store": store_url.split(":")[0],
        "load_start": load(),
        "git": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    sim = tracker = store = None
    try:
        sim = start_sim(tmp, a.duration)
        # The bridge records an execution before it submits it: created_at comes first.
        recorded_at = time.time()
        ids = sim_call(
            sim,
            "POST",
            "executions",
            {"count": a.executions, "duration": a.duration, "workflow_name": "sim.wf"},
        )["ids"]
        res["sim_throughput"] = sim_throughput(sim, ids)
        res["bare_get_cpu_ms"] = round(bare_get_cost(sim.url, ids[0]), 4)
        print(
            "simulator %s: %s; bare light GET with MistralClient: %.3f ms CPU"
            % (sim.url, json.dumps(res["sim_throughput"]), res["bare_get_cpu_ms"]),
            flush=True,
        )
        if a.sim_only:
            return 0
        store = open_store(store_url)
        conf = write_config(tmp, store_url, sim.url, a)
        tracker = Proc(
            [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
            tmp / "tracker.log",
        )
        deadline = time.monotonic() + 15
        while service(store, tracker.pid) is None and time.monotonic() < deadline:
            if tracker.p.poll() is not None:
                raise SystemExit(
                    "bench: the tracker exited with %s:\n%s"
                    % (tracker.p.returncode, (tmp / "tracker.log").read_text()[-3000:])
                )
            time.sleep(0.5)
        res["registered"] = service(store, tracker.pid) is not None
        print(
            "tracker pid %d %s"
            % (
                tracker.pid,
                "registered in the service registry"
                if res["registered"]
                else "did NOT register in the service registry (contract missing)",
            )
        )
        time.sleep(3)  # imports and first ticks done
        print("idle phases (load avg %.2f):" % load(), flush=True)
        if a.idle:
            res["empty"] = idle_phase(tracker, a.idle, "empty store")
        else:
            res["empty"] = {"rss_kb": tracker.mem_kb()[0]}
        now = time.time()
        # What each submit would have answered: the engine's updated_at of each execution.
        lister = MistralClient(sim.url, retry=RetryPolicy(stop_max_msec=0))
        wanted = set(ids)
        seen_at = {
            row["id"]: row["updated_at"]
            for row in lister.list_executions(fields=["id", "updated_at"])
            if row["id"] in wanted
        }
        lister.close()
        recs = make_records(store, ids, recorded_at, now + 30 * 86400, 0, seen_at)  # due in 30 days
        if a.idle:
            res["idle"] = idle_phase(tracker, a.idle, "%d tracked, none due" % a.executions)
        # Make them due, spread uniformly over the next query_interval.
        now = time.time()
        for rid in recs:
            store.update_execution(rid, {"next_poll_at": now + random.random() * a.query_interval})
        print(
            "%d records due over the next %g s (store write took %.1f s)"
            % (len(recs), a.query_interval, time.time() - now),
            flush=True,
        )
        measure(a, tracker, sim, store, res)
        res["tracker_exit_code"] = tracker.stop()
        print("tracker stopped with SIGTERM: exit code %s" % res["tracker_exit_code"])
        report(a, res)
    finally:
        for proc in (tracker, sim):
            if proc is not None and proc.p.poll() is None:
                if proc.stop(timeout=30) is None:
                    proc.kill()
        if store is not None:
            store.close()
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(res) + "\n")
        print("JSON " + json.dumps(res, default=str))
        print("logs kept in %s" % tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
