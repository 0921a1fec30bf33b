"""The tracker's stuck-execution watch: the poller asks it about every
execution it checks (`check(record, now) -> changes`).

Cost: nothing for an execution the bridge saw move within `probe_after`:
the screen reads only the record. A suspect (quiet for that long) costs one
engine request (the execution's task tree, with action executions and their
heartbeats), then no more until a rule could fire (e.g. when the newest
heartbeat would be overdue), at most `probe_interval` apart, and never more
than `max_probes_per_second` per tracker. A finding is written to the record
(`stuck`), and cleared when a later look finds the engine moving again.
The rules themselves are in st2bridge/tracker/stuck.py.
"""

import logging
import time

import yaml

from st2bridge import concurrency, errors
from st2bridge.results import engine_time
from st2bridge.tracker import stuck

LOG = logging.getLogger(__name__)

# Never look at one suspect more often than this.
MIN_GAP = 1.0
# How long a workflow definition and a learnt bound are reused.
CACHE_SECONDS = 300.0


def settings_from_config(s):
    return stuck.Settings(
        probe_after=s.probe_after,
        probe_interval=s.probe_interval,
        heartbeat_timeout=s.heartbeat_timeout,
        unstarted_timeout=s.unstarted_timeout,
        result_grace=s.result_grace,
        continuation_grace=s.continuation_grace,
        no_progress_after=s.no_progress_after,
        async_actions=tuple(s.async_actions or ()),
    )


class EngineBounds(stuck.Bounds):
    """Task timeouts from the workflow definitions in the engine, learnt
    no-progress bounds from the store's succeeded executions; both cached."""

    def __init__(self, engine, store, conf_stuck=None, clock=time.time):
        self.engine = engine
        self.store = store
        self.learn = bool(conf_stuck and conf_stuck.learn_from_history)
        self.runs = conf_stuck.history_runs if conf_stuck else 50
        self.min_runs = conf_stuck.history_min_runs if conf_stuck else 5
        self.factor = conf_stuck.history_factor if conf_stuck else 3.0
        self.floor = conf_stuck.history_floor if conf_stuck else 60.0
        self.clock = clock
        self._definitions = {}  # workflow name -> (read at, {task: timeout})
        self._learnt = {}  # workflow name -> (read at, {task: bound})

    def task_timeout(self, workflow_name, task_name):
        return self._cached(self._definitions, workflow_name, self._timeouts).get(task_name)

    def learnt(self, workflow_name, task_name):
        if not self.learn:
            return None
        return self._cached(self._learnt, workflow_name, self._history).get(task_name)

    def _cached(self, cache, name, load):
        if not name:
            return {}
        now = self.clock()
        hit = cache.get(name)
        if hit is None or now - hit[0] > CACHE_SECONDS:
            try:
                hit = (now, load(name))
            except errors.BridgeError as exc:
                LOG.debug("stuck watch: cannot read %s (%s); trying again later", name, exc)
                hit = (now, {})
            cache[name] = hit
        return hit[1]

    def _timeouts(self, workflow_name):
        definition = self.engine.get_workflow(workflow_name).get("definition") or ""
        return timeouts_of(definition, workflow_name)

    def _history(self, workflow_name):
        durations = {}
        for record in self.store.list_executions(
            status="succeeded", workflow_name=workflow_name, limit=self.runs
        ):
            for task in record.get("tasks") or []:
                start, end = (
                    engine_time(task.get("started_at")),
                    engine_time(task.get("finished_at")),
                )
                if task.get("state") == "SUCCESS" and start is not None and end is not None:
                    durations.setdefault(task.get("name"), []).append(max(0.0, end - start))
        bounds = {}
        for name, values in durations.items():
            if len(values) >= self.min_runs:
                values.sort()
                p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
                bounds[name] = max(self.floor, self.factor * p99)
        return bounds


