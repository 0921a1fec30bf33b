"""Reference-workflow benchmark (issue 7): the bridge on every reference topology, mode by mode,
against the engine alone. Prints each figure beside its goal with PASS/MISS; asserts nothing.

    .venv/bin/python -m benchmarks.reference [-n 3] [-x 2] [-m 3] [--concurrency 3]
        [--topologies sequence,parallel,...] [--modes engine,poll,callback,hybrid] [--api-url URL]
        [--with-scale [--scale-executions 2000]] [--json-out F] [--md-out F] [--charts DIR]

One engine (a private Mistral started with tools/mistral_local.py: own home, port and RabbitMQ
vhost; or --api-url). For each mode, each topology of tests/support/reference_workflows.py, M executions:
  engine    no bridge: POST /v2/workflows once, then POST /v2/executions with a probe webhook,
            and on its terminal event GET /v2/executions/{id}?fields=...output (the webhook has no
            output: a client needs this read to have the result, as the bridge does);
  poll      the bridge with the prior art's defaults (query_interval 5, pool 10, jitter 0.1);
  callback  the bridge, callbacks only;
  hybrid    the bridge, callbacks plus polling of silent executions.
Figures (ms from time.monotonic() of this process):
  execution time  the engine's WORKFLOW_LAUNCHED webhook arrival -> its terminal webhook arrival
                  (earliest of the probe and the tap in front of the tracker; Mistral's own
                  timestamps have 1 s resolution); per task = execution time / task_count;
  detection       terminal webhook arrival -> the bridge's terminal record (bench_callbacks' method:
                  the tap notes the arrival, the store is read every 2 ms);
  end-to-end      submit -> the result available to the caller: the bridge's terminal record, or
                  for `engine` the answer of the output read after the probe's terminal event
                  (the terminal event alone is kept as e2e_event_ms); overhead = bridge avg / engine avg;
  engine requests made by the bridge (runner and tracker) per execution, through a counting proxy;
  tracker CPU s   /proc utime+stime of the tracker process while the topology ran.
"""

import argparse
import collections
import json
import os
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

from benchmarks import common as bc
from st2bridge import workflow
from tests.support import reference_workflows as rw
from tests.support.procs import ROOT, load

MODES = ("engine", "poll", "callback", "hybrid", "callback-wf")
# callback-wf: callback mode with [callback] task_events = false (workflow events only).
BRIDGE_MODES = MODES[1:]
GOALS = {"detection_p50_ms": 20.0, "detection_p99_ms": 100.0, "callback_overhead_pct": 1.0}


# -- pure parts (unit-tested) ---------------------------------------------------------------------


