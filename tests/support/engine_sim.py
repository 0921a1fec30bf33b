"""A fast simulator of the subset of Mistral's REST API v2 the bridge uses.

For benchmarks and fault tests at a scale the real engine cannot reach here;
it never replaces the real-Mistral tests. One asyncio loop and an HTTP/1.1
Protocol (keep-alive; pipelined requests answered in order; each answer in one
write, so delayed ACKs never stall it). It passes the engine contract suite
(tests/unit/test_engine_contract.py) through MistralClient: definitions by
namespace, workbooks and environments (engine_sim_defs.py: kept as the engine
stub keeps them, with its reading of the DSL and input checks), Mistral's
state-change and re-run rules, a Date header. It has no sub-workflows and no
action executions.

Executions finish on their own, computed lazily on read: RUNNING until
`created + duration`, then SUCCESS or ERROR. There is no background loop
(webhooks use one timer per notifying execution). "Changed since T" listings
read two time-ordered indexes (state changes, finish times), so they cost what
they return, not the number of executions.

    python -m tests.support.engine_sim --port 8999 [--duration 30] [--error-ratio 0.1]
Admin API (JSON): POST /_sim/executions {"count"|"ids", "duration", "spread"}
(bulk create), POST /_sim/reschedule {"duration", "spread"} (running executions
finish that long from now), GET /_sim/stats[?per_execution=1], POST /_sim/stats/reset,
GET|PUT /_sim/faults {"error_rate", "latency_ms", "latency_jitter_ms",
"not_found": [ids], "delete": [ids], "down": seconds, "clear": true,
"malformed": true (every GET of executions or tasks answers `200 {}`)}.
"""

import argparse
import asyncio
import bisect
import calendar
import email.utils
import json
import logging
import random
import re
import signal
import threading
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

from st2bridge.engine.stub_rules import Refused
from tests.support.engine_sim_defs import SimDefinitions

LOG = logging.getLogger("engine_sim")
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")
EVENTS = {
    "RUNNING": "WORKFLOW_RESUMED",
    "PAUSED": "WORKFLOW_PAUSED",
    "SUCCESS": "WORKFLOW_SUCCEEDED",
    "ERROR": "WORKFLOW_FAILED",
    "CANCELLED": "WORKFLOW_CANCELLED",
}
REASONS = {
    200: b"OK",
    201: b"Created",
    400: b"Bad Request",
    404: b"Not Found",
    409: b"Conflict",
    500: b"Internal Server Error",
}
MAX_LIMIT = 1000  # Mistral 23's cap on a page
LIST_ARGS = (
    "updated_at",
    "created_at",
    "workflow_name",
    "state",
    "nulls",
    "not_nulls",
    "fields",
    "limit",
    "marker",
    "sort_keys",
    "sort_dirs",
    "all_projects",
    "root_execution_id",
    "task_execution_id",
    "workflow_namespace",
)
FULL = (
    "id",
    "workflow_name",
    "workflow_id",
    "workflow_namespace",
    "description",
    "state",
    "state_info",
    "input",
    "output",
    "params",
    "created_at",
    "updated_at",
    "task_execution_id",
    "root_execution_id",
    "project_id",
    "tags",
)


class Fault(Refused):
    """An error answer: Fault(status, text)."""


def _stamp(t, _cache={}):  # noqa: B006 -- a deliberate memo
    s = int(t)
    if s not in _cache:
        if len(_cache) > 4096:
            _cache.clear()
        _cache[s] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s))
    return _cache[s]


def _http_date(_cache={}):  # noqa: B006 -- a deliberate memo, one entry a second
    # The Date header: MistralClient.clock_offset reads the engine's clock from it.
    s = int(time.time())
    if s not in _cache:
        _cache.clear()
        _cache[s] = email.utils.formatdate(s, usegmt=True).encode()
    return _cache[s]


def _parse_time(text):
    try:
        return calendar.timegm(
            time.strptime(text.split(".")[0].replace("T", " "), "%Y-%m-%d %H:%M:%S")
        )
    except ValueError:
        raise Fault(400, "Invalid datetime value: %r" % text) from None


def _obj(value, what):
    """A JSON object given as an object or a JSON string (as clients send them)."""
    try:
        value = json.loads(value) if isinstance(value, (str, bytes)) and value else value or {}
    except ValueError:
        raise Fault(400, "%s is not valid JSON" % what) from None
    if not isinstance(value, dict):
        raise Fault(400, "%s must be a JSON object" % what)
    return value


