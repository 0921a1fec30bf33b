"""Configuration: every option the bridge reads, registered with oslo.config.

`load()` parses the command line and config files and validates every value
up front, so a bad file fails at start with one line naming the file and the
option instead of at the first use deep inside a daemon.
"""

import argparse
import ast

from oslo_config import cfg

from st2bridge import conffile, errors
from st2bridge.text import one_line

DEFAULT_CONFIG_FILE = "/etc/st2bridge/bridge.conf"
DEFAULT_CONFIG_DIR = "/etc/st2bridge/bridge.conf.d"
NO_CONFIG = (
    "no config file: looked for %s and %s/*.conf; pass one with --config-file PATH "
    "(or set ST2BRIDGE_CONFIG_FILE=PATH)" % (DEFAULT_CONFIG_FILE, DEFAULT_CONFIG_DIR)
)

default_opts = [
    cfg.StrOpt(
        "state_path",
        default="/var/lib/st2bridge",
        help="Directory for the embedded store and other state.",
    ),
    cfg.StrOpt(
        "log_level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        mutable=True,
        help="Log level of the bridge's commands and daemons. A daemon "
        "re-reads it from its config files on SIGHUP.",
    ),
    cfg.StrOpt(
        "log_dir",
        help="Directory for log files, one per component "
        "(st2bridge-resultstracker.log, st2bridge.log, "
        "st2bridge-db-upgrade.log); reopened after logrotate moves "
        "them. Unset: log to stderr (journald under systemd).",
    ),
    cfg.BoolOpt(
        "interpolation",
        default=False,
        help="Expand $option and ${option} in values read from the config "
        "files (oslo.config's rules; $$ is then a literal $). Off: every "
        "value is taken literally, so a password may hold a $.",
    ),
    cfg.StrOpt(
        "concurrency",
        default="eventlet",
        choices=["eventlet", "threading"],
        help="How the daemons (st2bridge-resultstracker, st2bridge-api) run "
        "their work: eventlet (green threads in one OS thread, the default) or "
        "threading (native threads, with waitress as the HTTP server). Choose "
        "threading where a call may block a whole process under eventlet: "
        "several trackers on one SQLite file, whose lock waits block the OS "
        "thread. Read at start; a restart applies a change.",
    ),
    cfg.ListOpt(
        "secret_input_keys",
        default=[],
        help="More workflow input keys whose values are secrets, masked in "
        "command output, the web view, logs and collect-logs (keys with "
        "password, passwd, token, secret, key or credential in their name "
        "are masked anyway).",
    ),
]

engine_opts = [
    cfg.URIOpt(
        "api_url",
        default="http://127.0.0.1:8989/v2",
        schemes=["http", "https"],
        help="Base URL of Mistral's REST API v2.",
    ),
    cfg.FloatOpt(
        "connect_timeout",
        default=5.0,
        min=0.1,
        help="Seconds to wait for a connection to the engine.",
    ),
    cfg.FloatOpt(
        "read_timeout", default=30.0, min=0.1, help="Seconds to wait for the engine's answer."
    ),
    cfg.StrOpt(
        "auth_token", secret=True, help="Static token sent as X-Auth-Token (none when unset)."
    ),
    cfg.FloatOpt(
        "definition_cache_seconds",
        default=60.0,
        min=0.0,
        help="How long a long-lived runner trusts a workflow definition it "
        "registered without reading it back from the engine (0: read it "
        "on every start). A definition deleted in the engine meanwhile is "
        "registered again when the submit is rejected.",
    ),
    cfg.StrOpt(
        "namespace",
        default="",
        help="Mistral namespace of the workflows `st2bridge run` registers and "
        "starts, unless --namespace names another (empty: the default one).",
    ),
    cfg.StrOpt("cacert", help="CA bundle to verify the engine's TLS certificate."),
    cfg.BoolOpt("insecure", default=False, help="Do not verify the engine's TLS certificate."),
    cfg.IntOpt(
        "retry_exp_msec",
        default=1000,
        min=0,
        help="First back-off delay after a failed engine request (ms).",
    ),
    cfg.IntOpt(
        "retry_exp_max_msec",
        default=30000,
        min=0,
        help="Longest back-off delay between retries (ms).",
    ),
    cfg.IntOpt(
        "retry_stop_max_msec",
        default=120000,
        min=0,
        help="Give up retrying an engine request after this long (ms); 0 never retries. "
        "The tracker's budget; commands use interactive_retry_seconds.",
    ),
    cfg.FloatOpt(
        "interactive_retry_seconds",
        default=5.0,
        min=0.0,
        help="How long a command a person waits on (run, execution tasks, cancel, "
        "task rerun, ...) retries an engine that does not answer before it fails "
        "with one line; also the longest wait for a connection.",
    ),
    cfg.StrOpt(
        "auth_type",
        default="token",
        choices=["token", "keystone"],
        help="token: send auth_token as is (or nothing). keystone: get "
        "tokens from Keystone with a password (needs the "
        "st2bridge[keystone] extra) and renew them before they expire.",
    ),
    cfg.URIOpt(
        "auth_url",
        schemes=["http", "https"],
        help="Keystone's identity API, e.g. http://keystone:5000/v3 (auth_type = keystone).",
    ),
    cfg.StrOpt("username", help="Keystone user (auth_type = keystone)."),
    cfg.StrOpt(
        "password", secret=True, help="Keystone password (auth_type = keystone); never logged."
    ),
    cfg.StrOpt("project_name", help="Keystone project to scope tokens to."),
    cfg.StrOpt("user_domain_name", default="Default", help="Domain of the user."),
    cfg.StrOpt("project_domain_name", default="Default", help="Domain of the project."),
    cfg.FloatOpt(
        "token_renew_margin",
        default=300.0,
        min=0.0,
        help="Get a new Keystone token this many seconds before the "
        "current one expires (and once on a 401).",
    ),
]