def stats(values, digits=1):
    """min/avg/max/p50/p99 (nearest rank) of a list of numbers; n = 0 and Nones when empty."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0, "min": None, "avg": None, "max": None, "p50": None, "p99": None}
    rank = lambda p: values[min(len(values) - 1, int(len(values) * p / 100.0))]  # noqa: E731
    return {
        "n": len(values),
        "min": round(values[0], digits),
        "avg": round(sum(values) / len(values), digits),
        "max": round(values[-1], digits),
        "p50": round(rank(50), digits),
        "p99": round(rank(99), digits),
    }


def overhead(bridge_avg, engine_avg):
    """(ratio, percent) of a bridge mode's average end-to-end time to the no-bridge one's."""
    if not bridge_avg or not engine_avg:
        return None, None
    ratio = bridge_avg / engine_avg
    return round(ratio, 4), round((ratio - 1) * 100, 2)


def net_overhead_pct(bridge_outside_avg, engine_outside_avg, engine_e2e_avg):
    """The bridge's overhead with the engine's run-time variance taken out: the difference of the
    time spent outside the engine's execution (submit -> launched, terminal -> result), as a
    percentage of the no-bridge end-to-end time."""
    if None in (bridge_outside_avg, engine_outside_avg) or not engine_e2e_avg:
        return None
    return round((bridge_outside_avg - engine_outside_avg) / engine_e2e_avg * 100, 2)


def add_overheads(rows):
    """Set overhead_ratio/overhead_pct (ratio of end-to-end averages) and net_overhead_pct of each
    bridge row from the `engine` row of its topology."""
    base = {r["topology"]: r for r in rows if r["mode"] == "engine"}
    for r in rows:
        if r["mode"] != "engine":
            e = base.get(r["topology"], {})
            e2e = (e.get("e2e_ms") or {}).get("avg")
            r["overhead_ratio"], r["overhead_pct"] = overhead(
                (r.get("e2e_ms") or {}).get("avg"), e2e
            )
            r["net_overhead_pct"] = net_overhead_pct(
                (r.get("outside_ms") or {}).get("avg"), (e.get("outside_ms") or {}).get("avg"), e2e
            )
    return rows


def goals(rows):
    """The issue's goals against the rows: [(name, value, goal, verdict)] (verdict '' = info)."""
    cb = [r for r in rows if r["mode"] == "callback"]
    det = [v for r in cb for v in r.get("detection_samples_ms", [])]
    d = stats(det)
    out = [
        (
            "callback detection p50 ms (all topologies)",
            d["p50"],
            "<= 20",
            _verdict(d["p50"], lambda v: v <= GOALS["detection_p50_ms"]),
        ),
        (
            "callback detection p99 ms (all topologies)",
            d["p99"],
            "<= 100",
            _verdict(d["p99"], lambda v: v <= GOALS["detection_p99_ms"]),
        ),
    ]
    hy = stats(
        [v for r in rows if r["mode"] == "hybrid" for v in r.get("detection_samples_ms", [])]
    )
    if hy["n"]:
        out.append(
            ("hybrid detection p50 / p99 ms", "%s / %s" % (hy["p50"], hy["p99"]), "(info)", "")
        )
    po = stats([v for r in rows if r["mode"] == "poll" for v in r.get("detection_samples_ms", [])])
    if po["n"]:
        out.append(
            (
                "poll (interval 5) detection p50 / p99 ms",
                "%s / %s" % (po["p50"], po["p99"]),
                "(info: prior art)",
                "",
            )
        )
    out += overhead_goals(rows, "callback")
    if any(r["mode"] == "callback-wf" for r in rows):
        out += overhead_goals(rows, "callback-wf")
    for mode in MODES:
        mr = [r for r in rows if r["mode"] == mode]
        if mr:
            lost, dup = sum(r["lost"] for r in mr), sum(r["duplicated"] for r in mr)
            out.append(
                (
                    "%s: lost / duplicated completions" % mode,
                    "%d / %d" % (lost, dup),
                    "0 / 0",
                    "PASS" if lost == dup == 0 else "MISS",
                )
            )
    return out


def overhead_goals(rows, mode):
    """The overhead goal lines of one callback mode: plain and net (engine run time taken out),
    summed over topologies and for the worst one."""
    cb = [r for r in rows if r["mode"] == mode]
    eng = {r["topology"]: r for r in rows if r["mode"] == "engine"}
    avg = lambda r, key: (r.get(key) or {}).get("avg")  # noqa: E731
    plain = [
        (avg(r, "e2e_ms"), avg(eng[r["topology"]], "e2e_ms"))
        for r in cb
        if r.get("overhead_pct") is not None
    ]
    pooled = overhead(sum(b for b, _ in plain), sum(e for _, e in plain))[1] if plain else None
    worst = max((r["overhead_pct"] for r in cb if r.get("overhead_pct") is not None), default=None)
    pairs = [
        (
            avg(r, "outside_ms"),
            avg(eng[r["topology"]], "outside_ms"),
            avg(eng[r["topology"]], "e2e_ms"),
        )
        for r in cb
        if r["topology"] in eng
    ]
    pairs = [p for p in pairs if None not in p]
    net_sum = (
        round(sum(b - e for b, e, _ in pairs) / sum(t for _, _, t in pairs) * 100, 2)
        if pairs
        else None
    )
    net_worst = max(
        (r["net_overhead_pct"] for r in cb if r.get("net_overhead_pct") is not None), default=None
    )
    below = lambda v: v < GOALS["callback_overhead_pct"]  # noqa: E731
    return [
        (
            "%s overhead %% (sum of topology averages)" % mode,
            pooled,
            "< 1",
            _verdict(pooled, below),
        ),
        ("%s overhead %% (worst topology)" % mode, worst, "< 1", _verdict(worst, below)),
        (
            "%s net overhead %% (sum over topologies; engine run time taken out)" % mode,
            net_sum,
            "< 1",
            _verdict(net_sum, below),
        ),
        (
            "%s net overhead %% (worst topology; engine run time taken out)" % mode,
            net_worst,
            "< 1",
            _verdict(net_worst, below),
        ),
    ]


