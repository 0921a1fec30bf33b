"""The tracker's Prometheus endpoint: GET http://[metrics] host:port/metrics.

A scrape never touches the store or the engine. Counters and histograms are
fed where the event happens (a check made: the poller's stats hook; a
callback answered: the handler's observers; a lapsed lease taken over: the
store's hook in claim_due); counters that other objects keep anyway (the
engine client's requests and errors, the callbacks left to the poller, the
stuck watch's probes, Keystone tokens) are read from them; the
gauges that are state (executions and stuck executions by status/signature)
are refreshed on the heartbeat with one grouped count each.

    st2bridge_executions{status}                 records per bridge status (heartbeat)
    st2bridge_checks_total                       executions checked by the poller
    st2bridge_check_lateness_seconds             how late after its due time a check ran
    st2bridge_checks_in_flight                   checks running now
    st2bridge_callbacks_total{outcome,code}      callbacks answered (accepted, rejected, error)
    st2bridge_callback_results_left_to_poller_total  terminal callbacks whose result fetch failed
    st2bridge_callback_duration_seconds          time to handle one callback
    st2bridge_engine_requests_total              HTTP requests to the engine API (retries included)
    st2bridge_engine_errors_total{kind}          failed engine requests by kind
    st2bridge_lease_takeovers_total              claims of executions whose lease had lapsed
    st2bridge_engine_tokens_total                Keystone tokens obtained (auth_type = keystone)
    st2bridge_heartbeat_timestamp_seconds        last heartbeat (a stuck daemon stops moving it)
    st2bridge_stuck_executions{signature}        active executions flagged stuck (heartbeat)
    st2bridge_stuck_probes_total                 engine reads of the stuck watch (suspects only)
"""

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from st2bridge import errors
from st2bridge import status as st
from st2bridge.tracker.stuck import SIGNATURES

LOG = logging.getLogger(__name__)

LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Engine error classes (st2bridge.errors) -> the `kind` label.
ERROR_KINDS = {
    "EngineUnavailable": "unreachable",
    "EngineServerError": "server_error",
    "EngineAuthError": "auth",
    "EngineNotFound": "not_found",
    "EngineConflict": "conflict",
    "EngineBadRequest": "bad_request",
    "EngineClientError": "client_error",
}


def callback_outcome(code):
    if code < 300:
        return "accepted"
    return "rejected" if code < 500 else "error"


class TrackerMetrics:
    """Every metric of one tracker, in a registry of its own."""

    def __init__(self, *, poller, engine, store, executor, callbacks=None, clock=time.time):
        self.poller = poller
        self.engine = engine
        self.store = store
        self.executor = executor
        self.callback_handler = callbacks
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.lateness = Histogram(
            "st2bridge_check_lateness_seconds",
            "How late after its due time an execution was checked.",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.checks = Counter(
            "st2bridge_checks", "Executions checked by the poller.", registry=self.registry
        )
        self.takeovers = Counter(
            "st2bridge_lease_takeovers",
            "Executions claimed after their previous lease lapsed (a tracker died or hung).",
            registry=self.registry,
        )
        self.callbacks = Counter(
            "st2bridge_callbacks",
            "Engine callbacks answered, by outcome and HTTP code.",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.callback_seconds = Histogram(
            "st2bridge_callback_duration_seconds",
            "Time to handle one engine callback.",
            buckets=CALLBACK_BUCKETS,
            registry=self.registry,
        )
        self.status_counts = {}
        self.stuck_counts = {}
        self.heartbeat_at = None
        self.registry.register(_LiveCollector(self))
        poller.stats.observe_check = self.observe_check
        store.observe_takeovers = self.takeovers.inc
        if callbacks is not None:
            callbacks.observers.append(self.observe_callback)

    def observe_check(self, lateness):
        self.checks.inc()
        if lateness is not None:
            self.lateness.observe(lateness)

    def observe_callback(self, code, seconds):
        self.callbacks.labels(callback_outcome(code), str(code)).inc()
        self.callback_seconds.observe(seconds)

    def refresh(self):
        """Count the records by status (from the heartbeat; one grouped count)."""
        try:
            counts = self.store.count_by_status()
            self.status_counts = {status: counts.get(status, 0) for status in st.ALL}
        except errors.StoreError as exc:
            LOG.warning(
                "metrics: counting executions failed: %s; the gauge keeps its last values", exc
            )
        try:
            counts = self.store.count_stuck()
            self.stuck_counts = {signature: counts.get(signature, 0) for signature in SIGNATURES}
        except errors.StoreError as exc:
            LOG.warning(
                "metrics: counting stuck executions failed: %s; the gauge keeps its last values",
                exc,
            )
        self.heartbeat_at = self.clock()

    def wsgi_app(self):
        metrics = make_wsgi_app(self.registry)

        def app(environ, start_response):
            if environ.get("PATH_INFO") in ("/metrics", "/metrics/"):
                return metrics(environ, start_response)
            body = b"see /metrics\n"
            start_response(
                "404 Not Found",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]

        return app


class _LiveCollector:
    """Counters that other objects keep, read at scrape time."""

    def __init__(self, metrics):
        self.m = metrics

    def describe(self):
        return []  # names vary with what is configured; no need to pre-declare

    def collect(self):
        m = self.m
        executions = GaugeMetricFamily(
            "st2bridge_executions",
            "Execution records in the store by bridge status (refreshed on the heartbeat).",
            labels=["status"],
        )
        for status in st.ALL:
            if status in m.status_counts:
                executions.add_metric([status], m.status_counts[status])
        yield executions
        yield GaugeMetricFamily(
            "st2bridge_checks_in_flight", "Checks running now.", value=m.executor.running()
        )
        yield CounterMetricFamily(
            "st2bridge_engine_requests",
            "HTTP requests to the engine API, retries included.",
            value=m.engine.request_count,
        )
        errors_ = CounterMetricFamily(
            "st2bridge_engine_errors", "Failed engine requests by kind.", labels=["kind"]
        )
        counts = {}
        for name, count in dict(getattr(m.engine, "error_counts", {})).items():
            kind = ERROR_KINDS.get(name, "other")
            counts[kind] = counts.get(kind, 0) + count
        for kind in sorted(set(ERROR_KINDS.values()) | set(counts)):
            errors_.add_metric([kind], counts.get(kind, 0))
        yield errors_
        if m.callback_handler is not None:
            yield CounterMetricFamily(
                "st2bridge_callback_results_left_to_poller",
                "Terminal callbacks whose "
                "result fetch from the engine failed: the poller finishes those executions.",
                value=m.callback_handler.counts["left_to_poller"],
            )
        issued = getattr(getattr(m.engine, "token_provider", None), "issued", None)
        if issued is not None:
            yield CounterMetricFamily(
                "st2bridge_engine_tokens", "Keystone tokens obtained.", value=issued
            )
        stuck = GaugeMetricFamily(
            "st2bridge_stuck_executions",
            "Active executions flagged stuck, by signature (refreshed on the heartbeat).",
            labels=["signature"],
        )
        for signature, count in sorted(m.stuck_counts.items()):
            stuck.add_metric([signature], count)
        yield stuck
        watch = getattr(m.poller, "stuck", None)
        if watch is not None:
            yield CounterMetricFamily(
                "st2bridge_stuck_probes",
                "Engine reads made by the stuck watch (suspects only).",
                value=watch.probes,
            )
        if m.heartbeat_at is not None:
            yield GaugeMetricFamily(
                "st2bridge_heartbeat_timestamp_seconds",
                "Time of the last heartbeat.",
                value=m.heartbeat_at,
            )