class Ex:
    __slots__ = (
        "id",
        "wf",
        "ns",
        "input",
        "params",
        "desc",
        "created",
        "duration",
        "finish",
        "final",
        "manual",
        "changed",
        "remaining",
        "info",
        "notify",
        "timer",
    )


class Sim:
    """Engine state and request logic (no I/O). Times are seconds since the
    epoch on the monotonic clock (one wall-clock reading at start)."""

    def __init__(self, duration=30.0, duration_jitter=0.0, error_ratio=0.0, tasks=3, seed=None):
        self.duration, self.jitter, self.error_ratio = duration, duration_jitter, error_ratio
        self.ntasks, self.rng = max(1, tasks), random.Random(seed)
        self._m0, self._w0 = time.monotonic(), time.time()
        self.started = self.now()
        self.defs, self.execs, self.task_index, self.faults = SimDefinitions(), {}, {}, {}
        self.changes = []  # (time, id) of creations and manual changes: append-only, so sorted
        self.finishes = []  # (finish time, id), sorted; stale entries are re-checked on read
        self.reset_stats()

    def now(self):
        return self._w0 + (time.monotonic() - self._m0)

    def reset_stats(self):
        self.counts, self.lq, self.gaps = {}, {}, []
        self.injected, self.webhooks = {"errors": 0, "not_found": 0}, {"sent": 0, "failed": 0}
        self.stats_since = self.now()

    # -- executions ------------------------------------------------------
    def state(self, e, now):
        return e.manual or (e.final if now >= e.finish else "RUNNING")

    def updated(self, e, now):
        return e.finish if not e.manual and now >= e.finish else e.changed

    def create(
        self, wf, input_=None, params=None, ex_id=None, desc="", duration=None, now=None, ns=""
    ):
        e, now = Ex(), self.now() if now is None else now
        e.ns = ns
        e.id, e.wf, e.desc, e.input, e.params = (
            ex_id or str(uuid.uuid4()),
            wf,
            desc or "",
            input_ or {},
            params or {},
        )
        if duration is None:
            duration = e.input.get("sim_duration", self.duration + self.rng.uniform(0, self.jitter))
        e.created = e.changed = now
        e.duration = max(0.0, float(duration))
        e.finish = now + e.duration
        fail = e.input.get("sim_fail") or self.rng.random() < self.error_ratio
        e.final, e.manual, e.remaining, e.info, e.timer = (
            "ERROR" if fail else "SUCCESS",
            None,
            0.0,
            None,
            None,
        )
        e.notify = [
            n for n in (e.params.get("notify") or []) if isinstance(n, dict) and n.get("url")
        ]
        self.execs[e.id] = e
        self.changes.append((now, e.id))
        return e

    def bulk(self, body):
        """Create many executions at once ("spread": finishes spread over that many more seconds)."""
        ids = body.get("ids") or [str(uuid.uuid4()) for _ in range(int(body.get("count", 0)))]
        wf, dur = body.get("workflow_name", "sim.wf"), float(body.get("duration", self.duration))
        spread, now, new = float(body.get("spread", 0.0)), self.now(), []
        self.defs.ensure(wf, _stamp(now))
        for i in ids:
            if i not in self.execs:
                new.append(
                    (
                        self.create(
                            wf, ex_id=i, duration=dur + self.rng.uniform(0, spread), now=now
                        ).finish,
                        i,
                    )
                )
        self.finishes.extend(new)
        self.finishes.sort()  # one sort per batch, not one insort per execution
        # updated_at: what each new execution's light query answers until it changes.
        return {"ids": ids, "created": len(new), "updated_at": _stamp(now)}

    def reschedule(self, body):
        """Every running execution (not paused or cancelled) now finishes
        `duration` + U(0, `spread`) seconds from now: benchmarks set the pace of
        finishes when their measurement starts, not when they set up."""
        now, count = self.now(), 0
        dur, spread = float(body.get("duration", self.duration)), float(body.get("spread", 0.0))
        for e in self.execs.values():
            if not e.manual and now < e.finish:
                e.finish = now + dur + self.rng.uniform(0, spread)
                e.duration = e.finish - e.created
                count += 1
        self.finishes = sorted((e.finish, e.id) for e in self.execs.values())
        return {"rescheduled": count}

    def lookup(self, ex_id):
        e = self.execs.get(ex_id)
        if e is not None and ex_id in self.faults.get("not_found", ()):
            self.injected["not_found"] += 1
            e = None
        if e is None:
            raise Fault(404, "Object not found [id=%s]" % ex_id)
        return e

    def view(self, e, now, fields=FULL):
        st = self.state(e, now)
        info = (
            e.info
            if e.manual and st in TERMINAL
            else "Failure caused by error in tasks: task%d" % self.ntasks
            if st == "ERROR"
            else None
        )
        out = {"id": e.id}
        for f in fields:  # only what was asked for: the light query stays cheap
            if f == "state":
                out[f] = st
            elif f == "state_info":
                out[f] = info
            elif f in ("updated_at", "created_at"):
                out[f] = _stamp(self.updated(e, now) if f == "updated_at" else e.created)
            elif f in ("input", "params"):
                out[f] = json.dumps(getattr(e, f))
            elif f == "output":
                out[f] = json.dumps(
                    {}
                    if st not in TERMINAL
                    else {"result": "sim output of %s" % e.id}
                    if st == "SUCCESS"
                    else {"result": info}
                )
            elif f in FULL:
                out[f] = {
                    "workflow_name": e.wf,
                    "workflow_id": "sim-" + e.wf,
                    "description": e.desc,
                    "project_id": "<default-project>",
                    "workflow_namespace": e.ns,
                }.get(f)
            else:
                raise Fault(400, "Unknown field: %s" % f)
        return out

    def set_state(self, e, state, info, now):
        """Mistral's PUT semantics; returns the webhook event, or None for a no-op."""
        st = self.state(e, now)
        if state not in EVENTS:
            raise Fault(400, "Invalid state: %s" % state)
        if (state == "PAUSED" and st in TERMINAL) or (
            state == "SUCCESS" and st not in (state, "RUNNING")
        ):
            raise Fault(
                400,
                "Can't change workflow execution state from %s to %s. "
                "[workflow=%s, execution_id=%s]" % (st, state, e.wf, e.id),
            )
        if (
            st in TERMINAL
            or st == state
            or (state == "RUNNING" and st != "PAUSED")
            or (state == "ERROR" and st == "PAUSED")
        ):
            return None  # as Mistral: unchanged; the caller checks the state it gets back
        if state == "RUNNING":
            e.manual, e.finish = None, now + e.remaining
            bisect.insort(self.finishes, (e.finish, e.id))
        else:
            e.remaining, e.manual, e.info = e.finish - now, state, info
        e.changed = now
        self.changes.append((now, e.id))
        return EVENTS[state]

    def rerun(self, e, now):
        # The rerun succeeds: the tasks before the failed one stay done, the
        # failed (last) one runs again for its share of the duration.
        e.manual, e.final, e.changed = None, "SUCCESS", now
        e.finish = now + e.duration / self.ntasks
        self.changes.append((now, e.id))
        bisect.insort(self.finishes, (e.finish, e.id))

    # -- tasks: `ntasks` in sequence over the execution's duration -----------
    def tasks(self, e, now):
        st = self.state(e, now)
        at = now if st == "RUNNING" else self.updated(e, now)
        base, step, out = e.finish - e.duration, e.duration / self.ntasks, []
        for i in range(self.ntasks):
            start, end = base + i * step, base + (i + 1) * step
            if st in ("SUCCESS", "ERROR"):
                tst = "ERROR" if st == "ERROR" and i == self.ntasks - 1 else "SUCCESS"
            elif start > at:
                break  # not started yet: Mistral has no task record for it
            else:
                tst = "SUCCESS" if end <= at else st
            tid = str(uuid.uuid5(uuid.NAMESPACE_URL, "%s/%d" % (e.id, i)))
            self.task_index[tid] = (e.id, i)
            done = tst in TERMINAL
            out.append(
                {
                    "id": tid,
                    "name": "task%d" % (i + 1),
                    "workflow_execution_id": e.id,
                    "workflow_name": e.wf,
                    "state": tst,
                    "type": "ACTION",
                    "state_info": "task failed (simulated)" if tst == "ERROR" else None,
                    "created_at": _stamp(start),
                    "started_at": _stamp(start),
                    "updated_at": _stamp(min(end, at) if done else start),
                    "finished_at": _stamp(min(end, at)) if done else None,
                    "result": json.dumps("task%d done" % (i + 1) if tst == "SUCCESS" else None),
                    "published": "{}",
                    "runtime_context": "{}",
                    "processed": done,
                    "reset": False,
                }
            )
        return out

    def task(self, tid, now):
        if tid not in self.task_index:
            raise Fault(404, "Object not found [id=%s]" % tid)
        ex_id, i = self.task_index[tid]
        e = self.lookup(ex_id)
        tasks = self.tasks(e, now)
        if i >= len(tasks):
            raise Fault(404, "Object not found [id=%s]" % tid)
        return e, tasks[i]

    # -- listing -----------------------------------------------------------
    def listing(self, q, now, base_url):
        unknown = sorted(set(q) - set(LIST_ARGS))
        if unknown:
            raise Fault(400, "Unknown argument: %s" % ", ".join(unknown))
        fields = [f for f in q.get("fields", "").split(",") if f and f != "id"] or FULL[1:]
        limit = min(int(q.get("limit") or MAX_LIMIT), MAX_LIMIT)
        # The simulator has no sub-workflows: task_execution_id is always null.
        subs = q.get("root_execution_id") or q.get("task_execution_id")
        if subs or "task_execution_id" in q.get("not_nulls", ""):
            rows = []
        else:
            rows = self._matching(q, now)
        keys = [k for k in q.get("sort_keys", "created_at").split(",") if k]
        dirs = [d for d in q.get("sort_dirs", "").split(",") if d]
        if "id" not in keys:
            keys.append("id")  # as Mistral: a total order, so marker paging is stable
        dirs += [dirs[-1] if dirs else "asc"] * (len(keys) - len(dirs))
        keyfn = self._sort_key(keys, dirs, now)
        rows.sort(key=keyfn)
        if q.get("marker"):
            if q["marker"] not in self.execs:
                raise Fault(400, "Marker not found: %s" % q["marker"])
            rows = rows[bisect.bisect_right(rows, keyfn(self.execs[q["marker"]]), key=keyfn) :]
        page = [self.view(e, now, fields) for e in rows[:limit]]
        body = {"executions": page}
        if len(page) == limit:  # Mistral links the next page only after a full one
            body["next"] = (
                base_url
                + "/v2/executions?"
                + urlencode(dict(q, marker=page[-1]["id"], limit=limit))
            )
        return body

    def _matching(self, q, now):
        if q.get("root_execution_id"):
            return []  # the simulator runs no sub-workflows
        lo, hi = float("-inf"), float("inf")  # the updated_at range, in event time
        for term in filter(None, q.get("updated_at", "").split(";")):
            op, val = (
                term.split(":", 1)
                if term[:4] in ("gte:", "lte:") or term[:3] in ("gt:", "lt:", "eq:")
                else ("eq", term)
            )
            t = _parse_time(val)
            # Stamps are whole seconds: floor(x) >= t <=> x >= t; floor(x) > t <=> x >= t + 1.
            lo = max(lo, {"gte": t, "eq": t, "gt": t + 1}.get(op, lo))
            hi = min(hi, {"lte": t + 1, "eq": t + 1, "lt": t}.get(op, hi))
        if lo > float("-inf"):  # the indexes: only what changed since lo
            ids = {i for _, i in self.changes[bisect.bisect_left(self.changes, (lo, "")) :]}
            f = self.finishes
            ids.update(
                i
                for _, i in f[bisect.bisect_left(f, (lo, "")) : bisect.bisect_right(f, (now, "~"))]
            )
            cands = [self.execs[i] for i in ids if i in self.execs]
        else:
            cands = list(self.execs.values())
        hidden = self.faults.get("not_found", ())
        rows = [e for e in cands if lo <= self.updated(e, now) < hi and e.id not in hidden]
        for name, attr in (
            ("workflow_name", lambda e: e.wf),
            ("workflow_namespace", lambda e: e.ns),
            ("state", lambda e: self.state(e, now)),
            ("created_at", lambda e: _stamp(e.created)),
        ):
            if q.get(name):
                op, val = (
                    q[name].split(":", 1) if re.match(r"^[a-z]+:", q[name]) else ("eq", q[name])
                )
                val = _stamp(_parse_time(val)) if name == "created_at" else val
                test = {
                    "eq": val.__eq__,
                    "neq": val.__ne__,
                    "in": val.split(",").__contains__,
                    "gte": val.__le__,
                    "gt": val.__lt__,
                    "lte": val.__ge__,
                    "lt": val.__gt__,
                }.get(op)
                if test is None:
                    raise Fault(400, "Invalid filter operator: %s" % op)
                rows = [e for e in rows if test(attr(e))]
        return rows

    def _sort_key(self, keys, dirs, now):
        getters = {
            "created_at": lambda e: int(e.created),
            "updated_at": lambda e: int(self.updated(e, now)),
            "id": lambda e: e.id,
            "workflow_name": lambda e: e.wf,
            "state": lambda e: self.state(e, now),
        }
        parts = []
        for k, d in zip(keys, dirs):
            if k not in getters or d not in ("asc", "desc"):
                raise Fault(400, "Invalid sort key or direction: %s %s" % (k, d))
            g = getters[k]
            parts.append(
                g
                if d == "asc"
                else (lambda e, g=g: -g(e))
                if k.endswith("_at")
                else (lambda e, g=g: _Rev(g(e)))
            )
        if len(parts) == 2:  # the usual case, without a generator per row
            a, b = parts
            return lambda e: (a(e), b(e))
        return lambda e: tuple(p(e) for p in parts)

    # -- stats ---------------------------------------------------------------
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
        now, states = self.now(), {}
        for e in self.execs.values():
            s = self.state(e, now)
            states[s] = states.get(s, 0) + 1
        lq = {
            "total": sum(r[0] for r in self.lq.values()),
            "executions": len(self.lq),
            "per_execution": _summary(sorted(r[0] for r in self.lq.values())),
            "gap_s": _summary(sorted(self.gaps)),
            "first_at": min((r[1] for r in self.lq.values()), default=None),
            "last_at": max((r[2] for r in self.lq.values()), default=None),
        }
        if per_execution:
            lq["by_execution"] = {
                k: {"count": r[0], "first_at": r[1], "last_at": r[2]} for k, r in self.lq.items()
            }
        return {
            "uptime_s": round(now - self.started, 3),
            "since_reset_s": round(now - self.stats_since, 3),
            "cpu_s": round(time.process_time(), 3),
            "requests": dict(sorted(self.counts.items())),
            "requests_total": sum(v for k, v in self.counts.items() if " /v2" in k),
            "injected": dict(self.injected),
            "webhooks": dict(self.webhooks),
            "executions": {"total": len(self.execs), "by_state": states},
            "light_queries": lq,
            "faults": self.fault_view(),
        }

    def fault_view(self):
        return {k: sorted(v) if isinstance(v, set) else v for k, v in self.faults.items()}


