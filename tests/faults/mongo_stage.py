"""The MongoDB stage of the fault campaign (issue 9): the store unreachable for a while.

Run by tests/faults/campaign.py after its SQLite stage (or alone: `--stage mongo`), in a process of
its own, on the campaign's private Mistral:

    .venv/bin/python -m tests.faults.mongo_stage --api-url URL --tmp DIR [--workflows 100] [--trackers 2]
        [--span 120] [--outage 30] [--json-out FILE]

Two ways, one stage (tests/faults/campaign.py's Campaign: the same workflows, runner, bad client,
watcher and verify()):

- mongomock (default): MongoDB cannot be installed on every machine, and mongomock lives in one
  process, so the trackers run in THIS process: st2bridge.tracker.service.Tracker objects (the
  daemon's own poller, callback listener and heartbeat, in eventlet green threads as in the
  daemon), each over a MongoStore on one shared mongomock client seen through
  tests/faults/mongo_fault_hook.py's FaultyClient (connection refused for the outage; see there). The
  runner, the watcher and verify() use the client directly.
- a real server (ST2BRIDGE_TEST_MONGO_URL=mongodb://127.0.0.1:PORT/..., local only): tracker
  PROCESSES reach it through a TCP relay (tests/support/tcp_relay.py) that is cut for the outage (refused
  connections, open ones closed); a database of its own, dropped at the end. (Not run yet: no
  MongoDB server could be installed where this was written.)

Faults: `mongo_down` twice (at 25% and 65% of the span, --outage s each), and the campaign's bad
client throughout. Besides the campaign's goals, the callbacks answered while the store was down
are counted by status (engine's and bad client's apart): they must get 503, never 500, and the
executions whose terminal callback got a 503 must be finished later (by the poller).
"""

import os
import sys
from pathlib import Path

REAL_URL = os.environ.get("ST2BRIDGE_TEST_MONGO_URL")

if not REAL_URL:
    from st2bridge import concurrency

    concurrency.init("eventlet")  # noqa: E402 -- in-process trackers: as the daemon does, first

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import uuid  # noqa: E402

from pymongo import errors as mongo_errors  # noqa: E402

from st2bridge import app, config  # noqa: E402
from st2bridge import status as st  # noqa: E402
from st2bridge.store.mongo import MongoStore  # noqa: E402
from tests.faults import campaign as fc  # noqa: E402
from tests.faults.mongo_fault_hook import FaultyClient, Outage  # noqa: E402
from tests.support.tcp_relay import Relay  # noqa: E402

TERMINAL_EVENTS = {"WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"}
BAD_MARK = "campaign_bad_client"  # an extra key in the bad client's bodies (the bridge ignores it)


# -- trackers in this process (mongomock)
# -----------------------------------------------------------


