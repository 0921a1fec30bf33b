"""Prometheus metrics of one st2bridge-api process (GET /metrics, with a key).

st2bridge_api_requests_total{method,code}       requests answered
st2bridge_api_request_duration_seconds          time to answer (streams: to start)
st2bridge_api_stream_subscribers                open streams
st2bridge_api_change_seq                        the change log position read
st2bridge_notifications{status}                 notifications in the store (heartbeat)
st2bridge_notification_deliveries_total{outcome}  attempts: delivered, retried, failed
st2bridge_notification_delay_seconds            from the change to its delivery
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, feed, notifier):
        self.feed = feed
        self.notifier = notifier
        self.notification_counts = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "st2bridge_api_requests",
            "API requests answered, by method and HTTP code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "st2bridge_api_request_duration_seconds",
            "Time to answer one API request.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "st2bridge_notification_deliveries",
            "Webhook delivery attempts, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.delay = Histogram(
            "st2bridge_notification_delay_seconds",
            "From a change (an execution's end) to its webhook's delivery.",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Live(self))
        if notifier is not None:
            notifier.observers.append(self.observe_delivery)

    def observe_request(self, environ, code, seconds):
        self.requests.labels(environ.get("REQUEST_METHOD", ""), str(code)).inc()
        self.seconds.observe(seconds)

    def observe_delivery(self, outcome, seconds):
        self.deliveries.labels(outcome).inc()
        if seconds is not None:
            self.delay.observe(max(0.0, seconds))

    def render(self):
        return generate_latest(self.registry)


class _Live:
    def __init__(self, metrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        yield GaugeMetricFamily(
            "st2bridge_api_stream_subscribers", "Open streams.", value=self.m.feed.subscribers
        )
        yield GaugeMetricFamily(
            "st2bridge_api_change_seq", "Change log position read.", value=self.m.feed.cursor
        )
        counts = GaugeMetricFamily(
            "st2bridge_notifications",
            "Notifications in the store by status (refreshed on the heartbeat).",
            labels=["status"],
        )
        for status in ("pending", "delivered", "failed"):
            counts.add_metric([status], self.m.notification_counts.get(status, 0))
        yield counts
