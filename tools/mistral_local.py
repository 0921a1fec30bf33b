#!/usr/bin/env python3
"""Install, configure, start and stop a real local Mistral 23 engine (st2bridge development and tests).

Usage (Python 3.10+, stdlib only; options go before or after the command):
    python3 tools/mistral_local.py up      [options]  # install + start; a quick no-op when already up
    python3 tools/mistral_local.py install [options]  # venv + pip install mistral==23.0.0 (once per machine)
    python3 tools/mistral_local.py start   [options]  # broker vhost, config, schema, start, wait for the API
    python3 tools/mistral_local.py stop    [options]  # SIGTERM the process group, SIGKILL after 20 s
    python3 tools/mistral_local.py status  [options]  # exit 0 when up, 3 when down
    python3 tools/mistral_local.py env     [options]  # eval "$(python3 tools/mistral_local.py env)"
    python3 tools/mistral_local.py start --split       # engine and executor as processes of their own
    python3 tools/mistral_local.py kill --component C  # SIGKILL one component of a split instance
    python3 tools/mistral_local.py start-component --component C  # (re)start one component

Options [environment variable; default]:
    --home DIR    instance dir [ST2BRIDGE_MISTRAL_HOME; ${XDG_DATA_HOME:-~/.local/share}/st2bridge/mistral]
    --venv DIR    shared venv [ST2BRIDGE_MISTRAL_VENV; ${XDG_CACHE_HOME:-~/.cache}/st2bridge/mistral-23.0.0-venv]
    --host ADDR   API address [ST2BRIDGE_MISTRAL_HOST; 127.0.0.1]
    --port N      API port [ST2BRIDGE_MISTRAL_PORT; 8989]
    --vhost NAME  RabbitMQ vhost and PostgreSQL database [ST2BRIDGE_MISTRAL_VHOST; st2bridge-<sha1(home)[:8]>]
    --db KIND     sqlite | postgresql [ST2BRIDGE_MISTRAL_DB; sqlite]
    --timeout S   seconds to wait for the API [ST2BRIDGE_MISTRAL_TIMEOUT; 180]
    --keystone-home DIR  check tokens with the Keystone of this tools/keystone_local.py home:
                  [pecan] auth_enable = True, keystonemiddleware as its `mistral` service user
                  ("none": no authentication) [ST2BRIDGE_MISTRAL_KEYSTONE_HOME; none]
An existing home keeps the host, port, db and Keystone it was started with unless they are given
again, so `stop`, `status` and `env` need only --home. The home holds mistral.conf, mistral.db,
mistral.log and mistral.pid. RabbitMQ (and PostgreSQL for --db postgresql) are installed from
Debian and started when their port is closed. Exit codes: 0 ok, 1 failure, 2 usage error, 3 down
(status).

Split mode (`--split`, for fault tests): the engine and the executor run as processes of their own
(`mistral-server --server engine`, `--server executor`, each in its own process group with its own
pid file and log), the other components together as usual; `kill` and `start-component` act on one
of them (`main`, `engine` or `executor`). Every component also reads `overrides.conf` and its own
`overrides-<component>.conf` from the home when they exist (after mistral.conf: their values win),
so a test can e.g. point only the engine at a relay. Without --split nothing changes.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MISTRAL_VERSION = "23.0.0"
# Every component but the event engine: Mistral 23's event engine spins on
# queue.get_nowait() with no wait (event_engine/default_event_engine.py,
# _loop), burning a whole core while idle. The bridge uses no event triggers.
SERVERS = "api,engine,executor,notifier,periodic"
# Split mode: the component groups, each a process group of its own ("main" keeps mistral.pid).
SPLIT_SERVERS = {"main": "api,notifier,periodic", "engine": "engine", "executor": "executor"}
VENV_NAME = f"mistral-{MISTRAL_VERSION}-venv"
RABBIT_PORT, PG_PORT = 5672, 5432
EXIT_OK, EXIT_FAIL, EXIT_DOWN = 0, 1, 3  # 2 (usage) comes from argparse
# The venv's programs must not see a caller's PYTHONPATH/PYTHONHOME (e.g. st2bridge's own
# environment).
VENV_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


class Failure(Exception):
    """A step failed; main() prints the message as one line and exits 1."""


def say(msg: str) -> None:
    print(f"[mistral-local] {msg}", flush=True)


def run(
    cmd: list[str], check: bool = True, quiet: bool = False, **kw
) -> subprocess.CompletedProcess:
    """Run a command; quiet=True captures its output and shows it only when the command fails."""
    if quiet:
        kw.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc = subprocess.run(cmd, text=True, stdin=subprocess.DEVNULL, **kw)
    if check and proc.returncode != 0:
        if quiet and proc.stdout:
            sys.stdout.write(proc.stdout[-3000:])
        raise Failure(f"command failed (exit {proc.returncode}): {shlex.join(cmd)}")
    return proc


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise Failure(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(1)


def cmdline(pid: int | str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def group_members(pgid: int) -> list[int]:
    """Live pids of a process group; zombies do not count (this machine's init reaps them slowly)."""
    try:
        os.killpg(pgid, 0)  # the cheap answer when nothing at all is left
    except ProcessLookupError:
        return []
    members = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):  # not a pid dir, or gone meanwhile
            continue
        if int(pgrp) == pgid and state != "Z":
            members.append(int(name))
    return members