store_opts = [
    cfg.StrOpt(
        "url",
        default="sqlite:///$state_path/bridge.db",
        help="Where the bridge keeps its state: sqlite:///PATH selects the "
        "embedded store, mongodb://HOST/DB a MongoDB server.",
        secret=True,
    ),  # a MongoDB URL may carry a password
    cfg.FloatOpt(
        "busy_timeout", default=10.0, min=0.0, help="Seconds to wait for a locked embedded store."
    ),
    cfg.FloatOpt(
        "checkpoint_interval",
        default=60.0,
        min=0.0,
        help="Copy the embedded store's write-ahead log into the store file at least "
        "this often (seconds; 0: only by size), so the file itself holds the data.",
    ),
    cfg.FloatOpt(
        "checkpoint_wal_mb",
        default=16.0,
        min=0.0,
        help="Also copy it when the write-ahead log grows past this many MB (0: only by time).",
    ),
    cfg.FloatOpt(
        "connect_timeout", default=5.0, min=0.1, help="Seconds to wait for the MongoDB server."
    ),
]

resultstracker_opts = [
    cfg.StrOpt(
        "mode",
        default="hybrid",
        choices=["poll", "callback", "hybrid"],
        help="How results are tracked: poll the engine, take its "
        "callbacks, or callbacks with polling as the safety net.",
    ),
    cfg.FloatOpt(
        "query_interval",
        default=5.0,
        min=0.05,
        help="Seconds between two polls of one running execution.",
    ),
    cfg.IntOpt(
        "thread_pool_size",
        default=10,
        min=1,
        help="Engine queries in flight at once (green threads).",
    ),
    cfg.FloatOpt(
        "jitter_interval",
        default=0.1,
        min=0.0,
        help="Up to this many seconds are added at random to each "
        "poll's due time, so polls spread out.",
    ),
    cfg.IntOpt(
        "batch_size",
        default=1000,
        min=1,
        help="Most executions one tracker claims in one pass; a batch "
        "is checked with one change listing.",
    ),
    cfg.FloatOpt(
        "batch_window",
        default=0.25,
        min=0.0,
        help="Wait this long past the first due time before claiming, "
        "so executions due close together share one change "
        "listing (adds at most this much lateness).",
    ),
    cfg.FloatOpt(
        "sync_overlap",
        default=3.0,
        min=1.0,
        help="Seconds a change listing reaches back before the last "
        "one: covers the engine's one-second timestamps, commit "
        "delays and clock skew between bridge and engine.",
    ),
    cfg.FloatOpt(
        "verify_interval",
        default=300.0,
        min=1.0,
        help="Fetch each execution on its own at least this often, to "
        "notice one the engine deleted or expired.",
    ),
    cfg.FloatOpt(
        "lease_seconds",
        default=60.0,
        min=1.0,
        help="How long a claim on an execution lasts before another "
        "tracker may take it over (renewed by the heartbeat).",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=5.0,
        min=0.1,
        help="Seconds between two heartbeats in the service registry.",
    ),
    cfg.FloatOpt(
        "drain_timeout",
        default=20.0,
        min=0.0,
        help="On SIGTERM, wait this long for in-flight checks.",
    ),
    cfg.FloatOpt(
        "stale_after",
        default=30.0,
        min=0.1,
        help="In hybrid mode, poll an execution only after it has "
        "sent no callback for this many seconds: a lost callback "
        "costs at most this long.",
    ),
]

