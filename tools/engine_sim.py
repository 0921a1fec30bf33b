"""A fast simulator of the subset of Mistral's REST API v2 the bridge uses.

For benchmarks and fault tests at a scale the real engine cannot reach here;
it never replaces the real-Mistral tests. Stdlib only: one asyncio loop, an
HTTP/1.1 Protocol (keep-alive, pipelined requests answered in order, each
answer in one write so delayed ACKs never stall it).

Executions finish on their own, computed lazily on read: RUNNING until
`created + duration`, then SUCCESS or ERROR. No background loop; webhook
events use one timer per notifying execution. "Changed since T" listings use
two time-ordered indexes (state changes, finish times) so they cost what they
return, not the number of executions.

    python tools/engine_sim.py --port 8999 [--duration 30] [--error-ratio 0.1]
Admin API (JSON): POST /_sim/executions (bulk), GET /_sim/stats,
POST /_sim/stats/reset, GET|PUT /_sim/faults.
"""

import argparse
import asyncio
import bisect
import calendar
import json
import logging
import random
import signal
import threading
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

LOG = logging.getLogger("engine_sim")
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")
EVENTS = {"RUNNING": "WORKFLOW_RESUMED", "PAUSED": "WORKFLOW_PAUSED", "SUCCESS": "WORKFLOW_SUCCEEDED",
          "ERROR": "WORKFLOW_FAILED", "CANCELLED": "WORKFLOW_CANCELLED"}
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           409: "Conflict", 500: "Internal Server Error", 501: "Not Implemented"}
MAX_LIMIT = 1000
FILTERS = ("updated_at", "created_at", "workflow_name", "state", "nulls", "not_nulls")


class Fault(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


def _stamp(t, _cache={}):
    s = int(t)
    text = _cache.get(s)
    if text is None:
        if len(_cache) > 4096:
            _cache.clear()
        text = _cache[s] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s))
    return text