class Instance:
    """Settings, paths and processes of one Mistral instance (one home dir)."""

    def __init__(self, a: argparse.Namespace):
        self.home = Path(a.home).expanduser().resolve()
        self.venv = Path(a.venv).expanduser().absolute()
        self.host, self.port, self.db, self.timeout = a.host, a.port, a.db, a.timeout
        self.vhost = a.vhost or "st2bridge-" + hashlib.sha1(str(self.home).encode()).hexdigest()[:8]
        self.conf, self.log = self.home / "mistral.conf", self.home / "mistral.log"
        self.pidfile, self.sqlite = self.home / "mistral.pid", self.home / "mistral.db"
        self.url = f"http://{self.host}:{self.port}/v2"
        self.transport_url = f"rabbit://guest:guest@127.0.0.1:{RABBIT_PORT}/{self.vhost}"
        self.db_url = (
            f"postgresql+psycopg2://postgres@127.0.0.1:{PG_PORT}/{self.vhost}"
            if self.db == "postgresql"
            else f"sqlite:///{self.sqlite}"
        )
        self.bin = self.venv / "bin"
        self.marker = self.venv / f".st2bridge-mistral-{MISTRAL_VERSION}"
        # {auth_url, username, password, project_name} of Mistral's service user, or None: no auth.
        self.auth = a.auth
        self._token = None  # the service user's token, for api_ok()
        self.api_error = ""  # why api_ok() said no, last time
        self.split_marker = self.home / "split"
        self.split_flag = bool(getattr(a, "split", False))
        self.split = self.split_flag or self.split_marker.exists()
        self.component = getattr(a, "component", None)

    def component_files(self, component: str) -> tuple[Path, Path]:
        """(pid file, log file) of one component ("main" is the usual pair)."""
        if component == "main":
            return self.pidfile, self.log
        return self.home / f"mistral-{component}.pid", self.home / f"mistral-{component}.log"

    def config_args(self, component: str) -> list[str]:
        args = ["--config-file", str(self.conf)]
        for name in ("overrides.conf", f"overrides-{component}.conf"):
            if (self.home / name).exists():
                args += ["--config-file", str(self.home / name)]
        return args

    def component_pid(self, component: str) -> int | None:
        pidfile, _ = self.component_files(component)
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if str(self.conf).encode() in cmdline(pid) else None

    # mistral-server renames its processes (setproctitle): the master becomes "mistral-server:
    # master
    # process [.../mistral-server --server ... --config-file F]", each forked component "mistral-
    # server:
    # ServiceWrapper worker(0)" (no config path); all stay in the master's process group.
    def recorded_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The recorded pid if it is alive and is this instance's mistral-server (not a reused pid)."""
        pid = self.recorded_pid()
        return pid if pid and str(self.conf).encode() in cmdline(pid) else None

    def groups(self) -> set[int]:
        """Process groups holding live processes of this instance, with or without a pid file."""
        found = set()
        pid = self.recorded_pid()
        if pid and any(b"mistral" in cmdline(p) for p in group_members(pid)):
            found.add(pid)  # also finds components orphaned by a master that died
        for name in os.listdir("/proc"):
            args = cmdline(name)
            if str(self.conf).encode() in args and b"mistral-server" in args:
                with contextlib.suppress(OSError, ValueError):  # gone meanwhile
                    found.add(os.getpgid(int(name)))
        return {g for g in found if group_members(g)}

    def api_ok(self) -> bool:
        """GET /v2/workflows answers 200 (with auth: to a token of the service user, which also
        proves that keystonemiddleware validates tokens with Keystone)."""
        request = urllib.request.Request(f"{self.url}/workflows?limit=1")
        try:
            if self.auth:
                self._token = self._token or keystone_token(self.auth)
                request.add_header("X-Auth-Token", self._token)
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status == 200
        except OSError as exc:  # URLError, HTTPError, timeouts and refused connections
            if getattr(exc, "code", None) == 401:
                self._token = None  # expired: a new one next time
            self.api_error = str(exc)
            return False


