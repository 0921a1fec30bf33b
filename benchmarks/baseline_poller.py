"""The prior art's way to track results, as a baseline: one GET per execution
per interval (StackStorm's results tracker asked the engine about every
running execution on its own), here with the cheapest GET Mistral offers
(`fields=state,state_info,updated_at`) and a pool of threads, each with its
own keep-alive connection. Run by benchmarks/tracker.py against the same
simulator and the same executions as the bridge, in the same run.

    python -m benchmarks.baseline_poller --api-url URL --ids-file F
        [--interval 5] [--pool 10] [--warmup 10] [--measure 60]

Prints one JSON line: checks/s, CPU % of a core, CPU ms per check, lateness
(how long after its due time each check was sent).
"""

import argparse
import heapq
import json
import random
import sys
import threading
import time

import requests

from benchmarks.common import pct


def run(api_url, ids, interval, pool, warmup, measure):
    now = time.monotonic()
    # Due times spread over one interval, as the bridge's records are.
    due = [(now + random.random() * interval, i) for i in ids]
    heapq.heapify(due)
    lock, stop = threading.Lock(), threading.Event()
    window = {"on": False, "checks": 0, "late": [], "errors": 0}

    def worker():
        session = requests.Session()
        while not stop.is_set():
            with lock:
                when, ex_id = due[0]
                wait = when - time.monotonic()
                if wait <= 0:
                    heapq.heappop(due)
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            sent = time.monotonic()
            try:
                r = session.get(
                    "%s/executions/%s" % (api_url, ex_id),
                    params={"fields": "state,state_info,updated_at"},
                    timeout=30,
                )
                ok = r.status_code == 200 and "state" in r.json()
            except requests.RequestException:
                ok = False
            with lock:
                if window["on"]:
                    window["checks"] += 1
                    window["late"].append((sent - when) * 1000)
                    window["errors"] += not ok
                heapq.heappush(due, (when + interval, ex_id))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(pool)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    with lock:
        window["on"] = True
    c0, t0 = time.process_time(), time.monotonic()
    time.sleep(measure)
    with lock:
        window["on"] = False
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(5)
    late, checks = window["late"], window["checks"]
    return {
        "executions": len(ids),
        "seconds": round(wall, 1),
        "checks": checks,
        "checks_per_s": round(checks / wall, 1),
        "needed_per_s": round(len(ids) / interval, 1),
        "cpu_pct": round(cpu / wall * 100, 1),
        "cpu_ms_per_check": round(cpu / checks * 1000, 4) if checks else None,
        "errors": window["errors"],
        "lateness_ms": {
            "count": len(late),
            "p50": pct(late, 50),
            "p99": pct(late, 99),
            "max": round(max(late), 1) if late else None,
        },
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api-url", required=True)
    ap.add_argument("--ids-file", required=True, help="engine execution ids, one per line")
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--pool", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--measure", type=float, default=60.0)
    a = ap.parse_args(argv)
    with open(a.ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    print(json.dumps(run(a.api_url, ids, a.interval, a.pool, a.warmup, a.measure)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
