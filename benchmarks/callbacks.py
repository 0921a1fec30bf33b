"""Benchmark of completion callbacks (issue 4). Prints each figure beside its goal with PASS/MISS;
asserts nothing about timing.

    .venv/bin/python -m benchmarks.callbacks [--part latency|requests|ingest|all] [--api-url URL]
        [--executions 30] [--concurrency 5] [--req-executions 10] [--sleep 10]
        [--ingest-records 1000] [--ingest-tasks 0] [--ingest-seconds 20] [--procs 2] [--threads 8] [--profile]
        [--json-out FILE]

latency   a real Mistral (private: own home, port and RabbitMQ vhost, unless --api-url) runs M small
          workflows in `hybrid` and in `poll` mode (query_interval 5, pool 10, jitter 0.1). Latency =
          the moment the benchmark sees the terminal record in the bridge's SQLite file (polled every
          2 ms) - the arrival of the engine's terminal webhook POST. Mistral posts the entries of
          params.notify one after the other and the bridge's own entry comes first, so the probe
          registered with extra_notify only hears of the end after the bridge has answered. The
          arrival is therefore taken by a tap: the bridge's [callback] url points at this script,
          which notes the time and forwards to the tracker's listener (the hop is counted in the
          latency). In poll mode the probe is the only entry, so its arrival is the engine's POST.
requests  a counting proxy between the bridge (runner and tracker) and Mistral; workflows of
          --sleep s; engine requests per execution besides the submit (workflow GET/POST/PUT and
          POST /executions), hybrid vs poll.
ingest    one tracker in `callback` mode on a SQLite store, K records made directly in the store;
          load generator processes post valid non-terminal TASK_* events (keep-alive http.client)
          for a fixed time: events/s, client-side p50/p99, errors by status, tracker CPU.
"""

import argparse
import collections
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

from benchmarks.common import (
    ROOT,
    STOP,
    TERMINAL_EVENTS,
    Bridge,
    Counting,
    Probe,
    Proc,
    Server,
    add_backend_option,
    chosen_backends,
    dist,
    engine_count,
    load,
    pct,
    side_by_side,
    start_mistral,
    stop_mistral,
)
from st2bridge import workflow
from st2bridge.callbacks import secrets, webhook
from st2bridge.store.base import new_execution_record

WF = """version: '2.0'
%(name)s:
  input: [n]
  output: {n: <%% $.n %%>, echoed: <%% $.echoed %%>}
  tasks:
    first: {action: %(first)s, on-success: [echo]}
    echo: {action: std.echo output=<%% $.n %%>, publish: {echoed: <%% task().result %%>}, on-success: [last]}
    last: {action: std.noop}
"""


# -- small HTTP servers (threaded; whole response in one write + TCP_NODELAY: no delayed-ACK stalls)


# -- the bridge under test -----------------------------------------------------------------------


def run_executions(bridge, first, name, n, concurrency, timeout, label, probe_url=None):
    """Start n executions (at most `concurrency` at a time) and wait until each record is terminal."""
    wf = workflow.parse(WF % {"name": name, "first": first}, "%s.yaml" % name)
    extra = (
        [
            {
                "type": "webhook",
                "url": probe_url + "/probe",
                "event_types": list(TERMINAL_EVENTS),
                "headers": {"Content-Type": "application/json"},
            }
        ]
        if probe_url
        else []
    )
    runs = {}
    bridge.runner.register(wf)  # once, not by every thread at once

    def one(i):
        if STOP.is_set():
            return
        rec = bridge.runner.start(wf, name, {"n": i}, extra_notify=extra)
        runs[rec["id"]] = {"n": i, "engine_id": rec["engine_execution_id"]}
        deadline = time.monotonic() + timeout
        while (
            rec["id"] not in bridge.watcher.seen
            and time.monotonic() < deadline
            and not STOP.is_set()
        ):
            time.sleep(0.01)

    t0, last = time.monotonic(), 0.0
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        while not all(f.done() for f in futures):
            time.sleep(0.2)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                print(
                    "  [%s %3.0fs] submitted %d/%d, finished %d, load %.2f"
                    % (
                        label,
                        last - t0,
                        len(runs),
                        n,
                        sum(r in bridge.watcher.seen for r in runs),
                        load(),
                    ),
                    flush=True,
                )
        for f in futures:
            f.result()
    return runs


