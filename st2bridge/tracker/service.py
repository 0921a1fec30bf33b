"""The tracker daemon's process: a thin driver around Poller.tick.

Signal handlers only set a flag and wake the loop through a pipe; the loop
acts on it. On SIGTERM it stops claiming, lets in-flight checks finish within
`drain_timeout`, releases its leases, leaves the service registry and exits
0; a second SIGTERM exits at once. The same loop hands the heartbeat (liveness
and stats in the service registry, lease renewal of checks still in flight)
to a worker of its own every `heartbeat_interval`: one timing model, the
loop's. Started by st2bridge.tracker.daemon once the concurrency backend is
chosen.
"""

import logging
import os
import socket
import time
import uuid

from st2bridge import concurrency, config, errors, logs, registry
from st2bridge import status as st
from st2bridge.api import retention
from st2bridge.callbacks.app import make_app
from st2bridge.callbacks.handler import CallbackHandler
from st2bridge.concurrency.signals import StopSignals
from st2bridge.submit import Submitter
from st2bridge.tracker.poller import Poller
from st2bridge.tracker.stuckwatch import StuckWatch

NAME = "st2bridge-resultstracker"
LOG = logging.getLogger("st2bridge.resultstracker")
ACTIVE = [s for s in st.ALL if s not in st.TERMINAL]
# Seconds between two reads of the change log for the web view's stream: a
# page learns of a change this long after it is written (st2bridge-api, made
# for programs, reads every [api] poll_interval).
WEB_STREAM_POLL = 0.2