def _verdict(value, ok):
    return "n/a" if value is None else "PASS" if ok(value) else "MISS"


def _fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return "{:,.{}f}".format(v, digits)
    return "{:,}".format(v) if isinstance(v, int) else str(v)


def _outside(r):
    out, launch = (
        (r.get("outside_ms") or {}).get("avg"),
        (r.get("submit_to_launch_ms") or {}).get("avg"),
    )
    if out is None:
        return "–"
    if launch is None:
        return _fmt(out)
    return "%s (%s + %s)" % (_fmt(out), _fmt(launch), _fmt(out - launch))


def _auto(v):
    """A number with as many decimals as its size needs (0.116, 4.6, 395.0)."""
    if not isinstance(v, float):
        return _fmt(v)
    return _fmt(v, 1 if abs(v) >= 10 else 2 if abs(v) >= 1 else 3)


def _mma(s, digits=0):
    return (
        "%s / %s / %s"
        % (_fmt(s.get("min"), digits), _fmt(s.get("avg"), digits), _fmt(s.get("max"), digits))
        if s and s.get("n")
        else "–"
    )


def render_markdown(res):
    """The report as Markdown: the per-topology/mode table, the goals, and the scale figures."""
    rows = res.get("rows", [])
    out = [
        "| topology | tasks | mode | execution ms min / avg / max | per task ms (avg) "
        "| detection ms p50 / p99 / max | end-to-end ms (avg) "
        "| outside execution ms (avg): submit → launched, + detection "
        "| overhead vs engine: ratio (net) | engine req / execution (besides submit) "
        "| tracker CPU s | lost / dup |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        det = r.get("detection_ms") or {}
        ratio = r.get("overhead_ratio")
        net = r.get("net_overhead_pct")
        out.append(
            "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |"
            % (
                r["topology"],
                r["tasks"],
                r["mode"],
                _mma(r.get("exec_ms")),
                _fmt((r.get("per_task_ms") or {}).get("avg"), 1),
                "%s / %s / %s"
                % (_fmt(det.get("p50"), 1), _fmt(det.get("p99"), 1), _fmt(det.get("max"), 1))
                if det.get("n")
                else "–",
                _fmt((r.get("e2e_ms") or {}).get("avg")),
                _outside(r),
                "×%.3f (%s)" % (ratio, "%+.1f%%" % net if net is not None else "–")
                if ratio is not None
                else "–",
                "%s (%s)"
                % (
                    _fmt(r.get("engine_requests_per_execution"), 1),
                    _fmt(r.get("engine_requests_besides_submit"), 1),
                )
                if r["mode"] != "engine"
                else "–",
                _fmt(r.get("tracker_cpu_s"), 2) if r["mode"] != "engine" else "–",
                r["lost"],
                r["duplicated"],
            )
        )
    out += ["", "| goal | result | target | |", "|---|---:|---|---|"]
    for name, value, goal, verdict in res.get("goals") or goals(rows):
        out.append(
            "| %s | %s | %s | %s |"
            % (name, _fmt(value, 1) if isinstance(value, float) else _fmt(value), goal, verdict)
        )
    scale = res.get("scale")
    if scale:
        out += [
            "",
            "Simulator scale benchmark (`python -m benchmarks.tracker %s`; load average %s at its "
            "start, %s at its end):"
            % (
                " ".join(a for a in scale.get("argv", []) if "json" not in a and "/" not in a),
                scale.get("load_start", "?"),
                scale.get("load_end", "?"),
            ),
            "",
            "| figure | result | |",
            "|---|---:|---|",
        ]
        for name, (value, verdict) in scale.get("figures", {}).items():
            out.append("| %s | %s | %s |" % (name, _auto(value), verdict))
    return "\n".join(out) + "\n"


def scale_figures(sres):
    """The headline figures of a benchmarks.tracker JSON result (its first
    run), each with its verdict."""
    run = (sres.get("results") or [{}])[0]
    m, v = run.get("measure", {}), run.get("verdicts", {})
    late = m.get("lateness_ms", {})
    pick = [
        ("checks/s", m.get("checks_per_s")),
        ("tracker CPU ms per check", m.get("cpu_ms_per_check")),
        ("first round after the burst, s", run.get("first_round_s")),
        ("lateness p50 ms", late.get("p50")),
        ("lateness p99 ms", late.get("p99")),
        ("lateness max ms", late.get("max")),
        ("idle CPU % (N tracked, none due)", run.get("idle", {}).get("cpu_pct")),
        ("trackers CPU % of a core", m.get("trackers_cpu_pct")),
        ("engine requests/s", m.get("engine_requests_per_s")),
    ]
    return {name: (value, v.get(name, "")) for name, value in pick}


# -- the probe: also notes WORKFLOW_LAUNCHED ------------------------------------------------------


class RefProbe(bc.Probe):
    """bench_callbacks' probe and tap, which note root terminal events; this one also notes the
    arrival of each root WORKFLOW_LAUNCHED (kinds probe_launch / tap_launch)."""

    def body(self):
        raw = super().body()
        arrived = time.monotonic()
        try:
            ev = json.loads(raw)
        except ValueError:
            return raw
        if (
            isinstance(ev, dict)
            and ev.get("event") == "WORKFLOW_LAUNCHED"
            and not ev.get("task_execution_id")
        ):
            self.server.note(
                "probe_launch" if self.path.startswith("/probe") else "tap_launch",
                ev.get("id"),
                arrived,
            )
        return raw


def probe_entry(probe):
    return {
        "type": "webhook",
        "url": probe.url + "/probe",
        "event_types": ["WORKFLOW_LAUNCHED"] + list(bc.TERMINAL_EVENTS),
        "headers": {"Content-Type": "application/json"},
    }


def engine_times(logs, eid):
    """(launched, terminal) arrival (monotonic) of one engine execution: earliest of probe and tap."""
    launch = [t for k in ("probe_launch", "tap_launch") for t in logs.get((k, eid), [])]
    end = [t[0] for k in ("probe", "tap") for t in logs.get((k, eid), [])]
    return (min(launch) if launch else None), (min(end) if end else None)


# -- running --------------------------------------------------------------------------------------


def wait_all(futures, label, done, total, t0):
    last = time.monotonic()
    while not all(f.done() for f in futures):
        time.sleep(0.1)
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            print(
                "    [%s %3.0fs] finished %d/%d, load %.2f"
                % (label, last - t0, done(), total, load()),
                flush=True,
            )
    for f in futures:
        f.result()


def run_engine(a, api_url, topology, probe):
    """M executions straight on the engine; completion seen by the probe."""
    name = "ref_%s_engine_%s" % (topology, uuid.uuid4().hex[:6])
    text = rw.workflow(topology, a.n, a.x, name)
    resp = requests.post(
        api_url + "/workflows", data=text, headers={"Content-Type": "text/plain"}, timeout=60
    )
    resp.raise_for_status()
    runs, t0 = {}, time.monotonic()
    params = json.dumps({"notify": [probe_entry(probe)]})
    local = threading.local()

    def one(i):
        if not hasattr(local, "http"):
            local.http = requests.Session()  # keep-alive, as the bridge's client
        eid, sent = str(uuid.uuid4()), time.monotonic()
        runs[eid] = {"submit": sent}
        r = local.http.post(
            api_url + "/executions",
            json={"id": eid, "workflow_name": name, "input": "{}", "params": params},
            timeout=60,
        )
        if r.status_code >= 300:
            runs[eid]["error"] = "%d %s" % (r.status_code, r.text[:200])
            return
        deadline = time.monotonic() + a.timeout
        while (
            not probe.log.get(("probe", eid))
            and time.monotonic() < deadline
            and not bc.STOP.is_set()
        ):
            time.sleep(0.001)
        if probe.log.get(("probe", eid)):
            # The webhook carries no output: a client without the bridge reads it, as the bridge
            # does.
            r = local.http.get(
                api_url + "/executions/" + eid,
                timeout=60,
                params={"fields": "id,state,state_info,updated_at,output"},
            )
            if r.status_code == 200:
                runs[eid]["result"] = time.monotonic()

    with ThreadPoolExecutor(a.concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(a.m)]
        wait_all(
            futures,
            "%s engine" % topology,
            lambda: sum(bool(probe.log.get(("probe", e))) for e in list(runs)),
            a.m,
            t0,
        )
    time.sleep(a.settle)
    with probe.lock:
        logs = dict(probe.log)
    row = new_row(a, topology, "engine")
    execs, e2e, e2e_event, outside, launches = [], [], [], [], []
    for eid, run in runs.items():
        launched, ended = engine_times(logs, eid)
        probes = logs.get(("probe", eid), [])
        if "error" in run:
            row["submit_errors"] += 1
            row.setdefault("errors", []).append(run["error"])
            continue
        if not probes:
            row["engine_never_ended"] += 1
            continue
        row["duplicated"] += len(probes) - 1
        e2e_event.append((probes[0][0] - run["submit"]) * 1000)
        if "result" not in run:
            row["submit_errors"] += 1  # the output could not be read
            continue
        e2e.append((run["result"] - run["submit"]) * 1000)
        if launched and ended:
            execs.append((ended - launched) * 1000)
            outside.append(e2e[-1] - execs[-1])
            launches.append((launched - run["submit"]) * 1000)
    row["duplicated"] += max(0, bc.engine_count(api_url, name) - len(runs))
    row["e2e_event_ms"] = stats(e2e_event)
    return finish_row(row, execs, e2e, [], outside, launches)


def snapshot(*servers):
    """The merged logs of the probe and a tap (each Server keeps its own)."""
    logs = collections.defaultdict(list)
    for server in servers:
        if server is not None:
            with server.lock:
                for key, values in server.log.items():
                    logs[key].extend(values)
    return logs


def run_bridge(a, mode, bridge, proxy, tap, api_url, topology, probe):
    """M executions through the bridge; completion = the terminal record in its store."""
    name = "ref_%s_%s_%s" % (topology, mode.replace("-", "_"), uuid.uuid4().hex[:6])
    wf = workflow.parse(rw.workflow(topology, a.n, a.x, name), "%s.yaml" % name)
    bridge.runner.register(wf)  # once, before the clock and the counts start
    with proxy.lock:
        proxy.counts.clear()
    cpu0, runs, t0 = bridge.tracker.cpu(), {}, time.monotonic()
    timeout = a.timeout + (a.query_interval * 2 if bridge.mode == "poll" else 0)

    def one(i):
        sent = time.monotonic()
        rec = bridge.runner.start(wf, name, {}, extra_notify=[probe_entry(probe)])
        runs[rec["id"]] = {"submit": sent, "engine_id": rec["engine_execution_id"]}
        deadline = time.monotonic() + timeout
        while (
            rec["id"] not in bridge.watcher.seen
            and time.monotonic() < deadline
            and not bc.STOP.is_set()
        ):
            time.sleep(0.005)

    with ThreadPoolExecutor(a.concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(a.m)]
        wait_all(
            futures,
            "%s %s" % (topology, mode),
            lambda: sum(r in bridge.watcher.seen for r in list(runs)),
            a.m,
            t0,
        )
    time.sleep(a.settle)  # late duplicates, if any
    cpu = bridge.tracker.cpu() - cpu0
    with proxy.lock:
        counts = dict(proxy.counts)
    logs = snapshot(probe, tap)
    row = new_row(a, topology, mode)
    execs, e2e, det, outside, launches, by = [], [], [], [], [], collections.Counter()
    for rid, run in runs.items():
        rec, eid = bridge.store.get_execution(rid), run["engine_id"]
        launched, ended = engine_times(logs, eid)
        probes, taps = logs.get(("probe", eid), []), logs.get(("tap", eid), [])
        seen = bridge.watcher.seen.get(rid)
        by[rec.get("finished_by")] += 1
        row["duplicated"] += max(0, len(probes) - 1) + max(
            0, sum('"finished"' in t[3] for t in taps) - 1
        )
        if ended is None and seen is None:
            row["engine_never_ended"] += 1  # not the bridge's doing
            continue
        if seen is None:
            row["lost"] += 1
            row.setdefault("lost_ids", []).append(rid)
            continue
        if rec["status"] != "succeeded":  # every reference task is a no-op
            row["not_succeeded"][rec["status"]] = row["not_succeeded"].get(rec["status"], 0) + 1
        e2e.append((seen - run["submit"]) * 1000)
        if ended is not None:
            det.append((seen - ended) * 1000)
            if launched is not None:
                execs.append((ended - launched) * 1000)
                outside.append(e2e[-1] - execs[-1])
                launches.append((launched - run["submit"]) * 1000)
    row["duplicated"] += max(0, bc.engine_count(api_url, name) - len(runs))
    submit = sum(v for k, v in counts.items() if "/workflows" in k or k == "POST /v2/executions")
    row.update(
        {
            "engine_requests_per_execution": round(sum(counts.values()) / max(1, len(runs)), 2),
            "engine_requests_besides_submit": round(
                (sum(counts.values()) - submit) / max(1, len(runs)), 2
            ),
            "requests_by_path": counts,
            "tracker_cpu_s": round(cpu, 2),
            "finished_by": dict(by),
        }
    )
    return finish_row(row, execs, e2e, det, outside, launches)


def new_row(a, topology, mode):
    return {
        "topology": topology,
        "mode": mode,
        "tasks": rw.task_count(topology, a.n, a.x),
        "runs": a.m,
        "lost": 0,
        "duplicated": 0,
        "engine_never_ended": 0,
        "submit_errors": 0,
        "not_succeeded": {},
    }


def finish_row(row, execs, e2e, det, outside=(), launches=()):
    """`outside`: per run, end-to-end minus the engine's execution time (submit -> launched, plus
    terminal -> result available): the part the bridge can add to, free of the engine's variance.
    `launches`: submit -> the engine's WORKFLOW_LAUNCHED webhook (the submit path's share of it)."""
    row.update(
        {
            "outside_ms": stats(outside),
            "submit_to_launch_ms": stats(launches),
            "exec_ms": stats(execs),
            "per_task_ms": stats([e / row["tasks"] for e in execs], 2),
            "e2e_ms": stats(e2e),
            "detection_ms": stats(det) if row["mode"] != "engine" else None,
            "detection_samples_ms": [round(d, 2) for d in det],
            "load": load(),
        }
    )
    notes = (
        ["%d never ended in the engine" % row["engine_never_ended"]]
        if row["engine_never_ended"]
        else []
    )
    notes += ["%d submits refused" % row["submit_errors"]] if row["submit_errors"] else []
    notes += ["not succeeded: %s" % row["not_succeeded"]] if row["not_succeeded"] else []
    print(
        "    %-24s %-8s exec %s ms, e2e avg %s ms, detection %s ms, lost %d, dup %d%s (load %.2f)"
        % (
            row["topology"],
            row["mode"],
            _mma(row["exec_ms"]),
            _fmt(row["e2e_ms"]["avg"]),
            "–"
            if not det
            else "p50 %s / max %s" % (row["detection_ms"]["p50"], row["detection_ms"]["max"]),
            row["lost"],
            row["duplicated"],
            "".join("; " + n for n in notes),
            row["load"],
        ),
        flush=True,
    )
    return row


def run_scale(a, tmp):
    from benchmarks import tracker as bench_tracker

    out = tmp / "scale.json"
    argv = [
        "--executions",
        str(a.scale_executions),
        "--measure",
        str(a.scale_measure),
        "--idle",
        str(a.scale_idle),
        "--no-baseline",
        "--json-out",
        str(out),
    ]
    print(
        "simulator scale benchmark: python -m benchmarks.tracker %s (load %.2f)"
        % (" ".join(argv), load()),
        flush=True,
    )
    bench_tracker.main(argv)
    sres = json.loads(out.read_text())
    return {
        "executions": a.scale_executions,
        "argv": argv,
        "figures": scale_figures(sres),
        "load_start": sres.get("load_start"),
        "load_end": load(),
        "raw": sres,
    }


# -- output ---------------------------------------------------------------------------------------


def charts(res, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("charts skipped: matplotlib is not installed (pip install -e '.[bench]')", flush=True)
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = res["rows"]
    topologies = list(dict.fromkeys(r["topology"] for r in rows))
    written = []

    def bars(modes, value, title, ylabel, fname, log=True, goal=None):
        fig, ax = plt.subplots(figsize=(9, 3.8), dpi=80)
        width = 0.8 / max(1, len(modes))
        for j, mode in enumerate(modes):
            ys = []
            for t in topologies:
                r = next((r for r in rows if r["topology"] == t and r["mode"] == mode), None)
                ys.append(value(r) if r else None)
            xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(topologies))]
            ax.bar([x for x, y in zip(xs, ys) if y], [y for y in ys if y], width, label=mode)
        ax.set_xticks(range(len(topologies)))
        ax.set_xticklabels([t.replace("_", "\n") for t in topologies], fontsize=8)
        if log:
            ax.set_yscale("log")
        if goal:
            ax.axhline(goal, color="red", linestyle="--", linewidth=1)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path)
        plt.close(fig)
        written.append(str(path))

    modes_b = [m for m in BRIDGE_MODES if any(r["mode"] == m for r in rows)]
    bars(
        modes_b,
        lambda r: (r.get("detection_ms") or {}).get("p50"),
        "Detection latency p50 (terminal webhook -> terminal record), ms; goal p50 <= 20 ms",
        "ms (log)",
        "reference-detection.png",
        goal=GOALS["detection_p50_ms"],
    )
    modes_all = [m for m in MODES if any(r["mode"] == m for r in rows)]
    bars(
        modes_all,
        lambda r: (r.get("e2e_ms") or {}).get("avg"),
        "End-to-end time avg (submit -> result available), ms",
        "ms (log)",
        "reference-e2e.png",
    )
    print("charts: %s" % ", ".join(written), flush=True)
    return written