callback_opts = [
    cfg.HostAddressOpt("host", default="127.0.0.1", help="Address the callback listener binds to."),
    cfg.PortOpt("port", default=9101, help="Port of the callback listener."),
    cfg.URIOpt(
        "url",
        schemes=["http", "https"],
        help="URL the engine posts callbacks to (default: built from host and port).",
    ),
    cfg.IntOpt(
        "max_body",
        default=8 * 1024 * 1024,
        min=1024,
        help="Largest callback body taken (bytes), once its secret header is "
        "checked (an unauthenticated body is never read). A larger one is "
        "answered 413, logged and counted, and the execution is checked with "
        "the engine at once instead.",
    ),
    cfg.BoolOpt(
        "task_events",
        default=True,
        help="Also ask the engine for task events, which keep an execution's "
        "task view current while it runs. Off: the engine posts two "
        "webhooks per execution (start and end) instead of two per task, "
        "and the task view is read from the engine when the execution ends.",
    ),
]

metrics_opts = [
    cfg.HostAddressOpt(
        "host", default="127.0.0.1", help="Address the tracker's Prometheus endpoint binds to."
    ),
    cfg.PortOpt(
        "port", default=9102, help="Port of the Prometheus endpoint (GET /metrics); 0 disables it."
    ),
]

web_opts = [
    cfg.HostAddressOpt(
        "host",
        default="127.0.0.1",
        help="Address the tracker's web view of executions "
        "binds to. Any address other than a loopback one needs "
        "a token.",
    ),
    cfg.PortOpt(
        "port", default=9103, help="Port of the web view (GET /executions); 0 disables it."
    ),
    cfg.StrOpt(
        "token",
        secret=True,
        help="Token the web view requires (header Authorization: Bearer "
        "TOKEN, or ?token=TOKEN once, which sets a cookie). Required "
        "when host is not a loopback address.",
    ),
]

api_opts = [
    cfg.HostAddressOpt(
        "host",
        default="127.0.0.1",
        help="Address st2bridge-api binds to. Every request but GET /v1/health "
        "needs an API key (st2bridge apikey create).",
    ),
    cfg.PortOpt("port", default=9104, help="Port of st2bridge-api."),
    cfg.IntOpt(
        "max_body",
        default=1048576,
        min=1024,
        help="Largest request body accepted (bytes); larger ones get 413.",
    ),
    cfg.IntOpt(
        "max_connections",
        default=1024,
        min=8,
        help="Connections served at once (streams included).",
    ),
    cfg.FloatOpt(
        "poll_interval",
        default=0.01,
        min=0.001,
        help="Seconds between two reads of the store's change log (the stream "
        "and webhooks learn of a change within this long).",
    ),
    cfg.FloatOpt(
        "stream_window",
        default=3600.0,
        min=60.0,
        help="How long the change log keeps entries, so that a stream client "
        "reconnecting with Last-Event-ID gets what it missed (entries not yet "
        "turned into notifications are kept longer).",
    ),
    cfg.FloatOpt(
        "stream_keepalive",
        default=15.0,
        min=0.1,
        help="Seconds between keep-alive comments on an idle stream.",
    ),
    cfg.FloatOpt(
        "engine_retry_seconds",
        default=5.0,
        min=0.0,
        help="How long a request waits for an engine that does not answer "
        "(retries included) before it is answered 503.",
    ),
    cfg.StrOpt(
        "rules_dir",
        default="/etc/st2bridge/rules.d",
        help="Folder of the alarm rules (*.yaml): which events start which "
        "workflows. Re-read on SIGHUP (st2bridge rule validate checks a file).",
    ),
    cfg.DictOpt(
        "event_secrets",
        default={},
        secret=True,
        help="Per-source secrets of signed events (X-St2bridge-Signature, "
        "HMAC-SHA256 over TIMESTAMP.BODY), e.g. 'webhook/github:SECRET,aodh:SECRET2'; "
        "keys: alertmanager, aodh, webhook/NAME. Without one a source must send an API key.",
    ),
    cfg.FloatOpt(
        "event_retention",
        default=7 * 86400.0,
        min=3600.0,
        help="How long processed events are kept (st2bridge event list/get), in seconds.",
    ),
]