class Tracker(StopSignals):
    signal_log = LOG
    # A second signal skips the drain of in-flight checks.
    second_signal_message = "second %s: exiting now without draining"

    def __init__(self, conf, store, engine, executor, clock=time.time, backend=None):
        self.conf = conf
        self.backend = backend or concurrency.current()
        self.store = store
        self.engine = engine
        self.executor = executor
        self.clock = clock
        rt = conf.resultstracker
        self.owner = "%s:%d:%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.poller = Poller(
            engine,
            store,
            executor,
            owner=self.owner,
            query_interval=rt.query_interval,
            jitter_interval=rt.jitter_interval,
            lease_seconds=rt.lease_seconds,
            batch_size=rt.batch_size,
            sync_overlap=rt.sync_overlap,
            verify_interval=rt.verify_interval,
            batch_window=rt.batch_window,
            # One back-off policy for the engine: the same as retried requests.
            backoff_base=conf.engine.retry_exp_msec / 1000.0,
            backoff_max=conf.engine.retry_exp_max_msec / 1000.0,
            # Requested records the engine never received are submitted again.
            submit=Submitter(engine, store, clock=clock).submit,
            clock=clock,
            mode=rt.mode,
            stale_after=rt.stale_after,
            heartbeat_interval=rt.heartbeat_interval,
            stuck=StuckWatch.from_config(conf, engine, store, clock),
        )
        self.service = registry.service_record(NAME, self.owner, clock())
        self.callbacks = None
        self.listener = None
        if rt.mode != "poll":
            self.callbacks = CallbackHandler(
                store,
                engine,
                mode=rt.mode,
                stale_after=rt.stale_after,
                clock=clock,
                executor=self.backend.executor(rt.thread_pool_size),
                task_events=conf.callback.task_events,
                owner=self.owner,
                schedule=self.poller.schedule,
                settle=self.poller.settle_later,
            )
        # The heartbeat runs beside the loop (a slow store must not delay
        # checks), one at a time: a beat still running when the next is due
        # is not doubled.
        self.beats = self.backend.executor(1)
        self._beat_due = 0.0
        self.metrics = None
        self.metrics_server = None
        self.web_server = None
        self.web_feed = None
        self._takeovers_seen = 0
        self._pruned_at = 0.0
        self.open_wake_pipe()

    # -- sleep ------------------------------------------------------------

    def _sleep(self, seconds):
        """Sleep, but wake at once when a signal arrives (the pipe). Even with
        nothing to wait for, yield: under eventlet the checks just handed to
        the pool only run while this loop waits."""
        if seconds <= 0:
            self.executor.sleep(0)
        else:
            self.wait_for_signal(seconds)

    # -- heartbeat --------------------------------------------------------

    def heartbeat(self):
        now = self.clock()
        if now - self._pruned_at >= retention.PRUNE_EVERY:
            # The store's change log (st2bridge-api's stream and outbox) must
            # not grow for ever where no API process prunes it.
            self._pruned_at = now
            retention.prune(self.store, self.conf, now)
        try:
            self.store.renew_leases(self.owner, now + self.conf.resultstracker.lease_seconds)
            if self.metrics:
                self.metrics.refresh()  # counts records by status: reuse them
                tracked = sum(self.metrics.status_counts.get(s, 0) for s in ACTIVE)
            else:
                tracked = self.store.count_executions(ACTIVE)
            self.service.update(
                heartbeat_at=now,
                info={
                    "stats": {
                        "polls": self.poller.stats.polls,
                        "engine_requests": self.engine.request_count,
                        "lateness_ms": self.poller.stats.take_lateness(),
                        "tracked": tracked,
                        "in_flight": self.executor.running(),
                        "callbacks": dict(self.callbacks.counts) if self.callbacks else None,
                        # Engine reads of the stuck watch (suspects only), executions it flagged.
                        "stuck_probes": self.poller.stuck.probes if self.poller.stuck else 0,
                        "stuck_flagged": self.poller.stuck.flagged if self.poller.stuck else 0,
                    },
                    "callback_url": config.callback_url(self.conf) if self.listener else None,
                },
            )
            self.store.register_service(self.service)
        except errors.StoreError as exc:
            LOG.warning(
                "heartbeat failed: %s; trying again in %.0f s",
                exc,
                self.conf.resultstracker.heartbeat_interval,
            )
        taken = getattr(self.store, "lease_takeovers", 0) - self._takeovers_seen
        if taken:
            self._takeovers_seen += taken
            LOG.warning(
                "took over %d executions whose lease had lapsed (a tracker died "
                "or hung); checking them now",
                taken,
            )

    # -- the loop ---------------------------------------------------------

    def start_listener(self):
        """The callback endpoint, in this process's workers."""
        cb = self.conf.callback
        self.listener = self.backend.wsgi_server(
            make_app(self.callbacks, max_body=cb.max_body),
            cb.host,
            cb.port,
            logging.getLogger("st2bridge.callbacks"),
            name="callback listener",
            max_body=cb.max_body,
        )
        LOG.info(
            "callback listener on http://%s:%d/v1/callbacks/mistral/<id> (engine posts to %s)",
            self.listener.address[0],
            self.listener.address[1],
            config.callback_url(self.conf),
        )

    def start_metrics(self):
        """The Prometheus endpoint ([metrics] port; 0 disables it)."""
        from st2bridge.metrics import TrackerMetrics

        m = self.conf.metrics
        self.metrics = TrackerMetrics(
            poller=self.poller,
            engine=self.engine,
            store=self.store,
            executor=self.executor,
            callbacks=self.callbacks,
            clock=self.clock,
        )
        self.metrics.refresh()
        try:
            self.metrics_server = self.backend.wsgi_server(
                self.metrics.wsgi_app(),
                m.host,
                m.port,
                logging.getLogger("st2bridge.metrics"),
                name="metrics endpoint",
                max_body=0,
            )
        except OSError as exc:
            # Tracking matters more than its metrics: go on without them (a
            # scraper sees the target down).
            LOG.error(
                "metrics endpoint disabled: cannot listen on %s:%d ([metrics] port): %s",
                m.host,
                m.port,
                exc.strerror or exc,
            )
            return
        LOG.info("metrics on http://%s:%d/metrics", *self.metrics_server.address)

    def start_web(self):
        """The web view of executions ([web] port; 0 disables it), and the
        change-log follower whose stream tells its pages when to re-read."""
        from st2bridge.api.stream import LogFollower
        from st2bridge.web.app import make_app as make_web_app

        w = self.conf.web
        try:
            self.web_feed = LogFollower(self.store, clock=self.clock).start()
        except errors.StoreError as exc:
            LOG.warning("web view without its stream (pages poll): %s", exc)
            self.web_feed = None
        try:
            self.web_server = self.backend.wsgi_server(
                make_web_app(
                    self.store,
                    self.engine,
                    token=w.token,
                    clock=self.clock,
                    feed=self.web_feed,
                    stuck_conf=self.conf.stuck,
                    keepalive=self.conf.api.stream_keepalive,
                ),
                w.host,
                w.port,
                logging.getLogger("st2bridge.web"),
                name="web view",
                max_body=0,
            )
        except OSError as exc:
            LOG.error(
                "web view disabled: cannot listen on %s:%d ([web] port): %s",
                w.host,
                w.port,
                exc.strerror or exc,
            )
            return
        if self.web_feed is not None:
            loops = self.backend.executor(1)
            loops.submit(self.web_feed.run, WEB_STREAM_POLL, loops.sleep, lambda: self.stopping)
        LOG.info(
            "web view on http://%s:%d/executions%s",
            *self.web_server.address,
            " (token required)" if w.token else "",
        )

    def run(self):
        rt = self.conf.resultstracker
        if self.conf.metrics.port:
            self.start_metrics()
        if self.conf.web.port:
            self.start_web()
        if self.callbacks:
            self.start_listener()
        self.store.register_service(self.service)
        self._beat_due = self.clock() + rt.heartbeat_interval
        LOG.info(
            "tracker %s started: checking each execution every %.1f s (+ up to %.2f s "
            "jitter), %d %s workers, batches of up to %d; store %s; engine %s",
            self.owner,
            rt.query_interval,
            rt.jitter_interval,
            rt.thread_pool_size,
            self.backend.name,
            rt.batch_size,
            self.conf.store.url.split("://")[0],
            self.conf.engine.api_url,
        )
        idle = None
        while not self.stopping:
            try:
                wait = self.poller.tick(self.clock())
            except errors.StoreLost as exc:
                # Its files were replaced under us: writing on would go where
                # nobody reads. Stop; systemd restarts us on the new files.
                LOG.error("%s; exiting (code %d)", exc, exc.exit_code)
                self.exit_code = exc.exit_code
                break
            except errors.StoreError as exc:
                wait = 5.0
                LOG.warning("store unavailable: %s; retrying in %.0f s", exc, wait)
            wait = min(wait, self._beat(self.clock()))
            now_idle = self.executor.running() == 0 and wait >= rt.query_interval
            if now_idle and idle is not True:
                LOG.info("nothing due; next check of the store in %.1f s", wait)
            idle = now_idle
            # Never sleep past one interval: records written meanwhile by other
            # processes are due one interval after they were written.
            self._sleep(min(wait, rt.query_interval))
            if self.reload_requested:
                self.reload_requested = False
                logs.reload_level(self.conf)
        return self.shutdown()

    def _beat(self, now):
        """Start the heartbeat when due (unless the last one still runs);
        seconds until the next is due."""
        if now >= self._beat_due and self.beats.running() == 0:
            self._beat_due = now + self.conf.resultstracker.heartbeat_interval
            self.beats.submit(self.heartbeat)
        return max(0.1, self._beat_due - now)  # overdue: look again shortly

    def shutdown(self):
        rt = self.conf.resultstracker
        LOG.info(
            "%s received: stopped claiming; waiting up to %.0f s for %d in-flight checks",
            getattr(self, "_signal_name", "stop"),
            rt.drain_timeout,
            self.executor.running(),
        )
        if self.listener:
            self.listener.stop()  # the engine's callbacks go unanswered; polling catches up
        if self.metrics_server:
            self.metrics_server.stop()
        if self.web_server:
            self.web_server.stop()
        if self.web_feed is not None:
            self.web_feed.stop()  # ends the pages' streams
        if self.callbacks:
            # Results being fetched after terminal callbacks finish first.
            self.callbacks.executor.wait(rt.drain_timeout)
        self.beats.wait(rt.drain_timeout)
        if not self.executor.wait(rt.drain_timeout):
            LOG.warning(
                "%d checks still running after %.0f s; their leases lapse and "
                "another tracker takes them over",
                self.executor.running(),
                rt.drain_timeout,
            )
        try:
            released = self.store.release_leases(self.owner)
            self.store.remove_service(self.service["id"])
            LOG.info(
                "released %d leases; %d checks made; stopped", released, self.poller.stats.polls
            )
        except errors.StoreError as exc:
            LOG.warning("could not release leases (%s); they lapse on their own", exc)
        self.store.close()
        return getattr(self, "exit_code", errors.EXIT_OK)
