"""The st2bridge-api process: the REST API, the stream and the webhook
notifier. Stateless: any number of them may serve one store (behind a load
balancer); idempotency keys, the change log and the notification leases live
in the store. Started by st2bridge.api.daemon once the concurrency backend is
chosen.

Signal handlers only set a flag and wake the main loop through a pipe. On
SIGTERM it stops listening, ends the streams, lets deliveries in flight finish
(up to [resultstracker] drain_timeout), leaves the service registry and
exits 0; a second SIGTERM exits at once.
"""

import logging
import os
import socket
import time
import uuid

import requests
from requests.adapters import HTTPAdapter

from st2bridge import app, concurrency, errors, logs, registry
from st2bridge.alarms.service import Alarms
from st2bridge.api import retention, routes, server
from st2bridge.api.metrics import ApiMetrics
from st2bridge.api.notifications import Notifier
from st2bridge.api.starter import Starter
from st2bridge.api.stream import LogFollower
from st2bridge.concurrency.signals import StopSignals
from st2bridge.engine.transport import env_ca_bundle

NAME = logs.API
LOG = logging.getLogger("st2bridge.api")


def http_session(pool_size):
    """The webhook notifier's session, for many concurrent deliveries: a pool
    as large as the requests in flight. requests reads the whole environment
    (proxies, CA bundle, .netrc) on every request, a millisecond each: here it
    is read once. Where a proxy is configured that is left to requests (its
    no_proxy rules); a CA bundle named in the environment becomes the session's.
    (The engine client has its own transport: st2bridge.engine.transport.)"""
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    proxied = any("proxy" in name.lower() for name in os.environ)
    if not proxied and not os.path.exists(os.path.expanduser("~/.netrc")):
        session.trust_env = False
        session.verify = env_ca_bundle() or True
    return session


class ApiDaemon(StopSignals):
    signal_log = LOG

    def __init__(self, conf, store, engine, clock=time.time, backend=None):
        self.conf = conf
        self.backend = backend or concurrency.current()
        self.store = store
        self.engine = engine
        self.clock = clock
        self.owner = "%s:%d:%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.loops = self.backend.executor(8)
        self.deliveries = self.backend.executor(64)
        self.feed = LogFollower(store, clock=clock)
        n = conf.notify
        self.notifier = Notifier(
            store,
            self.feed,
            self.owner,
            global_sinks=[{"url": url, "secret": n.secret} for url in n.urls],
            every_status=n.every_status,
            retry_first=n.retry_first_seconds,
            retry_max=n.retry_max_seconds,
            deadline=n.deadline_seconds,
            timeout=n.timeout,
            lease_seconds=n.lease_seconds,
            spawn=self.deliveries.submit,
            clock=clock,
            session=http_session(64),
        )
        self._news = self.backend.event()
        self.feed.listeners.append(self._news.set)
        self.metrics = ApiMetrics(self.feed, self.notifier)
        runner = app.build_runner(conf, engine, store)
        self.starter = Starter(
            runner, definition_cache_seconds=conf.engine.definition_cache_seconds, clock=clock
        )
        self.alarms = Alarms(conf, store, engine, self.starter, self.owner, self.metrics, clock)
        self.feed.listeners.append(self.alarms.wake)
        self.service = registry.service_record(NAME, self.owner, clock())
        self.server = None
        self.open_wake_pipe()

    # -- background loops ---------------------------------------------------------

    def _wait_news(self, timeout):
        self._news.wait(timeout)
        self._news.clear()

    def heartbeat(self):
        now = self.clock()
        try:
            counts = self.store.count_notifications()
            self.metrics.notification_counts = counts
            self.service.update(
                heartbeat_at=now,
                info={
                    "url": "http://%s:%d" % self.server.address if self.server else None,
                    "stats": {
                        "stream_subscribers": self.feed.subscribers,
                        "change_seq": self.feed.cursor,
                        "notifications": counts,
                        "deliveries": dict(self.notifier.counts),
                        "alarms": self.alarms.stats(),
                    },
                },
            )
            self.store.register_service(self.service)
        except errors.StoreError as exc:
            LOG.warning("heartbeat failed: %s; trying again in %.0f s", exc, self._beat())

    def _beat(self):
        return self.conf.resultstracker.heartbeat_interval

    def _housekeeping(self):
        """Heartbeat; and prune the change log (st2bridge.api.retention)."""
        last_prune = 0.0
        while not self.stopping:
            self.heartbeat()
            now = self.clock()
            if now - last_prune >= retention.PRUNE_EVERY:
                last_prune = now
                retention.prune(self.store, self.conf, now)
                self.alarms.prune(now)
            self.loops.sleep(self._beat())

    # -- run ------------------------------------------------------------------------

    def run(self):
        a = self.conf.api
        self.feed.start()
        wsgi = routes.build(
            self.store,
            self.engine,
            self.starter,
            self.feed,
            metrics=self.metrics,
            max_body=a.max_body,
            keepalive=a.stream_keepalive,
            clock=self.clock,
            extra_routes=self.alarms.routes(),
            stuck_conf=self.conf.stuck,
        )
        self.server = server.serve(
            self.backend, wsgi, a.host, a.port, LOG, a.max_connections, a.max_body
        )
        self.store.register_service(self.service)
        self.loops.submit(self.feed.run, a.poll_interval, self.loops.sleep, lambda: self.stopping)
        self.loops.submit(self.notifier.run, self._news, self._wait_news, lambda: self.stopping)
        self.loops.submit(self._housekeeping)
        self.loops.submit(self.alarms.run, self.loops.sleep, lambda: self.stopping)
        LOG.info(
            "API %s listening on http://%s:%d (OpenAPI at /v1/openapi.json); store %s; engine "
            "%s; change log read every %.3f s from seq %d; %d global webhook sinks",
            self.owner,
            self.server.address[0],
            self.server.address[1],
            self.conf.store.url.split("://")[0],
            self.conf.engine.api_url,
            a.poll_interval,
            self.feed.cursor,
            len(self.conf.notify.urls),
        )
        while not self.stopping:
            self.wait_for_signal(1.0)
            if self.reload_requested:
                self.reload_requested = False
                logs.reload_level(self.conf)
                self.alarms.reload()
        return self.shutdown()

    def shutdown(self):
        drain = self.conf.resultstracker.drain_timeout
        LOG.info(
            "%s received: no new requests; ending %d streams; waiting up to %.0f s for %d "
            "deliveries in flight",
            getattr(self, "_signal_name", "stop"),
            self.feed.subscribers,
            drain,
            self.deliveries.running(),
        )
        self.server.stop()
        self.feed.stop()
        self._news.set()
        self.alarms.stop()
        if not self.deliveries.wait(drain):
            LOG.warning(
                "%d deliveries still running; their leases lapse and they are sent again",
                self.deliveries.running(),
            )
        self.loops.wait(2.0)
        try:
            self.store.remove_service(self.service["id"])
        except errors.StoreError as exc:
            LOG.warning("could not leave the service registry: %s", exc)
        self.store.close()
        LOG.info("stopped")
        return errors.EXIT_OK