class _Rev:
    """Reverses the order of a string sort key (sort_dirs=desc)."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return other.v < self.v

    def __eq__(self, other):
        return self.v == other.v


def _summary(values):
    n = len(values)
    return (
        {
            "count": n,
            "min": values[0],
            "p50": values[n // 2],
            "p99": values[min(n - 1, int(n * 0.99))],
            "max": values[-1],
        }
        if n
        else {"count": 0}
    )


# -- HTTP ---------------------------------------------------------------------


class App:
    """Routes requests to the Sim, injects faults, owns the listening socket."""

    def __init__(self, sim, host, port):
        self.sim, self.host, self.port, self.server, self.conns = sim, host, port, None, set()

    async def listen(self):
        self.server = await asyncio.get_running_loop().create_server(
            lambda: HttpProtocol(self), self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self.server.sockets[0].getsockname()[1]

    def go_down(self, seconds):
        # Close the listener and every connection: clients get a true "connection refused".
        self.server.close()
        for c in list(self.conns):
            c.t.close()
        LOG.warning("simulated outage: refusing connections for %.1f s", seconds)
        asyncio.get_running_loop().call_later(seconds, lambda: asyncio.ensure_future(self.listen()))

    def dispatch(self, method, target, body):
        """(status, JSON-able body, seconds to delay the answer)."""
        sim, delay, u = self.sim, 0.0, urlsplit(target)
        p = [s for s in u.path.split("/") if s][:4] or [""]
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        try:
            if p[0] == "_sim":
                return self.admin(method, p[1:], q, body) + (0.0,)
            if p[0] != "v2" or len(p) < 2:
                raise Fault(404, "Resource not found")
            now, f = sim.now(), sim.faults
            light = (
                p[2]
                if method == "GET" and len(p) == 3 and p[1] == "executions" and "fields" in q
                else None
            )
            sim.count(
                "%s /v2/%s%s"
                % (
                    method,
                    p[1],
                    "".join(("/{id}",) * (len(p) > 2) + tuple("/" + s for s in p[3:])),
                ),
                light,
                now,
            )
            if f.get("latency_ms") or f.get("latency_jitter_ms"):
                delay = (
                    f.get("latency_ms", 0) + sim.rng.uniform(0, f.get("latency_jitter_ms", 0))
                ) / 1000
            if f.get("error_rate") and sim.rng.random() < f["error_rate"]:
                sim.injected["errors"] += 1
                raise Fault(500, "simulated engine failure (injected)")
            if f.get("malformed") and method == "GET" and p[1] in ("executions", "tasks"):
                # A lying engine (or a broken proxy): 200 and an empty object.
                sim.injected["malformed"] = sim.injected.get("malformed", 0) + 1
                return 200, {}, delay
            return self.api(method, p[1:], q, body, now) + (delay,)
        except Refused as exc:
            return (
                exc.status,
                {"faultcode": "Client" if exc.status < 500 else "Server", "faultstring": str(exc)},
                delay,
            )
        except Exception as exc:  # a simulator bug still answers like Mistral
            LOG.exception("error handling %s %s", method, target)
            return 500, {"faultcode": "Server", "faultstring": "simulator error: %s" % exc}, delay

    def api(self, method, p, q, body, now):
        sim, route = self.sim, (method, p[0], len(p), tuple(p[2:]))
        answer = sim.defs.route(method, p, q, body, _stamp(now))
        if answer is not None:
            return answer
        if route == ("GET", "executions", 1, ()):
            return 200, sim.listing(q, now, "http://%s:%d" % (self.host, self.port))
        if route == ("POST", "executions", 1, ()):
            return self.start(_obj(body, "the request body"), now)
        if route[:3] == ("GET", "tasks", 2):
            return 200, sim.task(p[1], now)[1]
        if route[:3] == ("PUT", "tasks", 2):
            e, t = sim.task(p[1], now)
            if t["state"] != "ERROR":
                raise Fault(
                    400,
                    "The current task execution must be in ERROR for rerun. "
                    "Only updating task to rerun is supported.",
                )
            if _obj(body, "the request body").get("reset") is False:
                raise Fault(400, "Only with-items task has the option to not reset.")
            sim.rerun(e, now)
            self.notify(e, "WORKFLOW_RERUN")
            return 200, t  # as Mistral: the task as it was read
        e = sim.lookup(p[1]) if p[0] == "executions" and len(p) > 1 else None
        if route == ("GET", "executions", 2, ()):
            fields = [f for f in q.get("fields", "").split(",") if f and f != "id"]
            return 200, sim.view(e, now, fields if "fields" in q else FULL[1:])
        if route == ("PUT", "executions", 2, ()):
            b = _obj(body, "the request body")
            if "state" not in b:
                raise Fault(400, "state is required")
            self.notify(e, sim.set_state(e, b["state"], b.get("state_info"), now))
            return 200, sim.view(e, now, FULL[1:])
        if route == ("GET", "executions", 3, ("tasks",)):
            fields = [f for f in q.get("fields", "").split(",") if f]
            return 200, {
                "tasks": [
                    {k: t[k] for k in ["id"] + fields if k in t} if fields else t
                    for t in sim.tasks(e, now)
                ]
            }
        if route == ("GET", "executions", 3, ("report",)):
            tasks = sim.tasks(e, now)
            root = dict(sim.view(e, now, ("state", "state_info", "workflow_name")), name=e.wf)
            root["task_executions"] = [
                {
                    "id": t["id"],
                    "name": t["name"],
                    "state": t["state"],
                    "state_info": t["state_info"],
                    "action_executions": [],
                    "workflow_executions": [],
                }
                for t in tasks
                if t["state"] == "ERROR" or q.get("errors_only") != "true"
            ]
            stat = {
                "%s_tasks_count" % s.lower(): sum(t["state"] == s for t in tasks)
                for s in ("RUNNING", "SUCCESS", "ERROR", "PAUSED", "IDLE")
            }
            return 200, {
                "root_workflow_execution": root,
                "statistics": dict(stat, total_tasks_count=len(tasks)),
            }
        raise Fault(
            404 if method == "GET" else 400,
            "Unsupported request: %s /v2/%s" % (method, "/".join(p)),
        )

    def start(self, b, now):
        sim = self.sim
        if b.get("id") in sim.execs:
            return 201, sim.view(sim.lookup(b["id"]), now, FULL[1:])  # idempotent, as Mistral
        ns = b.get("workflow_namespace") or ""
        wf = sim.defs.workflow(b.get("workflow_name") or b.get("workflow_id"), ns)
        e = sim.create(
            wf["name"],
            sim.defs.start_input(wf, _obj(b.get("input"), "input")),
            sim.defs.start_params(_obj(b.get("params"), "params"), ns),
            b.get("id"),
            b.get("description"),
            now=now,
            ns=ns,
        )
        bisect.insort(sim.finishes, (e.finish, e.id))
        self.notify(e, "WORKFLOW_LAUNCHED")
        return 201, sim.view(e, now, FULL[1:])

    def admin(self, method, p, q, body):
        sim = self.sim
        if (method, p) == ("POST", ["executions"]):
            return 201, sim.bulk(_obj(body, "the request body"))
        if (method, p) == ("POST", ["reschedule"]):
            return 200, sim.reschedule(_obj(body, "the request body"))
        if (method, p) == ("GET", ["stats"]):
            return 200, sim.stats(per_execution=q.get("per_execution") in ("1", "true"))
        if (method, p) == ("POST", ["stats", "reset"]):
            sim.reset_stats()
            return 200, {"reset": True}
        if p == ["faults"] and method in ("GET", "PUT"):
            b = _obj(body, "the request body") if method == "PUT" else {}
            if b.get("clear"):
                sim.faults.clear()
            sim.faults.update(
                (k, float(b[k]))
                for k in ("error_rate", "latency_ms", "latency_jitter_ms")
                if k in b
            )
            if "not_found" in b:
                sim.faults["not_found"] = set(b["not_found"] or ())
            if "malformed" in b:
                sim.faults["malformed"] = bool(b["malformed"])
            for i in b.get("delete") or ():
                sim.execs.pop(i, None)
            if b.get("down"):  # after this answer is written
                asyncio.get_running_loop().call_soon(self.go_down, float(b["down"]))
            return 200, sim.fault_view()
        raise Fault(404, "Unknown admin request: %s /_sim/%s" % (method, "/".join(p)))

    # -- webhooks: best effort like Mistral, one POST each, never retried ------
    def notify(self, e, event):
        if not event or not e.notify:
            return
        now = self.sim.now()
        payload = dict(
            self.sim.view(
                e,
                now,
                (
                    "workflow_name",
                    "workflow_namespace",
                    "workflow_id",
                    "state",
                    "state_info",
                    "project_id",
                    "task_execution_id",
                    "root_execution_id",
                    "created_at",
                    "updated_at",
                ),
            ),
            name=e.wf,
            event=event,
        )
        for hook in e.notify:
            if not hook.get("event_types") or event in hook["event_types"]:
                asyncio.ensure_future(self._post(hook, payload))
        if e.timer:
            e.timer.cancel()
        e.timer = (
            None
            if payload["state"] != "RUNNING"
            else asyncio.get_running_loop().call_later(
                max(0.0, e.finish - now) + 0.001, self._finished, e
            )
        )

    def _finished(self, e):
        e.timer = None
        if e.id in self.sim.execs and self.sim.state(e, self.sim.now()) == e.final:
            self.notify(e, EVENTS[e.final])

    async def _post(self, hook, payload):
        u, data, w, ok = urlsplit(hook["url"]), json.dumps(payload).encode(), None, False
        extra = "".join("%s: %s\r\n" % kv for kv in (hook.get("headers") or {}).items())
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(u.hostname, u.port or 80), 5)
            w.write(
                (
                    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n"
                    % (u.path or "/", u.netloc, len(data), extra)
                ).encode()
                + data
            )
            ok = (await asyncio.wait_for(r.readline(), 10)).split()[1:2] in ([b"200"], [b"201"])
        except (OSError, asyncio.TimeoutError) as exc:
            LOG.info(
                "webhook %s to %s failed: %s (not retried)", payload["event"], hook["url"], exc
            )
        finally:
            if w is not None:
                w.close()
        self.sim.webhooks["sent" if ok else "failed"] += 1


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; pipelined requests are answered in order."""

    def __init__(self, app):
        self.app, self.buf, self.t, self.waiting = app, bytearray(), None, False

    def connection_made(self, transport):
        self.t = transport
        self.app.conns.add(self)

    def connection_lost(self, exc):
        self.app.conns.discard(self)

    def data_received(self, data):
        self.buf += data
        if not self.waiting:
            self.process()

    def process(self):
        while not self.waiting and not self.t.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.send(
                        400, {"faultcode": "Client", "faultstring": "headers too large"}, False
                    )
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            req, headers = lines[0].split(" "), {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if len(req) != 3 or "chunked" in headers.get("transfer-encoding", "").lower():
                self.send(
                    400,
                    {"faultcode": "Client", "faultstring": "unsupported request framing"},
                    False,
                )
                return
            size = end + 4 + int(headers.get("content-length") or 0)
            if len(self.buf) < size:
                return  # the body is still on its way
            body = bytes(self.buf[end + 4 : size])
            del self.buf[:size]
            conn = headers.get("connection", "").lower()
            keep = conn != "close" if req[2] == "HTTP/1.1" else conn == "keep-alive"
            status, obj, delay = self.app.dispatch(req[0], req[1], body)
            if delay > 0:
                self.waiting = True  # later requests wait, so answers stay in order
                asyncio.get_running_loop().call_later(delay, self.send_later, status, obj, keep)
            else:
                self.send(status, obj, keep)

    def send(self, status, obj, keep):
        data = json.dumps(obj).encode()
        self.t.write(
            b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s"
            % (
                status,
                REASONS.get(status, b""),
                _http_date(),
                len(data),
                b"" if keep else b"Connection: close\r\n",
                data,
            )
        )
        if not keep:
            self.t.close()

    def send_later(self, status, obj, keep):
        self.waiting = False
        if not self.t.is_closing():
            self.send(status, obj, keep)
            self.process()


# -- running it -----------------------------------------------------------------


async def _serve(opts, ready, stop):
    sim = Sim(
        **{
            k: opts[k]
            for k in ("duration", "duration_jitter", "error_ratio", "tasks", "seed")
            if k in opts
        }
    )
    app = App(sim, opts.get("host", "127.0.0.1"), opts.get("port", 0))
    await app.listen()
    ready(app)
    await stop.wait()
    app.server.close()
    for c in list(app.conns):
        c.t.close()


class Handle:
    """A simulator on a thread: .url (…/v2), .base (for /_sim), .sim, .stop()."""

    def __init__(self, app, loop, stop, thread):
        self.sim, self._loop, self._stop, self._thread = app.sim, loop, stop, thread
        self.base = "http://%s:%d" % (app.host, app.port)
        self.url = self.base + "/v2"

    def stop(self):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def start_in_thread(**opts):
    """Run a simulator on a daemon thread (port 0 picks a free port)."""
    box, started = {}, threading.Event()

    async def main():
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await _serve(opts, lambda app: (box.update(app=app), started.set()), box["stop"])

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="engine-sim", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the engine simulator did not start")
    return Handle(box["app"], box["loop"], box["stop"], thread)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8999, help="0 picks a free port")
    ap.add_argument(
        "--duration", type=float, default=30.0, help="seconds an execution runs by default"
    )
    ap.add_argument(
        "--duration-jitter", type=float, default=0.0, help="up to this many seconds more"
    )
    ap.add_argument(
        "--error-ratio", type=float, default=0.0, help="fraction of executions ending in ERROR"
    )
    ap.add_argument("--tasks", type=int, default=3, help="synthetic tasks per execution")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--log-level", default="WARNING")
    a = ap.parse_args(argv)
    logging.basicConfig(
        level=a.log_level.upper(), format="%(asctime)s engine_sim %(levelname)s %(message)s"
    )

    async def run():
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await _serve(
            vars(a),
            lambda app: print(
                "engine simulator listening on http://%s:%d/v2" % (app.host, app.port), flush=True
            ),
            stop,
        )

    try:
        asyncio.run(run())
    except OSError as exc:
        raise SystemExit("engine_sim: error: %s" % exc) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