def keystone_token(auth: dict) -> str:
    """A project-scoped token for auth's user (Keystone v3 password authentication)."""
    domain = {"id": "default"}
    user = {"name": auth["username"], "domain": domain, "password": auth["password"]}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": auth["project_name"], "domain": domain}},
        }
    }
    request = urllib.request.Request(
        auth["auth_url"] + "/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.headers["X-Subject-Token"]


def keystone_auth(keystone_home: str) -> dict:
    """Mistral's service user in a tools/keystone_local.py home (its keystone-local.json)."""
    path = Path(keystone_home).expanduser().resolve() / "keystone-local.json"
    try:
        state = json.loads(path.read_text())
        user = state["users"]["mistral"]
        url = f"http://{state['host']}:{state['port']}/v3"
    except (OSError, ValueError, KeyError):
        raise Failure(
            f"no Keystone set up in {path.parent} (run tools/keystone_local.py up --home there)"
        ) from None
    return {
        "auth_url": url,
        "username": "mistral",
        "password": user["password"],
        "project_name": user["project"],
    }


# ---- install ------------------------------------------------------------------------------------
def pip_install(inst: Instance, *pkgs: str) -> None:
    say(f"pip install {' '.join(pkgs)} into {inst.venv} (pip's output follows)")
    proc = run(
        [str(inst.bin / "pip"), "install", "--disable-pip-version-check", *pkgs],
        check=False,
        env=VENV_ENV,
    )
    if proc.returncode != 0:
        raise Failure(
            f"pip install {' '.join(pkgs)} failed (exit {proc.returncode}); see pip's output above"
        )


def cmd_install(inst: Instance) -> None:
    t0 = time.monotonic()
    if inst.marker.exists() and (inst.bin / "mistral-server").exists():
        say(f"mistral {MISTRAL_VERSION} already installed in {inst.venv}")
    else:
        if not (inst.bin / "python").exists():
            say(f"creating virtualenv {inst.venv} with {sys.executable}")
            inst.venv.parent.mkdir(parents=True, exist_ok=True)
            run([sys.executable, "-m", "venv", str(inst.venv)])
        pip_install(inst, f"mistral=={MISTRAL_VERSION}")
        inst.marker.write_text(
            MISTRAL_VERSION + "\n"
        )  # written last: an interrupted install is redone
        say(f"installed mistral {MISTRAL_VERSION} in {time.monotonic() - t0:.0f} s")
    ensure_db_driver(inst)


def ensure_db_driver(inst: Instance) -> None:
    """The drivers for both engine databases the bridge is tested with (PostgreSQL, MariaDB):
    Mistral's own requirements include neither."""
    for module, package in (("psycopg2", "psycopg2-binary"), ("pymysql", "PyMySQL")):
        if (
            run(
                [str(inst.bin / "python"), "-c", "import " + module],
                check=False,
                quiet=True,
                env=VENV_ENV,
            ).returncode
            != 0
        ):
            pip_install(inst, package)


# ---- services: RabbitMQ and PostgreSQL ----------------------------------------------------------
def apt_install(pkg: str) -> None:
    if os.geteuid() != 0:
        raise Failure(
            f"{pkg} is neither running nor installed; run as root or `apt-get install {pkg}`"
        )
    say(f"installing {pkg} from Debian (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", pkg], env=env)