notify_opts = [
    cfg.ListOpt(
        "urls",
        default=[],
        help="Webhook sinks every execution's end is POSTed to (besides the "
        "sinks given at start in `notify`).",
    ),
    cfg.StrOpt(
        "secret",
        secret=True,
        help="Secret the requests to [notify] urls are signed with "
        "(X-St2bridge-Signature); required when urls is set.",
    ),
    cfg.BoolOpt(
        "every_status",
        default=False,
        help="Also POST every status change to [notify] urls, not only the end.",
    ),
    cfg.FloatOpt(
        "retry_first_seconds",
        default=1.0,
        min=0.01,
        help="Wait before the second attempt of a failed delivery; doubled after "
        "each further failure.",
    ),
    cfg.FloatOpt(
        "retry_max_seconds",
        default=300.0,
        min=0.01,
        help="Longest wait between two attempts of one delivery.",
    ),
    cfg.FloatOpt(
        "deadline_seconds",
        default=86400.0,
        min=1.0,
        help="Give up a delivery this long after it was made: it is kept as "
        "failed (st2bridge notification list, resend).",
    ),
    cfg.FloatOpt("timeout", default=10.0, min=0.1, help="Seconds to wait for a sink's answer."),
    cfg.FloatOpt(
        "lease_seconds",
        default=60.0,
        min=1.0,
        help="How long a claimed delivery is held by its API process before "
        "another may send it (after a crash: it is sent again).",
    ),
]

stuck_opts = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Watch tracked executions for the signatures of a stuck engine (lost action, lost "
        "result, lost continuation, no progress; docs/operations.md) and flag them.",
    ),
    cfg.FloatOpt(
        "probe_after",
        default=30.0,
        min=0.0,
        help="An execution the bridge has seen no change of for this long is a suspect: the "
        "engine is asked for its task tree (one request). Others cost no request.",
    ),
    cfg.FloatOpt(
        "probe_interval",
        default=60.0,
        min=0.1,
        help="Longest time between two looks at one suspect (sooner when a rule could fire "
        "sooner).",
    ),
    cfg.FloatOpt(
        "heartbeat_timeout",
        default=90.0,
        min=0.1,
        help="A RUNNING action execution whose last heartbeat is older than this has lost its "
        "executor. Mistral's executor sends one per [action_heartbeat] check_interval (20 s), "
        "and a busy engine records them late: keep a few intervals of margin. Below "
        "check_interval x max_missed_heartbeats (300 s), where Mistral fails it itself.",
    ),
    cfg.FloatOpt(
        "unstarted_timeout",
        default=300.0,
        min=0.1,
        help="A RUNNING action execution no executor ever sent a heartbeat for is lost after "
        "this long (executors busy with a backlog delay the first heartbeat legitimately).",
    ),
    cfg.FloatOpt(
        "result_grace",
        default=60.0,
        min=0.0,
        help="A task still RUNNING this long after all its action executions or sub-workflows "
        "ended has lost its result (also the grace past a task's own timeout).",
    ),
    cfg.FloatOpt(
        "continuation_grace",
        default=60.0,
        min=0.0,
        help="A workflow still RUNNING this long after its last task change, with no task "
        "running, waiting or delayed, has lost its continuation.",
    ),
    cfg.FloatOpt(
        "no_progress_after",
        default=0.0,
        min=0.0,
        help="A running task without a state change for this long makes no progress (0: no "
        "fixed bound; see learn_from_history).",
    ),
    cfg.BoolOpt(
        "learn_from_history",
        default=True,
        help="Learn each task's no-progress bound from the store: history_factor x the p99 of "
        "its durations in the last history_runs succeeded executions of its workflow.",
    ),
    cfg.IntOpt("history_runs", default=50, min=1, help="Succeeded executions to learn from."),
    cfg.IntOpt(
        "history_min_runs",
        default=5,
        min=1,
        help="Fewer succeeded runs of a task than this: no learnt bound for it.",
    ),
    cfg.FloatOpt("history_factor", default=3.0, min=1.0, help="The learnt bound is this x p99."),
    cfg.FloatOpt(
        "history_floor",
        default=60.0,
        min=0.0,
        help="A learnt bound is never below this (short tasks vary a lot in relative terms).",
    ),
    cfg.ListOpt(
        "async_actions",
        default=["std.async_noop", "std.mistral_http"],
        help="Asynchronous actions: completed from outside, they send no heartbeats while "
        "they wait, so only their task's timeout applies.",
    ),
    cfg.FloatOpt(
        "max_probes_per_second",
        default=10.0,
        min=0.1,
        help="Engine reads the watch makes per second at most, per tracker; suspects beyond "
        "it wait for a later pass.",
    ),
]