def print_report(res):
    print(
        "\n== results: N=%d X=%d M=%d concurrency %d; load avg start %.2f, now %.2f =="
        % (
            res["args"]["n"],
            res["args"]["x"],
            res["args"]["m"],
            res["args"]["concurrency"],
            res["load_start"],
            load(),
        )
    )
    print(render_markdown(res))
    for name, value, goal, verdict in res["goals"]:
        print(
            "  %-48s %16s   goal %-18s %s"
            % (name, _fmt(value, 1) if isinstance(value, float) else _fmt(value), goal, verdict)
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10, help="tasks per sequence, parallel tasks or items")
    ap.add_argument("-x", type=int, default=2, help="parallel sequences")
    ap.add_argument("-m", type=int, default=10, help="executions per topology and mode")
    ap.add_argument("--concurrency", type=int, default=3, help="executions at once")
    ap.add_argument("--topologies", default=",".join(rw.TOPOLOGIES), help="comma-separated")
    ap.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated, of " + ",".join(MODES)
    )
    ap.add_argument("--api-url", help="an engine to use (default: start a private Mistral)")
    ap.add_argument("--mistral-db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--query-interval", type=float, default=5.0, help="poll mode (prior art: 5)")
    ap.add_argument("--pool", type=int, default=10, help="[resultstracker] thread_pool_size")
    ap.add_argument("--jitter", type=float, default=0.1)
    ap.add_argument("--stale-after", type=float, default=30.0, help="hybrid")
    ap.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for one execution"
    )
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait for late duplicates")
    ap.add_argument("--with-scale", action="store_true", help="also run benchmarks/tracker.py")
    ap.add_argument(
        "--pin-engine",
        metavar="CPUS",
        help="emulate an engine host of its own: the private Mistral and RabbitMQ on these "
        "CPUs (taskset list, e.g. 0), this benchmark and the trackers on the others",
    )
    ap.add_argument("--scale-executions", type=int, default=2000)
    ap.add_argument("--scale-measure", type=float, default=30.0)
    ap.add_argument("--scale-idle", type=float, default=10.0)
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument("--json-out")
    ap.add_argument("--md-out")
    ap.add_argument("--charts", metavar="DIR")
    a = ap.parse_args(argv)
    topologies = [t for t in a.topologies.split(",") if t]
    modes = [m for m in a.modes.split(",") if m]
    for t in topologies:
        if t not in rw.TOPOLOGIES:
            ap.error("unknown topology %r (known: %s)" % (t, ", ".join(rw.TOPOLOGIES)))
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %r (known: %s)" % (m, ", ".join(MODES)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    tmp = Path(tempfile.mkdtemp(prefix="st2bridge-bench-ref-"))
    res = {
        "args": vars(a),
        "load_start": load(),
        "machine": machine(),
        "rows": [],
        "git": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    mistral, probe, bridges, servers = None, None, {}, []
    total, done, t_start = len(topologies) * len(modes), 0, time.monotonic()
    try:
        api_url = a.api_url
        if api_url is None:
            mistral = bc.start_mistral(a, tmp)
            if a.pin_engine:
                res["pinned"] = pin(a.pin_engine, mistral.home)
            api_url = mistral.api_url
        probe = bc.Server(RefProbe, target=None)
        for mode in modes:
            if mode != "engine":
                # One bridge per mode for the whole run, each with its own counting proxy and, in
                # callback modes, its own tap; idle trackers cost next to nothing.
                up = urlsplit(api_url)
                proxy = bc.Server(bc.Counting, upstream=(up.hostname, up.port or 80))
                tap = bc.Server(RefProbe, target=None) if mode != "poll" else None
                servers += [proxy] + ([tap] if tap else [])
                bridge = bc.Bridge(
                    tmp,
                    "bridge-" + mode,
                    mode.split("-")[0],
                    proxy.url + up.path,
                    a,
                    callback_url=tap.url if tap else None,
                    task_events=mode != "callback-wf",
                )
                bridges[mode] = (bridge, proxy, tap)
                if tap:
                    tap.target = ("127.0.0.1", bridge.port)
        for i, topology in enumerate(topologies):
            # Modes interleaved topology by topology, and rotated, so that the engine's drift over
            # the run (its database grows, the load of the machine changes) is shared by all modes.
            for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
                done += 1
                print(
                    "[%d/%d %3.0fs] %s, %s: %d executions (N=%d, X=%d, %d tasks), %d at a time, "
                    "load %.2f"
                    % (
                        done,
                        total,
                        time.monotonic() - t_start,
                        topology,
                        mode,
                        a.m,
                        a.n,
                        a.x,
                        rw.task_count(topology, a.n, a.x),
                        a.concurrency,
                        load(),
                    ),
                    flush=True,
                )
                res["rows"].append(
                    run_engine(a, api_url, topology, probe)
                    if mode == "engine"
                    else run_bridge(a, mode, *bridges[mode], api_url, topology, probe)
                )
        for mode, (bridge, _, _) in list(bridges.items()):
            print("  %s tracker stopped (exit %s)" % (mode, bridge.close()), flush=True)
            del bridges[mode]
        order = {m: i for i, m in enumerate(MODES)}
        res["rows"].sort(key=lambda r: (rw.TOPOLOGIES.index(r["topology"]), order[r["mode"]]))
        add_overheads(res["rows"])
        if a.with_scale:
            mistral = bc.stop_mistral(mistral)  # its load would skew the figures
            res["scale"] = run_scale(a, tmp)
        res["goals"] = goals(res["rows"])
        res["load_end"] = load()
        print_report(res)
        if a.md_out:
            Path(a.md_out).write_text(render_markdown(res))
        if a.charts:
            res["charts"] = charts(res, a.charts)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", flush=True)
    finally:
        bc.STOP.set()
        for bridge, _, _ in bridges.values():
            bridge.close()
        for server in servers + ([probe] if probe else []):
            server.shutdown()
        bc.stop_mistral(mistral)
        if a.pin_engine:
            unpin_broker()
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(res, default=str) + "\n")
        print("logs kept in %s" % tmp)
    return 0