def ensure_rabbitmq(inst: Instance) -> None:
    if not port_open("127.0.0.1", RABBIT_PORT):
        if not shutil.which("rabbitmq-server"):
            apt_install("rabbitmq-server")
        if not port_open("127.0.0.1", RABBIT_PORT):  # the package's postinst may have started it
            say("starting RabbitMQ (rabbitmq-server -detached)")
            run(["rabbitmq-server", "-detached"], quiet=True)
        wait_for("RabbitMQ on port 5672", lambda: port_open("127.0.0.1", RABBIT_PORT), 90)
        wait_for(
            "rabbitmqctl status",
            lambda: run(["rabbitmqctl", "status"], check=False, quiet=True).returncode == 0,
            60,
        )
    proc = run(["rabbitmqctl", "add_vhost", inst.vhost], check=False, quiet=True)
    if (
        proc.returncode != 0 and "already" not in proc.stdout
    ):  # "already exists" on a re-run is fine
        raise Failure(f"rabbitmqctl add_vhost {inst.vhost} failed: {proc.stdout.strip()}")
    run(["rabbitmqctl", "set_permissions", "-p", inst.vhost, "guest", ".*", ".*", ".*"], quiet=True)


def psql(sql: str, db: str = "postgres", check: bool = True) -> subprocess.CompletedProcess:
    """psql over TCP as postgres without a password: the way Mistral itself connects."""
    return run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(PG_PORT),
            "-U",
            "postgres",
            "-d",
            db,
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        ],
        check=check,
        quiet=True,
        env=dict(os.environ, PGCONNECT_TIMEOUT="5"),
    )


def ensure_postgresql(inst: Instance) -> None:
    if not port_open("127.0.0.1", PG_PORT):
        if not shutil.which("pg_ctlcluster"):
            apt_install("postgresql")
        for version in (
            sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        ):
            say(f"starting PostgreSQL cluster {version}/main")
            run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False,
            )
        wait_for("PostgreSQL on port 5432", lambda: port_open("127.0.0.1", PG_PORT), 60)
    wait_for(
        "PostgreSQL start-up", lambda: "starting up" not in psql("SELECT 1", check=False).stdout, 60
    )
    if (out := psql("SELECT 1", check=False)).returncode != 0:
        if "password" not in out.stdout and "authentication" not in out.stdout:
            raise Failure(f"cannot log in to PostgreSQL on 127.0.0.1: {out.stdout.strip()}")
        allow_trust_login()
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{inst.vhost}'").stdout.strip() != "1":
        say(f"creating PostgreSQL database {inst.vhost}")
        psql(f'CREATE DATABASE "{inst.vhost}"')


def allow_trust_login() -> None:
    """Debian's default pg_hba.conf wants a password over TCP (and peer auth on the socket), but
    Mistral connects as postgres@127.0.0.1 without one: on such a cluster (meant for local development)
    put a `trust` line for exactly that at the top of pg_hba.conf and reload."""
    hbas = sorted(Path("/etc/postgresql").glob("*/main/pg_hba.conf"))
    if os.geteuid() != 0 or not hbas:
        raise Failure(
            "PostgreSQL refuses a password-less login as postgres on 127.0.0.1; allow it "
            "(`host all postgres 127.0.0.1/32 trust` in pg_hba.conf) or use --db sqlite"
        )
    line = "host all postgres 127.0.0.1/32 trust  # added by st2bridge tools/mistral_local.py\n"
    for hba in (h for h in hbas if line not in h.read_text()):
        say(
            f"allowing password-less TCP login for postgres@127.0.0.1 in {hba} (local development only)"
        )
        hba.write_text(line + hba.read_text())  # the first matching line wins
        run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", hba.parts[-3], "main", "reload"],
            quiet=True,
        )
    time.sleep(1)
    psql("SELECT 1")