def fetch_costs(engine, ids):
    """Wall ms of the finish fetch's two GETs (as the handler makes them) and of lighter variants."""
    light = ["id", "state", "state_info", "output", "updated_at"]
    calls = {
        "GET execution (full)": lambda i: engine.get_execution(i),
        "GET execution ?fields=state,state_info,output,updated_at": lambda i: engine.get_execution(
            i, fields=light
        ),
        "GET execution tasks (full)": lambda i: engine.list_tasks(i),
        "GET execution tasks ?fields=<task view>": lambda i: engine.list_tasks(
            i,
            fields=[
                "id",
                "name",
                "state",
                "state_info",
                "type",
                "created_at",
                "updated_at",
                "started_at",
                "finished_at",
            ],
        ),
    }
    out = {}
    for name, call in calls.items():
        times = []
        for i in ids:
            t0 = time.perf_counter()
            call(i)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = dist(times)
    print("  engine fetch cost (ms): %s" % {k: v["p50"] for k, v in out.items()}, flush=True)
    return out


# -- part 1: detection latency ------------------------------------------------------------------

# The tracker's own account of each finish by callback (st2bridge.callbacks.handler).
SPLIT_LINE = re.compile(
    r"\(finished by callback\) ([\d.]+) ms after its callback \(([\d.]+) ms waiting to start, "
    r"([\d.]+) ms reading the engine, ([\d.]+) ms writing\)"
)


def tracker_split(log_path):
    """p50/p99 of where the tracker's time went, from arrival to written record."""
    parts = {"in_tracker": [], "waiting": [], "engine_read": [], "store_write": []}
    for match in SPLIT_LINE.finditer(log_path.read_text()):
        for name, value in zip(parts, match.groups()):
            parts[name].append(float(value))
    return {name: dist(values) for name, values in parts.items()}


def latency_mode(a, tmp, api_url, mode, probe):
    tap = probe.url if mode == "hybrid" else None
    bridge = Bridge(tmp, "latency-" + mode, mode, api_url, a, callback_url=tap)
    name = "bench_cb_fast_%s_%s" % (mode, uuid.uuid4().hex[:6])
    try:
        probe.target = ("127.0.0.1", bridge.port)
        timeout = a.stale_after * 3 if mode == "hybrid" else a.query_interval * 6 + 30
        runs = run_executions(
            bridge,
            "std.noop",
            name,
            a.executions,
            a.concurrency,
            timeout,
            "latency " + mode,
            probe.url,
        )
        time.sleep(1.0)  # late duplicates, if any
        lat, lat_upd, probe_after_tap, by, lost, dup = [], [], [], collections.Counter(), 0, 0
        answered, unfinished = [], 0
        with probe.lock:
            logs = dict(probe.log)
        for rid, run in runs.items():
            rec, eid = bridge.store.get_execution(rid), run["engine_id"]
            by[rec["finished_by"]] += 1
            seen, probes, taps = (
                bridge.watcher.seen.get(rid),
                logs.get(("probe", eid), []),
                logs.get(("tap", eid), []),
            )
            ref = (taps or [None])[0] if mode == "hybrid" else (probes or [None])[0]
            if seen is None and not probes:
                unfinished += 1  # the engine never ended it (no terminal webhook): not the bridge's
            elif seen is None or rec["output"] != {"n": run["n"], "echoed": run["n"]}:
                lost += 1
            dup += max(0, len(probes) - 1) + max(0, sum('"finished"' in t[3] for t in taps) - 1)
            if seen is not None and ref:
                lat.append((seen - ref[0]) * 1000)
                lat_upd.append((rec["updated_at"] - ref[1]) * 1000)
                if mode == "hybrid":
                    answered.append((ref[4] - ref[0]) * 1000)
            if taps and probes:
                probe_after_tap.append((probes[0][0] - taps[0][0]) * 1000)
        dup += max(0, engine_count(api_url, name) - len(runs))
        out = {
            "latency_ms": dist(lat),
            "updated_at_minus_arrival_ms": dist(lat_upd),
            "finished_by": dict(by),
            "lost": lost,
            "duplicated": dup,
            "executions": len(runs),
            "engine_never_ended": unfinished,
            "tracker_answered_after_arrival_ms": dist(answered),
            "load": load(),
            "tap_answers": collections.Counter(
                "%d %s" % (t[2], json.loads(t[3]).get("result", t[3]))
                for k, v in logs.items()
                if k[0] == "tap" and k[1] in {r["engine_id"] for r in runs.values()}
                for t in v
            ),
        }
        if probe_after_tap:
            out["probe_arrival_after_tap_ms"] = dist(probe_after_tap)
        if mode == "hybrid":
            out["engine_fetch_ms"] = fetch_costs(
                bridge.engine, [r["engine_id"] for r in runs.values()]
            )
            out["tracker_split_ms"] = tracker_split(bridge.dir / "tracker.log")
        print(
            "  %s: latency %s; finished_by %s; lost %d, duplicated %d (load %.2f)"
            % (mode, out["latency_ms"], dict(by), lost, dup, load()),
            flush=True,
        )
        return out
    finally:
        out_code = bridge.close()
        print("  %s tracker stopped (exit %s)" % (mode, out_code))