db_upgrade_opts = [
    cfg.StrOpt(
        "engine_config_file",
        default="/etc/mistral/mistral.conf",
        help="The engine's (Mistral's) config file: the migration commands "
        "get it as {engine_config_file}.",
    ),
    cfg.StrOpt(
        "engine_connection",
        secret=True,
        help="SQLAlchemy URL of the engine's database (default: [database] "
        "connection of engine_config_file).",
    ),
    cfg.StrOpt(
        "scratch_connection",
        secret=True,
        help="SQLAlchemy URL of a server where db-upgrade may create and drop "
        "a scratch database to build the expected schema (default: the "
        "engine database's server and credentials).",
    ),
    cfg.StrOpt(
        "manage_command",
        default="mistral-db-manage --config-file {engine_config_file}",
        help="The engine's migration tool; db-upgrade appends `history` to "
        "learn the head revision and `upgrade REV` to build the expected "
        "schema in the scratch database.",
    ),
    cfg.MultiStrOpt(
        "migrate_commands",
        default=[
            "mistral-db-manage --config-file {engine_config_file} upgrade head",
            "mistral-db-manage --config-file {engine_config_file} populate",
        ],
        help="Commands that migrate the engine's database, run in order "
        "(repeat the option for each).",
    ),
    cfg.StrOpt(
        "autocreate_command",
        default='python3 -c "import sys; from oslo_config import cfg; '
        "cfg.CONF(['--config-file', sys.argv[1]], project='mistral'); "
        'from mistral.db.v2 import api; api.setup_db()" {engine_config_file}',
        help="What the engine's services do to a database on start (create the "
        "missing tables, write their first rows). db-upgrade runs it in the "
        "scratch database: rows in an auto-created table that equal the rows "
        "it writes (timestamps aside) are recreated by the migrations and are "
        "not data at risk. Empty: every row counts as data.",
    ),
    cfg.FloatOpt(
        "command_timeout",
        default=1800.0,
        min=1.0,
        help="Seconds one migration command may run before it is stopped.",
    ),
    cfg.BoolOpt(
        "check_systemd",
        default=True,
        help="Refuse while a systemd unit of the target is active (where systemd runs).",
    ),
    cfg.ListOpt(
        "engine_systemd_units",
        default=[
            "mistral.service",
            "mistral-api.service",
            "mistral-engine.service",
            "mistral-executor.service",
            "mistral-notifier.service",
            "mistral-event-engine.service",
        ],
        help="systemd units of the engine's services.",
    ),
    cfg.ListOpt(
        "bridge_systemd_units",
        default=["st2bridge-resultstracker.service", "st2bridge-api.service"],
        help="systemd units of the bridge's daemons.",
    ),
    cfg.BoolOpt(
        "check_processes",
        default=True,
        help="Refuse while a process of the target that uses its database "
        "runs (matched on the command line).",
    ),
    cfg.ListOpt(
        "engine_process_patterns",
        default=[
            "mistral-server",
            "mistral-api",
            "mistral-engine",
            "mistral-executor",
            "mistral-notifier",
            "mistral-event-engine",
            r"mistral\.cmd\.launch",
        ],
        help="Regular expressions matched against process command lines "
        "to find the engine's services.",
    ),
    cfg.ListOpt(
        "bridge_process_patterns",
        default=[
            "st2bridge-resultstracker",
            r"st2bridge\.tracker\.daemon",
            "st2bridge-api",
            r"st2bridge\.api\.daemon",
        ],
        help="Regular expressions matched against process command lines "
        "to find the bridge's daemons.",
    ),
    cfg.BoolOpt(
        "check_engine_api",
        default=True,
        help="Refuse while the engine API answers (engine_api_url).",
    ),
    cfg.URIOpt(
        "engine_api_url",
        schemes=["http", "https"],
        help="The engine API to probe (default: [engine] api_url).",
    ),
    cfg.BoolOpt(
        "check_heartbeats",
        default=True,
        help="Refuse while a bridge daemon's heartbeat in the store's service registry is live.",
    ),
    cfg.FloatOpt(
        "heartbeat_stale_after",
        default=60.0,
        min=1.0,
        help="A heartbeat older than this many seconds is a dead service.",
    ),
    cfg.FloatOpt(
        "lock_timeout",
        default=60.0,
        min=0.0,
        help="Seconds to wait for another db-upgrade's database lock (0: refuse at once).",
    ),
    cfg.StrOpt(
        "export_dir",
        default="$state_path/db-upgrade",
        help="Where --force writes the rows of objects it drops.",
    ),
]