class InProcessTracker:
    """fault_campaign.Tracker's interface over a st2bridge.tracker.service.Tracker running in this
    process's green threads, on a MongoStore over `client`."""

    def __init__(self, stage, slot, conf_text, port):
        self.stage, self.slot, self.port = stage, slot, port
        self.conf = stage.tmp / ("tracker-%d.conf" % slot)
        self.conf.write_text(conf_text)
        self.tracker = self.thread = self.code = None

    def start(self, timeout=60):
        from st2bridge import concurrency
        from st2bridge.tracker.service import Tracker

        conf = config.load(["--config-file", str(self.conf)], config_files=[])
        store = MongoStore(client=self.stage.faulty_client, database=self.stage.database)
        engine = app.build_engine(conf, retry=False)
        backend = concurrency.current()
        self.tracker = Tracker(
            conf,
            store,
            engine,
            backend.executor(conf.resultstracker.thread_pool_size),
            backend=backend,
        )
        handle = self.tracker.callbacks.handle

        def observed(execution_id, secret, body):  # the listener calls handler.handle
            status, answer = handle(execution_id, secret, body)
            self.stage.observe_callback(execution_id, body, status)
            return status, answer

        self.tracker.callbacks.handle = observed
        self.code = None
        self.thread = threading.Thread(target=self._run, name="tracker-%d" % self.slot, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if self.healthy():
                return
            time.sleep(0.3)
        raise SystemExit("fault_mongo: in-process tracker %d did not answer /v1/health" % self.slot)

    def _run(self):
        self.code = self.tracker.run()

    healthy = fc.Tracker.healthy

    def alive(self):
        return self.thread is not None and self.thread.is_alive()

    def sigterm(self, timeout=60):
        """What SIGTERM does to the daemon: the flag, and a byte in its wake-up pipe."""
        self.tracker.stopping = True
        self.tracker._signal_name = "SIGTERM"
        os.write(self.tracker._wake_w, b"\0")
        self.thread.join(timeout)
        return "still draining" if self.thread.is_alive() else self.code


# -- the stage
# ---------------------------------------------------------------------------------------


class MongoStage(fc.Campaign):
    def __init__(self, a, tmp, api_url):
        self.database = "st2bridge_campaign_%s" % uuid.uuid4().hex[:8]
        self.outage = Outage(select_timeout=2.0, seed=a.seed)
        self.answers = collections.Counter()  # "engine|bad status" -> count
        self.terminal_503 = set()  # bridge ids whose terminal engine callback got 503
        self.mongo_relay = None
        if REAL_URL:
            parts = urllib.parse.urlsplit(REAL_URL)
            if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
                raise SystemExit(
                    "fault_mongo: ST2BRIDGE_TEST_MONGO_URL must name a local server "
                    "with its port (the relay reaches 127.0.0.1 only): %s" % parts.hostname
                )
            self.mongo_relay = Relay([parts.port])
            query = "directConnection=true" + ("&" + parts.query if parts.query else "")
            self.direct_url = urllib.parse.urlunsplit(parts._replace(path="/" + self.database))
            self.relay_url = urllib.parse.urlunsplit(
                parts._replace(
                    netloc=parts.netloc.rsplit("@", 1)[0] + "@127.0.0.1:%d" % self.mongo_relay.port
                    if "@" in parts.netloc
                    else "127.0.0.1:%d" % self.mongo_relay.port,
                    path="/" + self.database,
                    query=query,
                )
            )
        else:
            import mongomock

            self.raw_client = mongomock.MongoClient()
            self.faulty_client = FaultyClient(self.raw_client, self.outage)
            self.direct_url = self.relay_url = "mongodb://mongomock.invalid/" + self.database
        super().__init__(a, tmp, api_url)

    def runner_store_url(self):
        return self.direct_url

    def tracker_store_url(self):
        return self.relay_url

    def open_store(self, conf):
        if REAL_URL:
            return app.build_store(conf)
        return MongoStore(client=self.raw_client, database=self.database)

    def make_tracker(self, slot, conf_text, port):
        if REAL_URL:
            return fc.Tracker(self.tmp, slot, conf_text, port)
        return InProcessTracker(self, slot, conf_text, port)

    @contextlib.contextmanager
    def terminal_reader(self):
        # A client of its own, straight to the server: the watcher sees no outage.
        if REAL_URL:
            import pymongo

            client = pymongo.MongoClient(self.direct_url, serverSelectionTimeoutMS=2000)
        else:
            client = self.raw_client
        coll = client[self.database]["executions"]

        def read():
            try:
                return [
                    d["_id"] for d in coll.find({"status": {"$in": list(st.TERMINAL)}}, {"_id": 1})
                ]
            except mongo_errors.PyMongoError:
                return []

        try:
            yield read
        finally:
            if REAL_URL:
                client.close()

    def plan(self):
        a = self.a
        rnd = random.Random(a.seed)
        schedule = [
            (a.span * i / a.workflows, i, rnd.randint(1, 8), i % 7 == 6) for i in range(a.workflows)
        ]
        return schedule, [
            (0.25 * a.span, "mongo_down", (a.outage,)),
            (0.65 * a.span, "mongo_down", (a.outage,)),
        ]

    def inject(self, kind, args):
        if kind != "mongo_down":
            return super().inject(kind, args)
        seconds, start = args[0], time.time()
        if REAL_URL:
            fc.say("fault mongo_down: relay to MongoDB down for %.0f s" % seconds)
            self.mongo_relay.down()
            time.sleep(seconds)
            self.mongo_relay.up()
        else:
            fc.say(
                "fault mongo_down: every store operation of the trackers fails for %.0f s" % seconds
            )
            self.outage.start(seconds)
            time.sleep(seconds)
            self.outage.stop()
        self.fault("mongo_down", start)

    def post(self, kind, rid, event, secret, expect_ok=True):
        super().post(kind, rid, dict(event, **{BAD_MARK: True}), secret, expect_ok)

    def observe_callback(self, execution_id, body, status):
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        source = "bad" if isinstance(event, dict) and event.get(BAD_MARK) else "engine"
        down = "store down" if self.outage.active() else "store up"
        self.answers["%s %s %s" % (source, down, status)] += 1
        if status == 500:
            self.server_errors += 1
        if source == "engine" and status == 503 and event.get("event") in TERMINAL_EVENTS:
            self.terminal_503.add(execution_id)

    def extra_results(self):
        res = {
            "store": "mongodb (real, through a relay)" if REAL_URL else "mongomock + fault hook",
            "store_outage": dict(self.outage.counts),
            "callback_answers": dict(self.answers),
        }
        if REAL_URL:
            unrecorded = sum(
                log.read_text(errors="replace").count(" not recorded: ")
                for log in self.tmp.glob("tracker-*-*.log")
            )
            res["callback_answers"] = {"503 (from tracker logs)": unrecorded}
        else:
            records = {r["id"]: r for r in self.store.list_executions(limit=None)}
            by = collections.Counter(
                str(records.get(rid, {}).get("finished_by")) for rid in self.terminal_503
            )
            res["terminal_callback_503"] = {
                "executions": len(self.terminal_503),
                "then finished by": dict(by),
            }
        return res

    def close(self):
        codes = super().close()
        if self.mongo_relay is not None:
            self.mongo_relay.close()
            import pymongo

            with contextlib.suppress(mongo_errors.PyMongoError):
                with pymongo.MongoClient(REAL_URL, serverSelectionTimeoutMS=5000) as client:
                    client.drop_database(self.database)
        return codes


def report(res, a):
    ok = fc.report(res, a)
    print("  store outage (hook)                    %s" % res.get("store_outage"))
    print(
        "  callback answers                       %s"
        % dict(sorted(res.get("callback_answers", {}).items()))
    )
    t503 = res.get("terminal_callback_503")
    if t503 is not None:
        print("  engine's terminal callback got 503     %s" % t503)
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api-url", required=True, help="the campaign's private Mistral")
    ap.add_argument("--tmp", required=True, help="directory for configs and logs")
    ap.add_argument("--workflows", type=int, default=100)
    ap.add_argument("--trackers", type=int, default=2)
    ap.add_argument("--span", type=float, default=120)
    ap.add_argument("--outage", type=float, default=30, help="seconds of each of the two outages")
    ap.add_argument("--stale-after", type=float, default=10)
    ap.add_argument("--query-interval", type=float, default=1.0)
    ap.add_argument("--lease-seconds", type=float, default=6.0)
    ap.add_argument("--bad-interval", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--json-out")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    if not REAL_URL:
        # The in-process trackers log here, as tracker processes do to tracker-N-M.log.
        log = open(tmp / "tracker-mongo-1.log", "a")
        conf = config.load([], config_files=[])
        app.setup_logging(conf, stream=log, component="st2bridge-resultstracker")
    fc.say(
        "MongoDB stage: %s; %d workflows over %.0f s, %d trackers, 2 outages of %.0f s"
        % (
            "real server through a relay" if REAL_URL else "mongomock, trackers in this process",
            a.workflows,
            a.span,
            a.trackers,
            a.outage,
        )
    )
    res, ok = {}, False
    try:
        res = fc.run(a, tmp, a.api_url, stage=MongoStage)
        res["load_end"] = open("/proc/loadavg").read().strip()
        ok = report(res, a)
        t503 = res.get("terminal_callback_503") or {}
        if t503.get("then finished by", {}).get("callback"):
            print(
                "  note: some executions whose terminal callback got 503 were finished by a later "
                "callback (the bad client's duplicates)"
            )
    finally:
        fc.STOP.set()
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(dict(res, args=vars(a)), default=str) + "\n")
    print("MONGO STAGE %s" % ("PASS" if ok else "FAIL"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
