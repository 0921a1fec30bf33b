"""`st2bridge doctor`: one command that checks what the bridge needs and says,
for each problem, how to fix it. Exit 0 only when all is well.

    config     readable and valid
    store      reachable, writable, at this version's schema
    engine     API reachable (and authenticated with Keystone when it is on)
    clock      skew between this host and the engine (the engine's Date header)
    callbacks  the callback URL reachable *from the engine*: a real self-test
               execution whose webhook must reach a tracker (Mistral 23's
               [action_std_http] denied_cidrs blocks loopback webhooks by default)
    trackers   at least one results tracker alive
    stuck      no execution flagged stuck
"""

import time
import uuid

from st2bridge import app, config, errors, registry, workflow
from st2bridge.cli import output
from st2bridge.text import one_line

SELF_TEST = """version: '2.0'
st2bridge_doctor_selftest:
  description: st2bridge doctor's callback self-test (safe to ignore)
  tasks:
    noop:
      action: std.noop
"""
CLOCK_SKEW_LIMIT = 5.0  # seconds: the stuck rules compare engine times with ours
TRACKER = "st2bridge-resultstracker"


def add_parser(commands):
    doctor = commands.add_parser(
        "doctor", help="check config, store, engine, callbacks, trackers, clocks, stuck executions"
    )
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument(
        "--callback-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long the callback self-test waits for the engine's webhook (default 20)",
    )
    doctor.add_argument(
        "--skip-callback-test",
        action="store_true",
        help="do not run the self-test execution on the engine",
    )
    doctor.set_defaults(handler=cmd_doctor, loads_config=True)


class Checks:
    def __init__(self):
        self.rows = []

    def add(self, check, state, detail, fix=None):
        self.rows.append({"check": check, "state": state, "detail": detail, "fix": fix})

    @property
    def ok(self):
        return all(r["state"] in ("ok", "skipped") for r in self.rows)


def cmd_doctor(args, oslo_argv):
    """Runs without a loaded config (main() hands over the arguments): a
    broken config is the first thing it reports."""
    checks = Checks()
    try:
        conf = config.load(oslo_argv, require_file=True)
    except errors.ConfigError as exc:
        checks.add(
            "config",
            "FAIL",
            one_line(exc),
            "fix the file and option named (every option: conf/bridge.conf.sample)",
        )
        return report(args, checks)
    app.setup_logging(conf, quiet=True, component=app.logs.command_component("doctor"))
    files = ", ".join(conf.config_file or []) or "defaults (no config file)"
    checks.add("config", "ok", "read and valid: %s" % files)
    store = check_store(conf, checks)
    engine = check_engine(conf, checks)
    if engine is not None:
        check_clock(engine, checks)
    if store is not None and engine is not None:
        if args.skip_callback_test:
            checks.add("callbacks", "skipped", "--skip-callback-test")
        else:
            check_callbacks(conf, store, engine, checks, args.callback_timeout)
    if store is not None:
        check_trackers(conf, store, checks)
        check_stuck(store, checks)
        store.close()
    if engine is not None:
        engine.close()
    return report(args, checks)


def report(args, checks):
    if args.json:
        print(output.dumps({"ok": checks.ok, "checks": checks.rows}))
    else:
        print(output.table(checks.rows, ["check", "state", "detail"]))
        fixes = [r for r in checks.rows if r["state"] not in ("ok", "skipped") and r["fix"]]
        if fixes:
            print("\nto fix:")
            for row in fixes:
                print("  %-10s %s" % (row["check"], row["fix"]))
        print("\nall is well" if checks.ok else "\nproblems found")
    return errors.EXIT_OK if checks.ok else errors.EXIT_FAILED


def check_store(conf, checks):
    where = conf.store.url.split("://")[0]
    try:
        store = app.build_store(conf, create=False)  # a check never creates a store
    except errors.StoreVersionMismatch as exc:
        checks.add("store", "FAIL", one_line(exc), "st2bridge db-upgrade (docs/db-upgrade.md)")
        return None
    except errors.BridgeError as exc:
        checks.add(
            "store",
            "FAIL",
            "%s store unreachable: %s" % (where, one_line(exc)),
            "check [store] url, that the database runs and this user may use it",
        )
        return None
    probe = "st2bridge-doctor-%s" % uuid.uuid4().hex[:8]
    try:
        store.register_service(registry.service_record("st2bridge-doctor", probe, time.time()))
        store.remove_service(probe)
    except errors.StoreError as exc:
        checks.add(
            "store",
            "FAIL",
            "%s store is reachable but not writable: %s" % (where, one_line(exc)),
            "give this user write access to the store (file and directory for SQLite)",
        )
        store.close()
        return None
    checks.add(
        "store",
        "ok",
        "%s store reachable, writable, schema version %s" % (where, store.schema_version()),
    )
    return store