# ---- config and schema --------------------------------------------------------------------------
def write_config(inst: Instance) -> None:
    inst.home.mkdir(parents=True, exist_ok=True)
    inst.conf.write_text(f"""\
# Written by st2bridge tools/mistral_local.py on every start: edits are lost.
[DEFAULT]
transport_url = {inst.transport_url}

[database]
connection = {inst.db_url}

[pecan]
auth_enable = {bool(inst.auth)}
{keystone_section(inst.auth)}
[api]
host = {inst.host}
port = {inst.port}

[cron_trigger]
# The periodic component runs, and processes cron triggers. Left True, the API runs a
# second, competing loop, and the server no longer exits on SIGTERM (`stop` needs SIGKILL after 20
# s).
run_in_api = False

[action_std_http]
# 23.0.0 blocks std.http and webhook notifications to 127.0.0.0/8 by default; allow loopback.
denied_cidrs =
""")
    if inst.auth:
        inst.conf.chmod(0o600)  # the service user's password


def keystone_section(auth: dict | None) -> str:
    """keystonemiddleware's settings: Mistral validates each request's token with Keystone,
    authenticated as its service user."""
    if not auth:
        return ""
    return f"""
[keystone_authtoken]
www_authenticate_uri = {auth["auth_url"]}
auth_url = {auth["auth_url"]}
auth_type = password
username = {auth["username"]}
password = {auth["password"]}
project_name = {auth["project_name"]}
user_domain_name = Default
project_domain_name = Default
"""


def schema_ready(inst: Instance) -> bool:
    """True once the tables exist and `populate` ran (it registers at least one ad-hoc action)."""
    sql = "SELECT count(*) FROM action_definitions_v2"
    if inst.db == "postgresql":
        out = psql(sql, db=inst.vhost, check=False)
        return out.returncode == 0 and out.stdout.strip() not in ("", "0")
    try:
        with contextlib.closing(sqlite3.connect(inst.sqlite)) as conn:
            return conn.execute(sql).fetchone()[0] > 0
    except sqlite3.Error:  # no such table
        return False


def prepare_db(inst: Instance) -> None:
    """Create the schema and register the std workflows and actions; each step is idempotent."""
    if schema_ready(inst):
        return
    manage = [str(inst.bin / "mistral-db-manage"), "--config-file", str(inst.conf)]
    if inst.db == "sqlite":
        # `upgrade head` fails on SQLite (an early migration ALTERs a constraint) and Mistral does
        # not
        # create tables on start-up, so create them from the models (SQLAlchemy create_all).
        say("creating the SQLite schema")
        run(
            [
                str(inst.bin / "python"),
                "-c",
                "import sys; from oslo_config import cfg; "
                "cfg.CONF(['--config-file', sys.argv[1]], project='mistral'); "
                "from mistral.db.v2 import api; api.setup_db()",
                str(inst.conf),
            ],
            quiet=True,
            env=VENV_ENV,
        )
    else:
        say("migrating the PostgreSQL schema (mistral-db-manage upgrade head)")
        run(manage + ["upgrade", "head"], quiet=True, env=VENV_ENV)
    say("registering the std workflows and actions (mistral-db-manage populate)")
    run(manage + ["populate"], quiet=True, env=VENV_ENV)


# ---- start / stop / status / env ----------------------------------------------------------------
def tail(path: Path, n: int = 30) -> None:
    if path.exists():
        lines = path.read_text(errors="replace").splitlines()[-n:]
        print(f"---- last {len(lines)} lines of {path} ----\n" + "\n".join(lines), flush=True)


def cmd_start(inst: Instance) -> None:
    if inst.pid() and inst.api_ok():
        say(f"already running (pid {inst.pid()}): {inst.url}")
        return
    if not inst.marker.exists():
        raise Failure(
            f"mistral {MISTRAL_VERSION} is not installed in {inst.venv}; run `install` or `up`"
        )
    if (
        inst.groups()
    ):  # API not answering (or asked for another port), or components of a dead master
        say(f"processes of this instance run but {inst.url} does not answer: restarting")
        stop_groups(inst)
    if port_open(inst.host, inst.port):
        raise Failure(
            f"port {inst.port} on {inst.host} is taken by another program; choose another --port"
        )
    if inst.auth:
        try:
            keystone_token(inst.auth)
        except OSError as exc:
            raise Failure(
                f"Keystone at {inst.auth['auth_url']} does not give the mistral user a token "
                f"({exc}); start it first: python3 tools/keystone_local.py up"
            ) from None
    ensure_db_driver(inst)
    ensure_rabbitmq(inst)
    if inst.db == "postgresql":
        ensure_postgresql(inst)
    write_config(inst)
    prepare_db(inst)
    if inst.split_flag:
        inst.split_marker.write_text("engine and executor run as processes of their own\n")
        for component in SPLIT_SERVERS:
            start_component(inst, component)
        return
    inst.split_marker.unlink(missing_ok=True)
    start_component(inst, "main", servers=SERVERS)