# -- part 2: engine requests per execution -----------------------------------------------------


def requests_mode(a, tmp, api_url, mode):
    up = urlsplit(api_url)
    proxy = Server(Counting, upstream=(up.hostname, up.port or 80))
    bridge = Bridge(tmp, "requests-" + mode, mode, proxy.url + up.path, a)
    name = "bench_cb_sleep_%s_%s" % (mode, uuid.uuid4().hex[:6])
    try:
        proxy.counts.clear()
        n = a.req_executions
        runs = run_executions(
            bridge,
            "std.sleep seconds=%g" % a.sleep,
            name,
            n,
            n,
            a.sleep + a.stale_after * 3,
            "requests " + mode,
        )
        time.sleep(1.0)
        counts = dict(proxy.counts)
        submit = sum(
            v for k, v in counts.items() if "/workflows" in k or k == "POST /v2/executions"
        )
        other = sum(counts.values()) - submit
        by = collections.Counter(bridge.store.get_execution(r)["finished_by"] for r in runs)
        out = {
            "per_execution": round(other / max(1, len(runs)), 2),
            "executions": len(runs),
            "submit_requests": submit,
            "other_requests": other,
            "by_path": counts,
            "finished_by": dict(by),
            "load": load(),
        }
        print(
            "  %s: %.2f engine requests per execution besides the submit; %s; finished_by %s"
            % (mode, out["per_execution"], counts, dict(by)),
            flush=True,
        )
        return out
    finally:
        bridge.close()
        proxy.shutdown()


# -- part 3: callback ingest -----------------------------------------------------------------------


def loadgen(spec_path):
    """A load generator process (run by this script with --loadgen SPEC): prints JSON results."""
    spec = json.loads(Path(spec_path).read_text())
    host, port, start, results = "127.0.0.1", spec["port"], spec["start_at"], []

    def worker(tid, recs):
        conn, lat, counts, ok_total, seq = None, [], collections.Counter(), 0, 0
        measure_from, end = start + spec["warmup"], start + spec["warmup"] + spec["seconds"]
        base = time.time() - 86400
        while time.time() < end:
            rid, eid, secret = recs[seq % len(recs)]
            ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(base + seq))
            body = json.dumps(
                {
                    "event": "TASK_LAUNCHED",
                    "id": "task-%d-%d-%d" % (spec["proc"], tid, seq),
                    "name": "t%d" % seq,
                    "workflow_execution_id": eid,
                    "workflow_name": "bench.ingest",
                    "state": "RUNNING",
                    "state_info": None,
                    "type": "ACTION",
                    "created_at": ts,
                    "updated_at": ts,
                    "started_at": ts,
                    "finished_at": None,
                }
            ).encode()
            t0, measured = time.perf_counter(), time.time() >= measure_from
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                conn.request(
                    "POST",
                    "/v1/callbacks/mistral/" + rid,
                    body,
                    {"Content-Type": "application/json", webhook.SECRET_HEADER: secret},
                )
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conn.close() if conn else None
                conn = None
            ok_total += status == 200
            if measured:
                counts[str(status)] += 1
                lat.append(round((time.perf_counter() - t0) * 1000, 3))
            seq += 1
        results.append((counts, lat, ok_total))

    threads = [
        threading.Thread(target=worker, args=(t, recs)) for t, recs in enumerate(spec["records"])
    ]
    while time.time() < start:
        time.sleep(0.01)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = sum((r[0] for r in results), collections.Counter())
    print(
        json.dumps(
            {
                "counts": counts,
                "lat_ms": [x for r in results for x in r[1]],
                "ok_total": sum(r[2] for r in results),
                "cpu_s": time.process_time(),
            }
        )
    )
    return 0