def check_engine(conf, checks):
    engine = app.build_engine(conf, retry=False)
    keystone = conf.engine.auth_type == "keystone"
    try:
        engine.ping()
    except errors.EngineAuthError as exc:
        checks.add(
            "engine",
            "FAIL",
            "%s answers but refuses our credentials: %s" % (engine.display_url, one_line(exc)),
            "check the [engine] keystone options (auth_url, username, password, project)"
            if keystone
            else "check [engine] auth_token (or set auth_type = keystone)",
        )
        engine.close()
        return None
    except errors.BridgeError as exc:
        checks.add(
            "engine",
            "FAIL",
            "%s: %s" % (engine.display_url, one_line(exc)),
            "check [engine] api_url and that Mistral's API runs "
            "(mistral-server --server api,engine,executor,notifier)",
        )
        engine.close()
        return None
    checks.add(
        "engine",
        "ok",
        "%s answers%s" % (engine.display_url, ", authenticated with Keystone" if keystone else ""),
    )
    return engine


def check_clock(engine, checks):
    offset = engine.clock_offset()
    if offset is None:
        checks.add("clock", "skipped", "the engine sends no Date header")
    elif abs(offset) > CLOCK_SKEW_LIMIT:
        checks.add(
            "clock",
            "FAIL",
            "the engine's clock is %+.0f s from ours" % offset,
            "run time synchronisation (chrony, systemd-timesyncd) on both hosts",
        )
    else:
        checks.add("clock", "ok", "skew %+.1f s (within ±%g s)" % (offset, CLOCK_SKEW_LIMIT))


def check_callbacks(conf, store, engine, checks, timeout):
    """A real execution with the bridge's own webhook: does the engine's
    notifier reach a tracker's listener?"""
    if conf.resultstracker.mode == "poll":
        checks.add("callbacks", "skipped", "[resultstracker] mode = poll: no callbacks are used")
        return
    url = config.callback_url(conf)
    runner = app.build_runner(conf, engine, store)
    try:
        wf = workflow.parse(SELF_TEST, "<doctor self-test>")
        record = runner.start(wf, "st2bridge_doctor_selftest", {})
    except errors.BridgeError as exc:
        checks.add(
            "callbacks",
            "FAIL",
            "could not run the self-test execution: %s" % one_line(exc),
            "see the engine check above; the engine must accept a std.noop workflow",
        )
        return
    deadline = time.monotonic() + timeout
    ended = None
    while time.monotonic() < deadline:
        current = store.get_execution(record["id"])
        if current.get("last_event_at"):
            checks.add(
                "callbacks",
                "ok",
                "the engine's webhook reached %s (self-test execution %s)" % (url, record["id"]),
            )
            return
        if ended is None:
            state = engine.get_execution(record["engine_execution_id"], fields=["state"])
            if state.get("state") in ("SUCCESS", "ERROR", "CANCELLED"):
                ended = time.monotonic()
        if ended is not None and time.monotonic() - ended > 5:
            break  # it ran; a callback would have come by now
        time.sleep(0.3)
    checks.add(
        "callbacks",
        "FAIL",
        "no webhook from the engine reached %s within %.0f s (self-test execution %s%s)"
        % (url, timeout, record["id"], ", which the engine ran" if ended else ""),
        "the URL must be reachable from the engine host and a tracker must listen on it "
        "([callback] url / host / port); Mistral 23 refuses webhooks to loopback and private "
        "addresses listed in its [action_std_http] denied_cidrs (127.0.0.0/8 by default): set "
        "`denied_cidrs =` (or a list without the callback's address) in mistral.conf and "
        "restart Mistral's notifier",
    )


def check_trackers(conf, store, checks):
    now = time.time()
    alive, stale = 0, 0
    for service in store.list_services():
        if service.get("name") != TRACKER:
            continue
        state, _ = registry.liveness(service, now, conf.resultstracker.heartbeat_interval)
        alive += state == "alive"
        stale += state != "alive"
    if alive:
        checks.add(
            "trackers",
            "ok",
            "%d alive%s" % (alive, ", %d stale (dead or hung)" % stale if stale else ""),
        )
    else:
        checks.add(
            "trackers",
            "FAIL",
            "no results tracker alive%s" % (" (%d stale)" % stale if stale else ""),
            "start one: st2bridge-resultstracker (packaging/: systemctl start "
            "st2bridge-resultstracker); its log says why it stopped",
        )


def check_stuck(store, checks):
    counts = store.count_stuck()
    if not counts:
        checks.add("stuck", "ok", "no execution flagged stuck")
        return
    checks.add(
        "stuck",
        "FAIL",
        "flagged stuck: %s"
        % ", ".join("%d %s" % (n, signature) for signature, n in sorted(counts.items())),
        "st2bridge execution list --stuck, then st2bridge execution recover ID",
    )