def _parse_time(text):
    try:
        return calendar.timegm(time.strptime(text.split(".")[0].replace("T", " "), "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        raise Fault(400, "Invalid datetime value: %r" % text) from None


def _jobj(value, what):
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Fault(400, "%s is not valid JSON" % what) from None
    if not isinstance(value, dict):
        raise Fault(400, "%s must be a JSON object" % what)
    return value


class Ex:
    __slots__ = ("id", "wf", "input", "params", "desc", "created", "duration", "finish", "final",
                 "manual", "changed", "remaining", "notify", "timer")


class Sim:
    """Engine state and request handlers (no I/O). Times are seconds since the
    epoch on the server's monotonic clock (one wall-clock reading at start)."""

    def __init__(self, duration=30.0, duration_jitter=0.0, error_ratio=0.0, tasks=3, seed=None):
        self.duration, self.jitter, self.error_ratio = duration, duration_jitter, error_ratio
        self.ntasks = max(1, tasks)
        self.rng = random.Random(seed)
        self._m0, self._w0 = time.monotonic(), time.time()
        self.started = self.now()
        self.workflows, self.execs, self.task_index = {}, {}, {}
        self.changes = []          # (time, id): creations and manual state changes, append-only
        self.finishes = []         # (finish time, id), sorted; stale entries are re-checked
        self.faults = {}
        self.notify_hook = None    # set by the server: fn(ex, event)
        self.reset_stats()

    def now(self):
        return self._w0 + (time.monotonic() - self._m0)

    def reset_stats(self):
        self.counts, self.lq, self.gaps = {}, {}, []
        self.injected = {"errors": 0, "not_found": 0}
        self.webhooks = {"sent": 0, "failed": 0}
        self.stats_since = self.now()

    # -- executions ------------------------------------------------------
    def state(self, e, now):
        if e.manual:
            return e.manual
        return e.final if now >= e.finish else "RUNNING"

    def updated(self, e, now):
        return e.finish if not e.manual and now >= e.finish else e.changed

    def create(self, wf, input_=None, params=None, ex_id=None, desc="", duration=None, now=None):
        now = self.now() if now is None else now
        e = Ex()
        e.id, e.wf, e.desc = ex_id or str(uuid.uuid4()), wf, desc or ""
        e.input, e.params = input_ or {}, params or {}
        if duration is None:
            duration = e.input.get("sim_duration", self.duration + self.rng.uniform(0, self.jitter))
        e.created = e.changed = now
        e.duration = max(0.0, float(duration))
        e.finish = now + e.duration
        fail = e.input.get("sim_fail") or self.rng.random() < self.error_ratio
        e.final, e.manual, e.remaining, e.timer = ("ERROR" if fail else "SUCCESS"), None, 0.0, None
        e.notify = [n for n in (e.params.get("notify") or []) if isinstance(n, dict) and n.get("url")]
        self.execs[e.id] = e
        self.changes.append((now, e.id))
        return e

    def bulk(self, body):
        ids = body.get("ids") or [str(uuid.uuid4()) for _ in range(int(body.get("count", 0)))]
        wf, dur = body.get("workflow_name", "sim.wf"), float(body.get("duration", self.duration))
        spread, now = float(body.get("spread", 0.0)), self.now()
        self.workflows.setdefault(wf, {"name": wf, "definition": "", "created_at": _stamp(now)})
        new = []
        for i in ids:
            if i not in self.execs:
                e = self.create(wf, ex_id=i, duration=dur + self.rng.uniform(0, spread), now=now)
                new.append((e.finish, e.id))
        self.finishes.extend(new)
        self.finishes.sort()     # one sort for the batch: bulk create stays O(n log n)
        return {"ids": ids, "created": len(new)}

    def lookup(self, ex_id):
        e = self.execs.get(ex_id)
        if e is None or ex_id in self.faults.get("not_found", ()):
            if e is not None:
                self.injected["not_found"] += 1
            raise Fault(404, "Object not found [id=%s]" % ex_id)
        return e

    def view(self, e, now, fields=None):
        st = self.state(e, now)
        info = None
        if st == "ERROR":
            info = "Failure caused by error in tasks: task%d" % self.ntasks
        elif st == "CANCELLED":
            info = e.params.get("_state_info")
        if fields is not None:     # light query: build only what was asked for
            out = {"id": e.id}
            for f in fields:
                out[f] = (st if f == "state" else info if f == "state_info"
                          else _stamp(self.updated(e, now)) if f == "updated_at"
                          else self._field(e, f, st, info, now))
            return out
        return {k: self._field(e, k, st, info, now) for k in (
            "id", "workflow_name", "workflow_id", "workflow_namespace", "description", "state",
            "state_info", "input", "output", "params", "created_at", "updated_at",
            "task_execution_id", "root_execution_id", "project_id", "tags")}

    def _field(self, e, f, st, info, now):
        if f == "output":
            out = {} if st not in TERMINAL else (
                {"result": "sim output of %s" % e.id} if st == "SUCCESS" else {"result": info})
            return json.dumps(out)
        simple = {"id": e.id, "workflow_name": e.wf, "workflow_id": "sim-" + e.wf, "state": st,
                  "workflow_namespace": "", "description": e.desc, "state_info": info,
                  "created_at": _stamp(e.created), "updated_at": _stamp(self.updated(e, now)),
                  "project_id": "<default-project>", "tags": None, "task_execution_id": None,
                  "root_execution_id": None}
        if f in simple:
            return simple[f]
        if f in ("input", "params"):
            return json.dumps({k: v for k, v in getattr(e, f).items() if not k.startswith("_")})
        raise Fault(400, "Unknown field: %s" % f)

    def set_state(self, e, state, info, now):
        st = self.state(e, now)
        if state not in EVENTS:
            raise Fault(400, "Invalid state: %s" % state)
        if st in TERMINAL or st == state:
            return None         # as Mistral: a no-op, the caller checks the state it gets back
        if state == "RUNNING":
            if st != "PAUSED":
                return None
            e.manual, e.finish = None, now + e.remaining
            bisect.insort(self.finishes, (e.finish, e.id))
        else:
            if state == "PAUSED":
                e.remaining = e.finish - now
            e.manual = state
            if info is not None:
                e.params["_state_info"] = info
        e.changed = now
        self.changes.append((now, e.id))
        return EVENTS[state]

    # -- tasks -----------------------------------------------------------
    def tasks(self, e, now):
        st = self.state(e, now)
        at = now if st == "RUNNING" else self.updated(e, now)
        base, step, out = e.finish - e.duration, e.duration / self.ntasks, []
        for i in range(self.ntasks):
            start, end = base + i * step, base + (i + 1) * step
            if start > at and st not in ("SUCCESS", "ERROR"):
                break
            tst = "SUCCESS" if end <= at else "RUNNING" if st == "RUNNING" else st
            if st in ("SUCCESS", "ERROR"):
                tst = "ERROR" if st == "ERROR" and i == self.ntasks - 1 else "SUCCESS"
            tid = str(uuid.uuid5(uuid.NAMESPACE_URL, "%s/%d" % (e.id, i)))
            self.task_index[tid] = (e.id, i)
            done = tst in TERMINAL
            out.append({"id": tid, "name": "task%d" % (i + 1), "workflow_execution_id": e.id,
                        "workflow_name": e.wf, "state": tst, "type": "ACTION",
                        "state_info": "task failed (simulated)" if tst == "ERROR" else None,
                        "created_at": _stamp(start), "started_at": _stamp(start),
                        "updated_at": _stamp(min(end, at) if done else start),
                        "finished_at": _stamp(min(end, at)) if done else None,
                        "result": json.dumps("task%d done" % (i + 1) if tst == "SUCCESS" else None),
                        "published": "{}", "runtime_context": "{}", "processed": done, "reset": False})
        return out

    def task(self, tid, now):
        if tid not in self.task_index:
            raise Fault(404, "Object not found [id=%s]" % tid)
        ex_id, i = self.task_index[tid]
        return self.lookup(ex_id), self.tasks(self.lookup(ex_id), now)[i]

    # -- listing ---------------------------------------------------------
    def listing(self, q, now, base_url):
        unknown = [k for k in q if k not in FILTERS + ("fields", "limit", "marker", "sort_keys",
                                                       "sort_dirs", "all_projects")]
        if unknown:
            raise Fault(400, "Unknown argument: %s" % ", ".join(unknown))
        fields = [f for f in q.get("fields", "").split(",") if f] or None
        limit = min(int(q.get("limit") or MAX_LIMIT), MAX_LIMIT)
        if "task_execution_id" in q.get("not_nulls", ""):
            rows = []      # the simulator has no sub-workflows
        else:
            rows = self._matching(q, now)
        keys = [k for k in q.get("sort_keys", "created_at").split(",") if k]
        dirs = [d for d in q.get("sort_dirs", "").split(",") if d]
        if "id" not in keys:
            keys.append("id")       # as Mistral: a stable order for marker paging
        dirs += [dirs[-1] if dirs else "asc"] * (len(keys) - len(dirs))
        keyfn = self._sort_key(keys, dirs, now)
        rows.sort(key=keyfn)
        if q.get("marker"):
            marker = self.execs.get(q["marker"])
            if marker is None:
                raise Fault(400, "Marker not found: %s" % q["marker"])
            rows = rows[bisect.bisect_right(rows, keyfn(marker), key=keyfn):]
        page = [self.view(e, now, fields) for e in rows[:limit]]
        body = {"executions": page}
        if page and len(page) == limit:
            nxt = dict(q, marker=page[-1]["id"], limit=str(limit))
            body["next"] = base_url + "/v2/executions?" + urlencode(nxt)
        return body

    def _matching(self, q, now):
        hidden = self.faults.get("not_found", ())
        lo, hi = float("-inf"), float("inf")       # updated_at range, in event time
        for term in q.get("updated_at", "").split(";") if q.get("updated_at") else ():
            op, _, val = term.partition(":") if term[:3] in ("gte", "gt:", "lte", "lt:", "eq:") \
                else ("eq", "", term)
            t = _parse_time(val)
            # Stamps are whole seconds: floor(x) >= t <=> x >= t, floor(x) > t <=> x >= t + 1.
            if op in ("gte", "eq"):
                lo = max(lo, t)
            if op == "gt":
                lo = max(lo, t + 1)
            if op in ("lte", "eq"):
                hi = min(hi, t + 1)
            if op == "lt":
                hi = min(hi, t)
        if lo > float("-inf"):
            ids = {i for _, i in self.changes[bisect.bisect_left(self.changes, (lo, "")):]}
            f = self.finishes
            ids.update(i for _, i in f[bisect.bisect_left(f, (lo, "")):bisect.bisect_right(f, (now, "~"))])
            cands = [self.execs[i] for i in ids if i in self.execs]
        else:
            cands = list(self.execs.values())
        rows = [e for e in cands if lo <= self.updated(e, now) < hi and e.id not in hidden]
        for name, attr in (("workflow_name", lambda e: e.wf), ("state", lambda e: self.state(e, now)),
                           ("created_at", lambda e: _stamp(e.created))):
            if q.get(name):
                op, _, val = q[name].partition(":") if ":" in q[name][:4] else ("eq", "", q[name])
                if name == "created_at":
                    val = _stamp(_parse_time(val))
                vals = val.split(",")
                test = {"eq": lambda v: v == val, "neq": lambda v: v != val, "in": lambda v: v in vals,
                        "nin": lambda v: v not in vals, "gte": lambda v: v >= val,
                        "gt": lambda v: v > val, "lte": lambda v: v <= val, "lt": lambda v: v < val}
                if op not in test:
                    raise Fault(400, "Invalid filter operator: %s" % op)
                rows = [e for e in rows if test[op](attr(e))]
        return rows

    def _sort_key(self, keys, dirs, now):
        getters = {"created_at": lambda e: int(e.created), "updated_at": lambda e: int(self.updated(e, now)),
                   "id": lambda e: e.id, "workflow_name": lambda e: e.wf, "state": lambda e: self.state(e, now)}
        parts = []
        for k, d in zip(keys, dirs):
            if k not in getters or d not in ("asc", "desc"):
                raise Fault(400, "Invalid sort key or direction: %s %s" % (k, d))
            g = getters[k]
            if d == "asc":
                parts.append(g)
            elif k in ("created_at", "updated_at"):
                parts.append(lambda e, g=g: -g(e))
            else:
                parts.append(lambda e, g=g: _Rev(g(e)))
        return lambda e: tuple(p(e) for p in parts)

    # -- stats -----------------------------------------------------------
    def count(self, key, light_id, now):
        self.counts[key] = self.counts.get(key, 0) + 1
        if light_id:
            rec = self.lq.get(light_id)
            if rec is None:
                self.lq[light_id] = [1, now, now]
            else:
                self.gaps.append(now - rec[2])
                rec[0] += 1
                rec[2] = now

    def stats(self, per_execution=False):
        now = self.now()
        per = sorted(r[0] for r in self.lq.values())
        gaps = sorted(self.gaps)
        states = {}
        for e in self.execs.values():
            s = self.state(e, now)
            states[s] = states.get(s, 0) + 1
        out = {"uptime_s": round(now - self.started, 3), "since_reset_s": round(now - self.stats_since, 3),
               "requests": dict(sorted(self.counts.items())),
               "requests_total": sum(v for k, v in self.counts.items() if " /v2" in k),
               "injected": dict(self.injected), "webhooks": dict(self.webhooks),
               "executions": {"total": len(self.execs), "by_state": states},
               "light_queries": {"total": sum(per), "executions": len(per),
                                 "per_execution": _summary(per), "gap_s": _summary(gaps),
                                 "first_at": min((r[1] for r in self.lq.values()), default=None),
                                 "last_at": max((r[2] for r in self.lq.values()), default=None)},
               "cpu_s": round(time.process_time(), 3), "faults": self.fault_view()}
        if per_execution:
            out["light_queries"]["by_execution"] = {k: {"count": r[0], "first_at": r[1], "last_at": r[2]}
                                                    for k, r in self.lq.items()}
        return out

    def fault_view(self):
        return {k: (sorted(v) if isinstance(v, set) else v) for k, v in self.faults.items()}


class _Rev:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return other.v < self.v

    def __eq__(self, other):
        return self.v == other.v


def _summary(sorted_values):
    if not sorted_values:
        return {"count": 0}
    n = len(sorted_values)
    return {"count": n, "min": sorted_values[0], "p50": sorted_values[n // 2],
            "p99": sorted_values[min(n - 1, int(n * 0.99))], "max": sorted_values[-1]}
