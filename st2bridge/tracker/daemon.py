"""st2bridge-resultstracker: the daemon that follows running executions.

A thin driver around Poller.tick: signal handlers only set flags; the loop
acts on them. On SIGTERM it stops claiming, lets in-flight queries finish
within a deadline, releases its leases and exits 0; a second SIGTERM exits
at once.
"""

from st2bridge import green

green.monkey_patch()  # noqa: E402 -- before anything opens a socket

import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from st2bridge import app, config, errors  # noqa: E402
from st2bridge.runner import Runner  # noqa: E402
from st2bridge.tracker.poller import Poller  # noqa: E402

LOG = logging.getLogger("st2bridge.resultstracker")

# The loop re-reads the store at least this often, so executions recorded by
# other processes are picked up without any notification.
MAX_SLEEP = 1.0
DRAIN_SECONDS = 20.0


class Tracker:
    def __init__(self, conf, store, engine, executor):
        self.conf = conf
        self.store = store
        self.executor = executor
        self.owner = "%s:%d:%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        rt = conf.resultstracker
        runner = Runner(engine, store, query_interval=rt.query_interval)
        self.poller = Poller(engine, store, executor, owner=self.owner,
                             query_interval=rt.query_interval,
                             jitter_interval=rt.jitter_interval, submit=runner.submit)
        self.stopping = False

    def request_stop(self, signum, frame):
        if self.stopping:
            LOG.warning("second %s: exiting now without draining", signal.Signals(signum).name)
            os._exit(1)
        LOG.info("%s received: stopping intake, draining in-flight queries (up to %.0f s)",
                 signal.Signals(signum).name, DRAIN_SECONDS)
        self.stopping = True

    def run(self):
        rt = self.conf.resultstracker
        LOG.info("tracker %s started: polling every %.1f s (+ up to %.2f s jitter) "
                 "with %d green threads; store %s; engine %s", self.owner,
                 rt.query_interval, rt.jitter_interval, rt.thread_pool_size,
                 self.conf.store.url.split("://")[0], self.conf.engine.api_url)
        idle_logged = False
        while not self.stopping:
            try:
                wait = self.poller.tick(time.time())
            except errors.StoreError as exc:
                wait = 5.0
                LOG.warning("store unavailable: %s; retrying in %.0f s", exc, wait)
            busy = self.executor.running() > 0 or wait < self.poller.query_interval
            if not busy and not idle_logged:
                LOG.info("nothing to track; checking the store again every %.0f s", MAX_SLEEP)
            idle_logged = not busy
            self.executor.sleep(min(wait, MAX_SLEEP))
        return self.shutdown()

    def shutdown(self):
        drained = self.executor.wait(DRAIN_SECONDS)
        if not drained:
            LOG.warning("%d queries still running after %.0f s; their leases lapse "
                        "and another tracker takes them over", self.executor.running(),
                        DRAIN_SECONDS)
        try:
            released = self.store.release_leases(self.owner)
            LOG.info("released %d leases; %d polls made; stopped", released, self.poller.polls)
        except errors.StoreError as exc:
            LOG.warning("could not release leases (%s); they lapse on their own", exc)
        self.store.close()
        return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        conf = config.load(argv, prog="st2bridge-resultstracker")
        app.setup_logging(conf)
        store = app.build_store(conf)
        engine = app.build_engine(conf, retry=False)
    except errors.BridgeError as exc:
        print("st2bridge-resultstracker: error: %s" % exc, file=sys.stderr)
        return exc.exit_code
    tracker = Tracker(conf, store, engine, green.GreenExecutor(conf.resultstracker.thread_pool_size))
    signal.signal(signal.SIGTERM, tracker.request_stop)
    signal.signal(signal.SIGINT, tracker.request_stop)
    return tracker.run()


if __name__ == "__main__":
    sys.exit(main())