def start_component(inst: Instance, component: str, servers: str | None = None) -> None:
    """Start one mistral-server process group and wait until it is up: the API answers (main), or
    the process still runs after its start-up (engine, executor: they have no port)."""
    servers = servers or SPLIT_SERVERS[component]
    pidfile, logfile = inst.component_files(component)
    say(f"starting mistral-server --server {servers} (log {logfile})")
    t0 = time.monotonic()
    with open(logfile, "ab") as log:
        log.write(
            f"---- mistral_local.py start {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n".encode()
        )
        log.flush()
        # Its own session, so that `stop` can signal the whole group: mistral-server forks one
        # process per component.
        proc = subprocess.Popen(
            [str(inst.bin / "mistral-server"), "--server", servers, *inst.config_args(component)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=inst.home,
            env=VENV_ENV,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    last_note = 0.0
    while not (inst.api_ok() if component == "main" else component_started(logfile)):
        elapsed = time.monotonic() - t0
        if proc.poll() is not None:
            tail(logfile)
            pidfile.unlink(missing_ok=True)
            raise Failure(
                f"mistral-server exited with code {proc.returncode} after {elapsed:.0f} s"
            )
        if elapsed > inst.timeout:
            tail(logfile)
            stop_groups(inst, also=proc.pid)
            why = f" ({inst.api_error})" if component == "main" and inst.api_error else ""
            raise Failure(f"{component} did not start within {inst.timeout:.0f} s{why}; stopped it")
        if elapsed - last_note >= 5:
            say(f"waiting for {component} ... {elapsed:.0f} s")
            last_note = elapsed
        time.sleep(0.5)
    say(f"{component} up in {time.monotonic() - t0:.1f} s (pid {proc.pid}): {inst.url}")


def component_started(logfile: Path) -> bool:
    """An engine or executor has its RPC server up once it logs "Engine server started." or
    "Executor server started." in the last start-up section of its log."""
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return False
    last = text.rsplit("---- mistral_local.py start", 1)[-1]
    return "server started." in last


def cmd_kill(inst: Instance) -> None:
    """SIGKILL one component's process group (split mode), like a crashed host would."""
    if not inst.split:
        raise Failure("kill needs an instance started with --split")
    if inst.component not in SPLIT_SERVERS:
        raise Failure(f"--component must be one of {', '.join(SPLIT_SERVERS)}")
    pid = inst.component_pid(inst.component)
    if not pid:
        raise Failure(f"{inst.component} is not running")
    say(f"killing {inst.component} (process group {pid}, SIGKILL)")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    inst.component_files(inst.component)[0].unlink(missing_ok=True)


def stop_groups(inst: Instance, also: int | None = None) -> bool:
    """SIGTERM every process group of the instance (and `also`), SIGKILL what is left after 20 s."""
    groups = inst.groups() | ({also} if also and group_members(also) else set())
    groups |= {pid for c in SPLIT_SERVERS if (pid := inst.component_pid(c)) and group_members(pid)}
    for pgid in groups:
        say(f"stopping mistral-server process group {pgid} (SIGTERM)")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if group_members(pgid):
            say(f"process group {pgid} still alive after 20 s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.5)
    for component in SPLIT_SERVERS:
        inst.component_files(component)[0].unlink(missing_ok=True)
    return bool(groups)


def cmd_status(inst: Instance) -> int:
    pid, api = inst.pid(), inst.api_ok()
    print(f"process: {f'running, pid {pid}' if pid else 'not running'}")
    print(f"api:     {inst.url} {'answers' if api else 'does not answer'}")
    return EXIT_OK if pid and api else EXIT_DOWN


def cmd_env(inst: Instance) -> None:
    # Of the option variables only HOME is exported: the home brings back its own port, host and db,
    # while an exported VHOST or PORT would leak into a later command given another --home.
    facts = {
        "URL": inst.url,
        "PID": inst.pid() or "",
        "HOME": inst.home,
        "CONFIG": inst.conf,
        "LOG": inst.log,
        "PIDFILE": inst.pidfile,
        "DB_URL": inst.db_url,
        "TRANSPORT_URL": inst.transport_url,
    }
    if inst.auth:
        facts["AUTH_URL"] = inst.auth["auth_url"]
    for key, value in facts.items():
        print(f"export ST2BRIDGE_MISTRAL_{key}={shlex.quote(str(value))}")


# ---- command line -------------------------------------------------------------------------------
OPTIONS = {
    "home": "instance dir",
    "venv": "virtualenv shared by all instances",
    "host": "API address",
    "port": "API port",
    "vhost": "RabbitMQ vhost and PostgreSQL database name",
    "db": "sqlite or postgresql",
    "timeout": "seconds to wait for the API",
    "keystone_home": "a tools/keystone_local.py home: Keystone authentication on (none: off)",
}
COMMANDS = {
    "up": "install + start (idempotent)",
    "install": "install Mistral into the venv",
    "start": "start the engine and wait for its API",
    "stop": "stop the engine",
    "status": "exit 0 if up, 3 if down",
    "env": "print shell exports",
    "kill": "SIGKILL one component (--component; split mode)",
    "start-component": "start one component (--component; split mode)",
}


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Each option: the command line, else $ST2BRIDGE_MISTRAL_<NAME>, else the setting an existing
    instance was started with (from its mistral.conf; not the vhost, always derived from the home),
    else the built-in default."""
    env = {name: os.environ.get(f"ST2BRIDGE_MISTRAL_{name.upper()}") for name in OPTIONS}
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    builtin = {
        "home": str(data / "st2bridge/mistral"),
        "venv": str(cache / f"st2bridge/{VENV_NAME}"),
        "host": "127.0.0.1",
        "port": "8989",
        "vhost": None,
        "db": "sqlite",
        "timeout": "180",
        "keystone_home": "none",
    }
    args.home = args.home or env["home"] or builtin["home"]
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(Path(args.home).expanduser().resolve() / "mistral.conf")
    db_url = conf.get("database", "connection", fallback="")
    saved = {
        "host": conf.get("api", "host", fallback=None),
        "port": conf.get("api", "port", fallback=None),
        "db": ("postgresql" if db_url.startswith("postgresql") else "sqlite") if db_url else None,
    }
    keystone = args.keystone_home or env["keystone_home"]  # given: a home, or "none"
    for name in OPTIONS:
        setattr(args, name, getattr(args, name) or env[name] or saved.get(name) or builtin[name])
    # Keystone: the one given, else the one the home was started with (its mistral.conf), else none.
    try:
        if keystone and keystone != "none":
            args.auth = keystone_auth(keystone)
        elif not keystone and conf.getboolean("pecan", "auth_enable", fallback=False):
            args.auth = {
                key: conf.get("keystone_authtoken", key)
                for key in ("auth_url", "username", "password", "project_name")
            }
        else:
            args.auth = None
    except (Failure, configparser.Error, ValueError) as exc:
        parser.error(f"--keystone-home: {exc}")
    try:
        args.port, args.timeout = int(args.port), float(args.timeout)
    except ValueError:
        parser.error(
            f"--port must be an integer and --timeout a number, not {args.port!r} / {args.timeout!r}"
        )
    if args.db not in ("sqlite", "postgresql"):
        parser.error(f"--db must be sqlite or postgresql, not {args.db!r}")


class PrivateMistral:
    """A Mistral of its own for one test or benchmark run: its own home, a free
    port and its own RabbitMQ vhost (and PostgreSQL database, named after the
    vhost, with db="postgresql"). Driven through this file's CLI in a child
    process; stop() also removes the vhost and the database.

    `split=True` runs the engine and the executor as processes of their own
    (kill() and start_component() act on one of them); `overrides` is config
    text every component reads after mistral.conf, `component_overrides`
    {component: text} what only one of them reads (e.g. the engine's
    transport_url pointing at a relay). With `keystone_home` (a
    tools/keystone_local.py home), every request needs a token from that
    Keystone. Defaults change nothing."""

    def __init__(
        self,
        home,
        db="sqlite",
        prefix="st2bridge-private",
        split=False,
        overrides="",
        component_overrides=None,
        keystone_home=None,
    ):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.home, self.db = Path(home), db
        self.keystone_home = keystone_home
        self.vhost = f"{prefix}-{os.urandom(4).hex()}"
        self.api_url = f"http://127.0.0.1:{self.port}/v2"
        self.transport_url = f"rabbit://guest:guest@127.0.0.1:{RABBIT_PORT}/{self.vhost}"
        self.split = split
        self.output = ""
        self.home.mkdir(parents=True, exist_ok=True)
        if overrides:
            (self.home / "overrides.conf").write_text(overrides)
        for component, text in (component_overrides or {}).items():
            (self.home / f"overrides-{component}.conf").write_text(text)

    def _run(self, command, capture, *extra):
        return subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                command,
                "--home",
                str(self.home),
                "--port",
                str(self.port),
                "--db",
                self.db,
                "--vhost",
                self.vhost,
                *extra,
            ]
            + (["--keystone-home", str(self.keystone_home)] if self.keystone_home else []),
            capture_output=capture,
            text=True,
        )

    def up(self, capture=False) -> bool:
        """True once the API answers. With `capture`, the tool's output is kept
        in .output instead of shown."""
        proc = self._run("up", capture, *(["--split"] if self.split else []))
        self.output = (proc.stdout or "") + (proc.stderr or "")
        return proc.returncode == 0

    def kill(self, component) -> None:
        """SIGKILL one component (split mode): "engine", "executor" or "main"."""
        proc = self._run("kill", True, "--component", component)
        if proc.returncode != 0:
            raise RuntimeError(f"killing {component} failed: {proc.stdout}{proc.stderr}")

    def start_component(self, component) -> None:
        """Start one component again (split mode) and wait until it is up."""
        proc = self._run("start-component", True, "--component", component)
        if proc.returncode != 0:
            raise RuntimeError(f"starting {component} failed: {proc.stdout}{proc.stderr}")

    def stop(self) -> None:
        self._run("stop", capture=True)
        if shutil.which("rabbitmqctl"):
            subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True)
        if self.db == "postgresql":
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-w",
                    "-c",
                    f'DROP DATABASE IF EXISTS "{self.vhost}"',
                ],
                capture_output=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a local Mistral 23 engine for st2bridge.",
        epilog="Defaults: see the module docstring (python3 -m pydoc FILE).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Options work before and after the command; a subparser's own default would overwrite a value
    # given before the command, hence SUPPRESS there, and None (resolved later) at the top.
    for p, default in [(parser, None)] + [
        (sub.add_parser(n, help=t, description=t), argparse.SUPPRESS) for n, t in COMMANDS.items()
    ]:
        for name, text in OPTIONS.items():
            p.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                default=default,
                help=f"{text} [$ST2BRIDGE_MISTRAL_{name.upper()}]",
            )
        p.add_argument(
            "--split",
            action="store_true",
            default=default if default is not None else False,
            help="start: the engine and the executor as processes of their own",
        )
        p.add_argument(
            "--component",
            default=default,
            choices=sorted(SPLIT_SERVERS),
            help="kill / start-component: which one",
        )
    args = parser.parse_args(argv)  # exits 2 on a usage error
    resolve(parser, args)
    inst = Instance(args)
    try:
        if args.command == "up" and inst.pid() and inst.api_ok():  # the quick no-op
            say(f"already running (pid {inst.pid()}): {inst.url}")
            return EXIT_OK
        if args.command in ("install", "up"):
            cmd_install(inst)
        if args.command in ("start", "up"):
            cmd_start(inst)
        elif args.command == "stop":
            say("stopped" if stop_groups(inst) else "not running")
        elif args.command == "status":
            return cmd_status(inst)
        elif args.command == "env":
            cmd_env(inst)
        elif args.command == "kill":
            cmd_kill(inst)
        elif args.command == "start-component":
            if not inst.split or inst.component not in SPLIT_SERVERS:
                raise Failure(
                    "start-component needs --component and an instance started with --split"
                )
            start_component(inst, inst.component)
    except Failure as exc:
        print(f"mistral_local: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAIL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