def wait_for_quiet(limit, seconds):
    t0 = time.monotonic()
    while load() >= limit and time.monotonic() - t0 < seconds:
        print(
            "  waiting for load < %.1f (now %.2f, %.0f s left)"
            % (limit, load(), seconds - (time.monotonic() - t0)),
            flush=True,
        )
        time.sleep(10)
    return load()


def ingest(a, tmp):
    bridge = Bridge(tmp, "ingest", "callback", "http://127.0.0.1:9/v2", a)
    gens, spy = [], None
    try:
        now, recs = time.time(), []
        for _ in range(a.ingest_records):
            secret, rid, eid = secrets.new_secret(), str(uuid.uuid4()), str(uuid.uuid4())
            bridge.store.create_execution(
                new_execution_record(
                    id=rid,
                    workflow_name="bench.ingest",
                    engine_execution_id=eid,
                    status="running",
                    engine_state="RUNNING",
                    created_at=now,
                    updated_at=now,
                    callback_secret_hash=secrets.hash_secret(secret),
                    tasks=[
                        {
                            "id": "old-%s-%d" % (rid, i),
                            "name": "old%d" % i,
                            "state": "SUCCESS",
                            "status": "succeeded",
                            "type": "ACTION",
                            "workflow_execution_id": eid,
                            "created_at": "2026-01-01 00:00:00",
                            "updated_at": "2026-01-01 00:00:00",
                        }
                        for i in range(a.ingest_tasks)
                    ],
                )
            )
            recs.append((rid, eid, secret))
        slots = a.procs * a.threads
        load_at_start = wait_for_quiet(1.5, a.wait_load)
        start = time.time() + 1.0
        for p in range(a.procs):
            spec = tmp / ("loadgen-%d.json" % p)
            spec.write_text(
                json.dumps(
                    {
                        "port": bridge.port,
                        "start_at": start,
                        "warmup": a.warmup,
                        "seconds": a.ingest_seconds,
                        "proc": p,
                        "records": [recs[p * a.threads + t :: slots] for t in range(a.threads)],
                    }
                )
            )
            gens.append(
                Proc(
                    [sys.executable, __file__, "--loadgen", str(spec)],
                    tmp / ("loadgen-%d.log" % p),
                    pipe_stdout=True,
                )
            )
        print(
            "ingest: %d records, %d load generator processes x %d connections, %.0f s warm-up + "
            "%.0f s measured (load %.2f)"
            % (len(recs), a.procs, a.threads, a.warmup, a.ingest_seconds, load_at_start),
            flush=True,
        )
        time.sleep(max(0.0, start + a.warmup - time.time()))
        c0, t0, seen0, q0 = (
            bridge.tracker.cpu(),
            time.monotonic(),
            health(bridge),
            runq(bridge.tracker.pid),
        )
        if a.profile:
            spy = Proc(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(bridge.tracker.pid),
                    "--duration",
                    str(int(a.ingest_seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(tmp / "ingest.pyspy.txt"),
                ],
                tmp / "py-spy.log",
            )
        last = (t0, seen0)
        while time.monotonic() - t0 < a.ingest_seconds:
            time.sleep(min(5.0, a.ingest_seconds - (time.monotonic() - t0)))
            now, seen = time.monotonic(), health(bridge)
            print(
                "  [ingest %3.0fs] accepted %5.0f/s, tracker CPU %3.0f%% so far, load %.2f"
                % (
                    now - t0,
                    (seen - last[1]) / (now - last[0]),
                    (bridge.tracker.cpu() - c0) / (now - t0) * 100,
                    load(),
                ),
                flush=True,
            )
            last = (now, seen)
        cpu, wall, q1 = bridge.tracker.cpu() - c0, time.monotonic() - t0, runq(bridge.tracker.pid)
        outs = [json.loads(g.p.communicate(timeout=a.ingest_seconds + 60)[0]) for g in gens]
        counts = sum((collections.Counter(o["counts"]) for o in outs), collections.Counter())
        lat = [x for o in outs for x in o["lat_ms"]]
        written = sum(len(bridge.store.get_execution(r[0])["tasks"]) for r in recs)
        ok_total = sum(o["ok_total"] for o in outs)
        out = {
            "events_per_s": round(counts.get("200", 0) / a.ingest_seconds, 1),
            "handling_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat or [0])},
            "status_counts": dict(counts),
            "tracker_cpu_pct": round(cpu / wall * 100, 1),
            "accepted_total": ok_total,
            "tasks_written": written,
            "load_start": load_at_start,
            "load_end": load(),
            "connections": slots,
            "records": len(recs),
            "tracker_runqueue_wait_pct": round((q1 - q0) / wall * 100, 1),
            "loadgen_cpu_pct": round(
                sum(o["cpu_s"] for o in outs) / (a.warmup + a.ingest_seconds) * 100, 1
            ),
        }
        if spy:
            spy.p.wait(30)
            out["profile"] = profile_summary(tmp / "ingest.pyspy.txt")
        return out
    finally:
        for proc in gens + ([spy] if spy else []):
            if proc.p.poll() is None:
                proc.kill()
        bridge.close()


def runq(pid):
    """Seconds the process's threads have waited, runnable, for a CPU (/proc/PID/task/*/schedstat)."""
    return (
        sum(
            int(open("/proc/%d/task/%s/schedstat" % (pid, t)).read().split()[1])
            for t in os.listdir("/proc/%d/task" % pid)
        )
        / 1e9
    )


def health(bridge):
    resp = requests.get("http://127.0.0.1:%d/v1/health" % bridge.port, timeout=10).json()
    return resp["callbacks"]["accepted"]


def profile_summary(path, top=15):
    """Share of samples in which each function appears (inclusive) and is the leaf (self)."""
    incl, self_, total = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [
            re.sub(r" \(.*?/((?:site-packages|st2bridge|lib/python3[.\d]*)/.*)\)", r" (\1)", f)
            for f in stack.split(";")
            if f
        ]
        total += int(n)
        for f in set(frames):
            incl[f] += int(n)
        if frames:
            self_[frames[-1]] += int(n)
    share = lambda c: [("%.1f%%" % (100.0 * v / total), f) for f, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "inclusive": share(incl), "self": share(self_), "raw": str(path)}


# -- report ---------------------------------------------------------------------------------------


MIN_P99_SAMPLES = 100


def p99_or_max(lat):
    """The p99, or the max where fewer than MIN_P99_SAMPLES samples make a p99 meaningless."""
    return lat["p99"] if lat["n"] >= MIN_P99_SAMPLES else lat["max"]


def p99_text(lat):
    if not lat or not lat.get("n"):
        return None
    if lat["n"] >= MIN_P99_SAMPLES:
        return lat["p99"]
    return "max %s (%d samples)" % (lat["max"], lat["n"])


def report(res):
    lh, lp = res.get("latency", {}).get("hybrid", {}), res.get("latency", {}).get("poll", {})
    rh, rp, ing = (
        res.get("requests", {}).get("hybrid", {}),
        res.get("requests", {}).get("poll", {}),
        res.get("ingest", {}),
    )
    g = lambda d, *k: (d.get(k[0], {}) or {}).get(k[1]) if len(k) == 2 else d.get(k[0])  # noqa: E731
    rows = [
        ("latency hybrid p50 ms", g(lh, "latency_ms", "p50"), "<= 20", lambda v: v <= 20),
        (
            "latency hybrid p99 ms",
            p99_text(lh.get("latency_ms")),
            "<= 100 (the max under %d samples)" % MIN_P99_SAMPLES,
            lambda v: p99_or_max(lh["latency_ms"]) <= 100,
        ),
        ("latency hybrid max ms", g(lh, "latency_ms", "max"), "(info)", None),
        (
            "  in the tracker p50: total / waiting / engine read / store write ms",
            lh
            and lh.get("tracker_split_ms")
            and " / ".join(
                str(lh["tracker_split_ms"][k]["p50"])
                for k in ("in_tracker", "waiting", "engine_read", "store_write")
            ),
            "(info: the split)",
            None,
        ),
        (
            "latency poll p50 / p99 / max ms",
            lp
            and "%s / %s / %s"
            % (g(lp, "latency_ms", "p50"), p99_text(lp["latency_ms"]), g(lp, "latency_ms", "max")),
            "(info: side by side)",
            None,
        ),
        (
            "hybrid finished_by",
            g(lh, "finished_by"),
            "all 'callback'",
            lambda v: set(v) == {"callback"},
        ),
        (
            "engine never ended (hybrid/poll)",
            (lh or lp) and (lh.get("engine_never_ended"), lp.get("engine_never_ended")),
            "(info: Mistral's own failures)",
            None,
        ),
        (
            "lost / duplicated (hybrid)",
            lh and (lh["lost"], lh["duplicated"]),
            "0 / 0",
            lambda v: v == (0, 0),
        ),
        (
            "lost / duplicated (poll)",
            lp and (lp["lost"], lp["duplicated"]),
            "0 / 0",
            lambda v: v == (0, 0),
        ),
        (
            "engine req/execution hybrid",
            g(rh, "per_execution"),
            "<= 2 besides submit",
            lambda v: v <= 2,
        ),
        ("engine req/execution poll", g(rp, "per_execution"), "(info: grows with duration)", None),
        ("ingest events/s accepted", g(ing, "events_per_s"), ">= 2000", lambda v: v >= 2000),
        (
            "ingest p50 / p99 ms (client)",
            ing and "%s / %s" % (ing["handling_ms"]["p50"], ing["handling_ms"]["p99"]),
            "(info)",
            None,
        ),
        (
            "ingest non-200 answers",
            ing and sum(v for k, v in ing["status_counts"].items() if k != "200"),
            "0",
            lambda v: v == 0,
        ),
        ("ingest tracker CPU % of a core", g(ing, "tracker_cpu_pct"), "(info)", None),
        (
            "ingest tracker waiting for a CPU %",
            g(ing, "tracker_runqueue_wait_pct"),
            "(info: runnable, not running)",
            None,
        ),
        (
            "ingest load generators CPU %",
            g(ing, "loadgen_cpu_pct"),
            "(info: shares the 2 cores)",
            None,
        ),
    ]
    print(
        "\n== results (load avg now %.2f; at each part: %s) =="
        % (
            load(),
            json.dumps(
                {
                    k: v.get("load")
                    for k, v in [
                        ("latency-hybrid", lh),
                        ("latency-poll", lp),
                        ("requests-hybrid", rh),
                        ("requests-poll", rp),
                    ]
                    if v
                }
                | ({"ingest": [ing["load_start"], ing["load_end"]]} if ing else {})
            ),
        )
    )
    res["verdicts"] = {}
    for name, value, goal, ok in rows:
        if value in (None, {}, ()):
            continue
        verdict = "" if ok is None else "PASS" if ok(value) else "MISS"
        res["verdicts"][name] = verdict
        print("  %-32s %20s   goal %-30s %s" % (name, value, goal, verdict))
    for p in (ing.get("profile") or {}).get("inclusive", [])[:12]:
        print("  profile (inclusive) %6s  %s" % p)


def run_parts(a, parts, tmp, api_url, probe):
    """The chosen parts under one backend (a.backend); their results."""
    res = {}
    if "latency" in parts:
        res["latency"] = {}
        for mode in ("hybrid", "poll"):
            print(
                "latency, %s, %s mode: %d executions, %d at a time (load %.2f)"
                % (a.backend, mode, a.executions, a.concurrency, load()),
                flush=True,
            )
            res["latency"][mode] = latency_mode(a, tmp, api_url, mode, probe)
    if "requests" in parts:
        res["requests"] = {}
        for mode in ("hybrid", "poll"):
            print(
                "engine requests, %s, %s mode: %d executions of a %g s workflow at once"
                % (a.backend, mode, a.req_executions, a.sleep),
                flush=True,
            )
            res["requests"][mode] = requests_mode(a, tmp, api_url, mode)
    if "ingest" in parts:
        res["ingest"] = ingest(a, tmp)
    return res


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--loadgen":
        return loadgen(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["latency", "requests", "ingest", "all"], default="all")
    ap.add_argument("--api-url", help="an engine to use (default: start a private Mistral)")
    ap.add_argument(
        "--mistral-db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the private Mistral's database (SQLite locks under concurrent submits)",
    )
    ap.add_argument("--executions", type=int, default=30, help="latency: executions per mode")
    ap.add_argument("--concurrency", type=int, default=3, help="latency: executions at once")
    ap.add_argument("--query-interval", type=float, default=5.0)
    ap.add_argument("--pool", type=int, default=10, help="[resultstracker] thread_pool_size")
    ap.add_argument("--jitter", type=float, default=0.1)
    ap.add_argument("--stale-after", type=float, default=30.0)
    ap.add_argument("--req-executions", type=int, default=10, help="requests: executions per mode")
    ap.add_argument("--sleep", type=float, default=10.0, help="requests: std.sleep seconds")
    ap.add_argument("--ingest-records", type=int, default=1000)
    ap.add_argument(
        "--ingest-tasks",
        type=int,
        default=0,
        help="tasks each record holds before the load starts (large records)",
    )
    ap.add_argument("--ingest-seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0, help="ingest warm-up seconds")
    ap.add_argument("--procs", type=int, default=2, help="ingest load generator processes")
    ap.add_argument("--threads", type=int, default=8, help="connections per load generator")
    ap.add_argument("--wait-load", type=float, default=120.0, help="wait this long for load < 1.5")
    ap.add_argument("--profile", action="store_true", help="py-spy the tracker during ingest")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--json-out")
    add_backend_option(ap)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    parts = ["latency", "requests", "ingest"] if a.part == "all" else [a.part]
    tmp = Path(tempfile.mkdtemp(prefix="st2bridge-bench-cb-"))
    res = {
        "args": vars(a),
        "load_start": load(),
        "git": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    mistral, probe = None, None
    try:
        api_url = a.api_url
        if api_url is None and set(parts) & {"latency", "requests"}:
            mistral = start_mistral(a, tmp)
            api_url = mistral.api_url
        if "latency" in parts:
            probe = Server(Probe, target=None)
        backends = chosen_backends(a)
        for backend in backends:  # the parts that need the engine, under each backend
            a.backend = backend
            (tmp / backend).mkdir()
            res[backend] = run_parts(
                a, [p for p in parts if p != "ingest"], tmp / backend, api_url, probe
            )
        if "ingest" in parts:
            mistral = stop_mistral(mistral)  # its load would skew the figures
            for backend in backends:
                a.backend = backend
                res[backend].update(run_parts(a, ["ingest"], tmp / backend, api_url, probe))
        for backend in backends:
            print("\n#### %s" % backend, flush=True)
            report(res[backend])
        a.backend = "both" if len(backends) > 1 else backends[0]  # as asked, in the JSON's args
        table = side_by_side({b: res[b] for b in backends if b in res})
        if table:
            print("\n#### threading / eventlet\n" + table, flush=True)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", flush=True)
    finally:
        STOP.set()
        if probe:
            probe.shutdown()
        stop_mistral(mistral)
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(res, default=str) + "\n")
        print("JSON " + json.dumps(res, default=str))
        print("logs kept in %s" % tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