def timeouts_of(definition, workflow_name):
    """{task name: timeout seconds} of one workflow in a definition text: the
    task's own `timeout`, else task-defaults'; expressions are left out."""
    try:
        doc = yaml.safe_load(definition)
    except yaml.YAMLError:
        return {}
    spec = doc.get(workflow_name, doc) if isinstance(doc, dict) else {}
    if not isinstance(spec, dict):
        return {}
    default = (spec.get("task-defaults") or {}).get("timeout")
    out = {}
    for name, task in (spec.get("tasks") or {}).items():
        value = (task or {}).get("timeout", default) if isinstance(task, dict) else default
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            out[name] = float(value)
    return out


class StuckWatch:
    def __init__(
        self,
        engine,
        store,
        settings,
        bounds=None,
        clock=time.time,
        max_probes_per_second=10.0,
    ):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.bounds = bounds or stuck.Bounds()
        self.clock = clock
        self.rate = max_probes_per_second
        self._tokens, self._filled_at = max_probes_per_second, None
        self.probes = 0  # engine requests made by the watch (metrics, benchmarks)
        self.flagged = 0  # executions newly flagged stuck
        self._count_lock = concurrency.current().lock()

    @classmethod
    def from_config(cls, conf, engine, store, clock=time.time):
        """The watch the [stuck] options describe; None when it is disabled."""
        s = conf.stuck
        if not s.enabled:
            return None
        return cls(
            engine,
            store,
            settings_from_config(s),
            EngineBounds(engine, store, s, clock),
            clock,
            s.max_probes_per_second,
        )

    def check(self, record, now):
        """Changes to write with the record's check (empty: none). Never raises."""
        try:
            return self._check(record, now)
        except Exception:  # a bug here must not stop tracking
            LOG.exception(
                "stuck watch: unexpected error looking at execution %s; looking again in %.0f s",
                record.get("id"),
                self.settings.probe_interval,
            )
            return {"stuck_probe_at": now + self.settings.probe_interval}

    def _check(self, record, now):
        flagged = record.get("stuck")
        if not stuck.watchable(record):
            return {"stuck": None} if flagged else {}
        if not stuck.screen(record, now, self.settings) or not self._token(now):
            return {}
        with self._count_lock:  # checks run in pool workers
            self.probes += 1
        try:
            report = self.engine.execution_tree(record["engine_execution_id"])
        except errors.EngineNotFound:
            return {}  # the poller confirms a deleted execution on its own
        except errors.EngineError as exc:
            LOG.info(
                "stuck watch: cannot read the task tree of execution %s (%s); trying again in "
                "%.0f s",
                record["id"],
                exc,
                self.settings.probe_interval,
            )
            return {"stuck_probe_at": now + self.settings.probe_interval}
        offset = self.engine.clock_offset() or 0.0
        finding, wake = stuck.diagnose(report, now + offset, self.settings, self.bounds)
        if finding:
            return self._flag(record, finding, offset, now)
        gap = self.settings.probe_interval
        if wake is not None:
            gap = min(gap, max(MIN_GAP, wake - offset - now))
        changes = {"stuck_probe_at": now + gap}
        if flagged:
            changes["stuck"] = None
            LOG.info(
                "execution %s is no longer stuck (%s): the engine moved",
                record["id"],
                flagged.get("signature"),
            )
        return changes

    def _flag(self, record, finding, offset, now):
        previous = record.get("stuck")
        value = stuck.record_value(finding, offset, now, previous)
        changes = {"stuck_probe_at": now + self.settings.probe_interval}
        if value != previous:
            changes["stuck"] = value
        if not previous or previous.get("detected_at") != value["detected_at"]:
            with self._count_lock:
                self.flagged += 1
            LOG.warning(
                "execution %s looks stuck: %s since %s: %s; fix: %s",
                record["id"],
                finding.signature,
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value["since"])),
                finding.reason,
                stuck.fix_command(record["id"], finding.signature),
            )
        return changes

    def _token(self, now):
        """A token bucket: at most `rate` looks per second, bursts of `rate`."""
        if self._filled_at is not None:
            refill = max(0.0, now - self._filled_at) * self.rate
            self._tokens = min(self.rate, self._tokens + refill)
        self._filled_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