GROUPS = [
    (None, default_opts),
    ("engine", engine_opts),
    ("store", store_opts),
    ("resultstracker", resultstracker_opts),
    ("callback", callback_opts),
    ("metrics", metrics_opts),
    ("web", web_opts),
    ("api", api_opts),
    ("notify", notify_opts),
    ("stuck", stuck_opts),
    ("db_upgrade", db_upgrade_opts),
]


def list_opts():
    """Entry point for oslo-config-generator (namespace st2bridge)."""
    return [("DEFAULT" if group is None else group, opts) for group, opts in GROUPS]


class BridgeConfigOpts(cfg.ConfigOpts):
    """oslo.config's ConfigOpts, with the files read by st2bridge.conffile.

    oslo parses only the command line; the files' sections are added to its
    namespace here, on the first parse and on every reload
    (mutate_config_files), so a reload reads them the same way.
    `config_file`/`config_dir` are the files and directory actually used."""

    def __init__(self):
        super().__init__()
        self.config_file = []
        self.config_dir = None
        self.warnings = []
        self.parsed_files = []
        self.sources = ([], None, [], [])  # files, dir, default files, default dirs

    def _parse_config_files(self):
        namespace = super()._parse_config_files()
        self.config_file = conffile.resolve(*self.sources)
        warnings = []
        parsed = [conffile.read(path, warnings) for path in self.config_file]
        interpolate = conffile.interpolation_wanted(parsed)
        known = {
            "DEFAULT" if group is None else group: {opt.dest for opt in opts}
            for group, opts in GROUPS
        }
        secret = {
            ("DEFAULT" if group is None else group, opt.dest)
            for group, opts in GROUPS
            for opt in opts
            if opt.secret
        }
        for one in parsed:
            conffile.check(one, known, secret, interpolate, warnings)
            # Private oslo.config API (stable since oslo.config 1.x): how its
            # own reader stores a parsed file; later files win.
            namespace._add_parsed_config_file(one.path, *conffile.for_oslo(one, interpolate))
        self.warnings = warnings
        self.parsed_files = parsed
        return namespace


def new_config():
    """A fresh ConfigOpts with every bridge option registered."""
    conf = BridgeConfigOpts()
    for group, opts in GROUPS:
        conf.register_opts(opts, group=group)
    return conf