def _pids(*pgrep_args):
    return subprocess.run(
        ["pgrep"] + list(pgrep_args), capture_output=True, text=True
    ).stdout.split()


def _taskset(cpus, pid):
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, check=True)


def pin(engine_cpus, mistral_home):
    """Mistral (every process of this private instance) and RabbitMQ on `engine_cpus`; this process
    (all its threads, and the trackers it starts later) on the other CPUs."""
    everything = set(range(os.cpu_count()))
    engine = {
        c
        for part in engine_cpus.split(",")
        for c in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))
    }
    rest = sorted(everything - engine)
    if not engine <= everything or not rest:
        raise SystemExit(
            "--pin-engine %s: leaves no CPU for the bridge (CPUs 0-%d)"
            % (engine_cpus, len(everything) - 1)
        )
    engine_pids, todo = [], _pids("-f", str(mistral_home))
    while todo:  # the master and every worker it forked (workers rename themselves)
        pid = todo.pop()
        engine_pids.append(pid)
        todo += _pids("-P", pid)
    engine_pids += _pids("-x", "beam.smp")
    for pid in engine_pids:
        _taskset(engine_cpus, pid)
    _taskset(",".join(map(str, rest)), os.getpid())
    print(
        "pinned: Mistral + RabbitMQ (%d processes) on CPU %s; benchmark and trackers on CPU %s"
        % (len(engine_pids), engine_cpus, ",".join(map(str, rest))),
        flush=True,
    )
    return {"engine_cpus": engine_cpus, "bridge_cpus": rest, "engine_processes": len(engine_pids)}


def unpin_broker():
    """RabbitMQ serves the whole machine: give it every CPU back."""
    for pid in _pids("-x", "beam.smp"):
        _taskset("0-%d" % (os.cpu_count() - 1), pid)


def machine():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        "?",
    )
    mem = next(
        (int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0
    )
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": round(mem / 1048576, 1),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    sys.exit(main())