def _split_argv(argv):
    """(--config-file values, --config-dir value, the other arguments)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--config-dir")
    known, rest = parser.parse_known_args(list(argv))
    return known.config_file, known.config_dir, rest


def load(argv=(), conf=None, prog="st2bridge", config_files=None, require_file=False):
    """Parse argv and the config files; validate every option.

    `config_files`: the files read when argv names none (default: the
    default file, when it exists). `require_file`: a ConfigError saying
    where files were looked for when there is none at all (a command must
    not run on defaults by accident: it would create state where nobody
    expects it). Warnings about the files (unknown options, ...) are in
    `conf.warnings` (logged by st2bridge.logs.setup).

    Raises ConfigError with a one-line message naming the file and option.
    """
    conf = conf or new_config()
    files, config_dir, rest = _split_argv(argv)
    conf.sources = (
        files,
        config_dir,
        [DEFAULT_CONFIG_FILE] if config_files is None else config_files,
        [DEFAULT_CONFIG_DIR],
    )
    conf.config_dir = config_dir
    if require_file and not conffile.resolve(*conf.sources):
        raise errors.ConfigError(NO_CONFIG)
    conf(
        rest,
        project="st2bridge",
        prog=prog,
        default_config_files=[],
        default_config_dirs=[],
        use_env=False,
    )
    _validate(conf)
    _check_web(conf)
    _check_notify(conf)
    return conf


def _check_notify(conf):
    """Global sinks are signed: a secret is needed, and the URLs must be http(s)."""
    import urllib.parse

    for url in conf.notify.urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ConfigError(
                "invalid value for [notify] urls: %s is not an http(s) URL" % url
            )
    if conf.notify.urls and not conf.notify.secret:
        raise errors.ConfigError("[notify] secret is required when [notify] urls is set")


def reread(conf):
    """A new configuration from the same files (and directory) as `conf`,
    validated: a reload checks the files with it before applying them."""
    fresh = new_config()
    files, config_dir, default_files, _dirs = conf.sources
    argv = [a for path in files for a in ("--config-file", path)]
    if config_dir:
        argv += ["--config-dir", config_dir]
    return load(argv, conf=fresh, config_files=default_files)


def is_loopback(host):
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_web(conf):
    """The web view shows inputs and outputs: off loopback only with a token."""
    if conf.web.port and not is_loopback(conf.web.host) and not conf.web.token:
        raise errors.ConfigError(
            "[web] token is required when [web] host (%s) is not a loopback address" % conf.web.host
        )


def _validate(conf):
    """oslo.config checks values lazily; read each one now to fail early.
    Messages never quote a value of a secret option."""
    for group, opts in GROUPS:
        node = conf if group is None else conf[group]
        name = group or "DEFAULT"
        for opt in opts:
            try:
                getattr(node, opt.dest)
            except (cfg.ConfigFileValueError, ValueError) as exc:
                reason = "not a valid value" if opt.secret else _oslo_reason(exc)
                raise errors.ConfigError(
                    "invalid value for [%s] %s%s: %s"
                    % (name, opt.name, _files_setting(conf, name, opt.dest), reason)
                ) from None
            except (cfg.TemplateSubstitutionError, cfg.NoSuchOptError, cfg.NoSuchGroupError):
                raise errors.ConfigError(
                    "invalid value for [%s] %s%s: a $ names no option; write $$ for a "
                    "literal $ (or set [DEFAULT] interpolation = false)"
                    % (name, opt.name, _files_setting(conf, name, opt.dest))
                ) from None


def _files_setting(conf, group, name):
    """' in FILE' for the last file that sets group.name, or '' if unknown."""
    for parsed in reversed(getattr(conf, "parsed_files", None) or []):
        for section, key in parsed.lines:
            normal = section if section == "DEFAULT" else section.lower()
            if normal == group and key.replace("-", "_") == name:
                return " in %s" % parsed.path
    return ""


def _oslo_reason(exc):
    """oslo wraps the reason in 'Value for option X from LocationInfo(...) is
    not valid: REASON'; the operator only needs REASON."""
    text = one_line(exc)
    reason = text.split(" is not valid: ", 1)[-1]
    if reason.startswith("("):  # URIOpt gives the repr of a tuple (message, ...)
        try:
            reason = str(ast.literal_eval(reason)[0])
        except (ValueError, SyntaxError, TypeError, IndexError):
            pass
    return reason or exc.__class__.__name__


def callback_url(conf):
    """The URL the engine should post callbacks to."""
    if conf.callback.url:
        return conf.callback.url.rstrip("/")
    return "http://%s:%d" % (conf.callback.host, conf.callback.port)
