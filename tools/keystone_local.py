#!/usr/bin/env python3
"""Install, configure, start and stop a real local Keystone (OpenStack identity) for st2bridge
development and tests: the Keystone a Mistral with `[pecan] auth_enable = True` checks tokens with.

Usage (system python3 3.11+ for Keystone 30; stdlib only; options go before or after the command):
    python3 tools/keystone_local.py up      [options]  # install + start; a quick no-op when already up
    python3 tools/keystone_local.py install [options]  # venv + pip install keystone==30.0.0 waitress
    python3 tools/keystone_local.py start   [options]  # config, db_sync, keys, bootstrap, serve, users
    python3 tools/keystone_local.py stop    [options]  # SIGTERM the process group, SIGKILL after 20 s
    python3 tools/keystone_local.py status  [options]  # exit 0 when up, 3 when down
    python3 tools/keystone_local.py env     [options]  # eval "$(python3 tools/keystone_local.py env)"
    python3 tools/keystone_local.py serve   [options]  # the WSGI server itself (start runs it)

Options [environment variable; default]:
    --home DIR    instance dir [ST2BRIDGE_KEYSTONE_HOME; ${XDG_DATA_HOME:-~/.local/share}/st2bridge/keystone]
    --venv DIR    shared venv [ST2BRIDGE_KEYSTONE_VENV; ${XDG_CACHE_HOME:-~/.cache}/st2bridge/keystone-30.0.0-venv]
    --host ADDR   API address [ST2BRIDGE_KEYSTONE_HOST; 127.0.0.1]
    --port N      API port [ST2BRIDGE_KEYSTONE_PORT; 5000]
    --token-expiration S   `[token] expiration`, seconds [ST2BRIDGE_KEYSTONE_TOKEN_EXPIRATION; 3600]
    --mistral-url URL      registered as the `workflowv2` endpoint [ST2BRIDGE_KEYSTONE_MISTRAL_URL; none]
    --timeout S   seconds to wait for the API [ST2BRIDGE_KEYSTONE_TIMEOUT; 120]
An existing home keeps its settings unless they are given again, so `stop`, `status` and `env` need
only --home. The home holds keystone.conf, keystone.db (SQLite), fernet-keys/, credential-keys/,
keystone.log, keystone.pid and keystone-local.json (mode 0600: the settings and the users below,
with their passwords, generated at the first start; tools/mistral_local.py --keystone-home reads it).
Delete the whole home to start afresh.
Users (user / project / role): admin / admin / admin (keystone-manage bootstrap), mistral / service /
service (Mistral's keystonemiddleware), st2bridge / st2bridge / member (the bridge).
Keystone is served by waitress (a pure-Python WSGI server) in its own process group.
Exit codes: 0 ok, 1 failure, 2 usage error, 3 down (status).
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

try:  # imported as tools.keystone_local (tests), or run as a script from tools/
    from tools.mistral_local import (
        VENV_ENV,
        Failure,
        cmdline,
        group_members,
        port_open,
        run,
        tail,
    )
except ImportError:
    from mistral_local import (  # type: ignore[no-redef]
        VENV_ENV,
        Failure,
        cmdline,
        group_members,
        port_open,
        run,
        tail,
    )

# The release of the same OpenStack series as Mistral 23.0.0 (keystone N pairs with mistral N-7).
KEYSTONE_VERSION = "30.0.0"
WAITRESS_VERSION = "3.0.2"
VENV_NAME = f"keystone-{KEYSTONE_VERSION}-venv"
EXIT_OK, EXIT_FAIL, EXIT_DOWN = 0, 1, 3  # 2 (usage) comes from argparse
REGION = "RegionOne"
MANAGE_STEPS = ("db_sync", "fernet_setup", "credential_setup", "bootstrap")
# name -> (project, role); passwords are generated per home.
USERS = {
    "admin": ("admin", "admin"),
    "mistral": ("service", "service"),
    "st2bridge": ("st2bridge", "member"),
}


def say(msg: str) -> None:
    print(f"[keystone-local] {msg}", flush=True)


class Instance:
    """Settings, paths and processes of one Keystone instance (one home dir)."""

    def __init__(self, a: argparse.Namespace):
        self.home = Path(a.home).expanduser().resolve()
        self.venv = Path(a.venv).expanduser().absolute()
        self.host, self.port, self.timeout = a.host, a.port, a.timeout
        self.token_expiration, self.mistral_url = a.token_expiration, a.mistral_url
        self.conf, self.log = self.home / "keystone.conf", self.home / "keystone.log"
        self.pidfile, self.sqlite = self.home / "keystone.pid", self.home / "keystone.db"
        self.state_file = self.home / "keystone-local.json"
        self.url = f"http://{self.host}:{self.port}/v3"
        self.bin = self.venv / "bin"
        self.marker = self.venv / f".st2bridge-keystone-{KEYSTONE_VERSION}"

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # passwords, keys, hashes
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2, sort_keys=True)

    # The server runs as `python keystone_local.py serve --home HOME`: the home, as a whole
    # argument, identifies an instance's process (and not one of a home whose path extends it).
    def _mine(self, pid: int | str) -> bool:
        args = cmdline(pid)
        return b"keystone_local.py\0serve\0" in args and b"\0" + bytes(self.home) + b"\0" in args

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        pid = self.recorded_pid()
        return pid if pid and self._mine(pid) else None

    def groups(self) -> set[int]:
        found = set()
        for name in os.listdir("/proc"):
            if name.isdigit() and self._mine(name):
                with contextlib.suppress(OSError):
                    found.add(os.getpgid(int(name)))
        return {g for g in found if group_members(g)}

    def api_ok(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False


# ---- install ------------------------------------------------------------------------------------
def cmd_install(inst: Instance) -> None:
    t0 = time.monotonic()
    if inst.marker.exists() and (inst.bin / "keystone-manage").exists():
        say(f"keystone {KEYSTONE_VERSION} already installed in {inst.venv}")
        return
    if sys.version_info < (3, 11):
        raise Failure(
            f"keystone {KEYSTONE_VERSION} needs Python 3.11 or newer; this is "
            f"{sys.version.split()[0]} ({sys.executable})"
        )
    if not (inst.bin / "python").exists():
        say(f"creating virtualenv {inst.venv} with {sys.executable}")
        inst.venv.parent.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", str(inst.venv)])
    pkgs = [f"keystone=={KEYSTONE_VERSION}", f"waitress=={WAITRESS_VERSION}"]
    say(f"pip install {' '.join(pkgs)} into {inst.venv} (pip's output follows)")
    cmd = [str(inst.bin / "pip"), "install", "--disable-pip-version-check", *pkgs]
    if run(cmd, check=False, env=VENV_ENV).returncode != 0:
        raise Failure(f"pip install {' '.join(pkgs)} failed; see pip's output above")
    inst.marker.write_text(KEYSTONE_VERSION + "\n")  # last: an interrupted install is redone
    say(f"installed keystone {KEYSTONE_VERSION} in {time.monotonic() - t0:.0f} s")


# ---- config, database, keys ---------------------------------------------------------------------
def write_config(inst: Instance) -> None:
    inst.conf.write_text(f"""\
# Written by st2bridge tools/keystone_local.py on every start: edits are lost.
[DEFAULT]
log_file = {inst.log}

[database]
connection = sqlite:///{inst.sqlite}

[token]
provider = fernet
expiration = {inst.token_expiration}

[identity]
# bcrypt's cheapest cost: for development and tests only. Keystone checks a password for every
# token it issues, and with tokens living 120 s or less every keystoneauth client (Mistral's
# keystonemiddleware too) asks for a new one each time it uses it (MIN_TOKEN_LIFE_SECONDS = 120):
# at the default cost (12) that kept a busy 2-core machine's Keystone seconds behind.
password_hash_rounds = 4

[fernet_tokens]
key_repository = {inst.home / "fernet-keys"}

[fernet_receipts]
key_repository = {inst.home / "fernet-keys"}

[credential]
key_repository = {inst.home / "credential-keys"}
""")


def prepare(inst: Instance, state: dict) -> None:
    """Schema, Fernet and credential keys, and the admin user, project, region and identity
    endpoint: once per home (bootstrap again when the URL changed: it updates the endpoints)."""
    steps = [] if state.get("prepared") else list(MANAGE_STEPS[:3])
    if state.get("bootstrapped_url") != inst.url:
        steps.append("bootstrap")
    if not steps:
        return
    say(f"keystone-manage {', '.join(steps)} (SQLite schema, keys, admin, endpoints {inst.url})")
    # One interpreter for all of them: importing Keystone is most of each command's time.
    # The admin password goes by environment, not on a command line that `ps` shows.
    run(
        [str(inst.bin / "python"), str(Path(__file__).resolve()), "manage", *steps]
        + ["--home", str(inst.home), "--venv", str(inst.venv)],
        quiet=True,
        env=dict(VENV_ENV, OS_BOOTSTRAP_PASSWORD=state["users"]["admin"]["password"]),
    )
    state.update(prepared=True, bootstrapped_url=inst.url)
    inst.save_state(state)


def cmd_manage(inst: Instance, steps: list[str]) -> None:
    """keystone-manage's own entry point, once per step, in this (Keystone's venv) process."""
    from keystone.cmd import cli

    owner = ["--keystone-user", pwd.getpwuid(os.getuid()).pw_name]
    owner += ["--keystone-group", grp.getgrgid(os.getgid()).gr_name]
    extra = {
        "fernet_setup": owner,
        "credential_setup": owner,
        # keystonemiddleware finds Keystone by its `internal` endpoint (its default interface).
        "bootstrap": ["--bootstrap-region-id", REGION, "--bootstrap-public-url", inst.url]
        + ["--bootstrap-internal-url", inst.url],
    }
    for step in steps:
        cli.CONF.reset()  # each step parses its own command line
        cli.CONF.clear()
        cli.main(
            argv=["keystone-manage", "--config-file", str(inst.conf), step, *extra.get(step, [])]
        )
        print(f"keystone-manage {step}: done", flush=True)


# ---- the Keystone API (users, projects, the Mistral endpoint) -----------------------------------
def api(inst: Instance, method: str, path: str, token: str | None, body=None):
    """One Keystone API request; (answer headers, JSON body)."""
    req = urllib.request.Request(inst.url + path, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(req, data=data, timeout=30) as resp:
            text = resp.read()
            return resp.headers, (json.loads(text) if text else {})
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise Failure(f"Keystone {method} {path}: HTTP {exc.code} {detail}") from None
    except OSError as exc:
        raise Failure(f"Keystone {method} {path}: {exc}") from None


def get_token(inst: Instance, user: str, password: str, project: str) -> str:
    scope = {"project": {"name": project, "domain": {"id": "default"}}}
    ident = {"name": user, "domain": {"id": "default"}, "password": password}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": ident}},
            "scope": scope,
        }
    }
    headers, _ = api(inst, "POST", "/auth/tokens", None, body)
    return headers["X-Subject-Token"]


def ensure(inst: Instance, token: str, kind: str, query: str, create: dict) -> dict:
    """The one `kind` (projects, users, roles, services) that `query` finds, created if none."""
    _, found = api(inst, "GET", f"/{kind}?{query}", token)
    if found[kind]:
        return found[kind][0]
    _, made = api(inst, "POST", f"/{kind}", token, {kind[:-1]: create})
    return made[kind[:-1]]


def provision(inst: Instance, state: dict) -> None:
    """The service user Mistral validates tokens with, the bridge's user and project, and (with
    --mistral-url) Mistral's endpoint in the catalog. Idempotent; runs on every start."""
    admin = state["users"]["admin"]
    token = get_token(inst, "admin", admin["password"], "admin")
    for name, user in state["users"].items():
        if name == "admin":
            continue
        project = ensure(
            inst,
            token,
            "projects",
            f"name={user['project']}",
            {"name": user["project"], "domain_id": "default"},
        )
        role = ensure(inst, token, "roles", f"name={user['role']}", {"name": user["role"]})
        found = ensure(
            inst,
            token,
            "users",
            f"name={name}",
            {
                "name": name,
                "domain_id": "default",
                "password": user["password"],
                "default_project_id": project["id"],
            },
        )
        api(inst, "PUT", f"/projects/{project['id']}/users/{found['id']}/roles/{role['id']}", token)
    if inst.mistral_url:
        register_mistral(inst, token)


def register_mistral(inst: Instance, token: str) -> None:
    service = ensure(
        inst, token, "services", "type=workflowv2", {"type": "workflowv2", "name": "mistral"}
    )
    _, found = api(inst, "GET", f"/endpoints?service_id={service['id']}&interface=public", token)
    endpoint = {"url": inst.mistral_url, "interface": "public", "region_id": REGION}
    if not found["endpoints"]:
        api(
            inst,
            "POST",
            "/endpoints",
            token,
            {"endpoint": dict(endpoint, service_id=service["id"])},
        )
    elif found["endpoints"][0]["url"] != inst.mistral_url:
        api(
            inst,
            "PATCH",
            f"/endpoints/{found['endpoints'][0]['id']}",
            token,
            {"endpoint": endpoint},
        )
    say(f"Mistral (workflowv2) endpoint: {inst.mistral_url}")


# ---- start / stop / status / env / serve --------------------------------------------------------
def cmd_start(inst: Instance) -> None:
    if inst.pid() and inst.api_ok():
        say(f"already running (pid {inst.pid()}): {inst.url}")
        return
    if not inst.marker.exists():
        raise Failure(f"keystone {KEYSTONE_VERSION} is not installed in {inst.venv}; run `up`")
    if inst.groups():
        say(f"processes of this instance run but {inst.url} does not answer: restarting")
        stop_groups(inst)
    if port_open(inst.host, inst.port):
        raise Failure(f"port {inst.port} on {inst.host} is taken by another program; choose --port")
    state = inst.state()
    state.setdefault("users", {})
    for name, (project, role) in USERS.items():
        state["users"].setdefault(name, {"password": secrets.token_urlsafe(18)})
        state["users"][name].update(project=project, role=role)
    state.update(
        host=inst.host,
        port=inst.port,
        token_expiration=inst.token_expiration,
        mistral_url=inst.mistral_url,
    )
    inst.save_state(state)
    write_config(inst)
    prepare(inst, state)
    say(f"starting Keystone (waitress; log {inst.log})")
    t0 = time.monotonic()
    with open(inst.log, "ab") as log:
        log.write(f"---- keystone_local.py start {time.strftime('%F %T')} ----\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [str(inst.bin / "python"), str(Path(__file__).resolve()), "serve"]
            + ["--home", str(inst.home), "--venv", str(inst.venv)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=inst.home,
            env=VENV_ENV,
            start_new_session=True,  # `stop` signals the whole group
        )
    inst.pidfile.write_text(f"{proc.pid}\n")
    while not inst.api_ok():
        if proc.poll() is not None:
            tail(inst.log)
            inst.pidfile.unlink(missing_ok=True)
            raise Failure(f"the Keystone server exited with code {proc.returncode}")
        if time.monotonic() - t0 > inst.timeout:
            tail(inst.log)
            stop_groups(inst, also=proc.pid)
            raise Failure(f"{inst.url} did not answer within {inst.timeout:.0f} s; stopped it")
        time.sleep(0.5)
    provision(inst, state)
    say(
        f"up in {time.monotonic() - t0:.1f} s (pid {proc.pid}): {inst.url}, "
        f"tokens live {inst.token_expiration} s"
    )


def cmd_serve(inst: Instance) -> None:
    """Keystone's public WSGI app under waitress, in the foreground (needs Keystone's venv)."""
    os.environ["OS_KEYSTONE_CONFIG_DIR"] = str(inst.home)  # reads keystone.conf there
    sys.argv[1:] = []  # Keystone parses the command line with oslo.config: ours is not its
    import waitress  # only in Keystone's venv
    from keystone.server import wsgi

    server = waitress.create_server(
        wsgi.initialize_public_application(), host=inst.host, port=inst.port, threads=8
    )

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"keystone {KEYSTONE_VERSION} serving {inst.url} (waitress)", flush=True)
    try:
        server.run()
    finally:
        server.close()


def stop_groups(inst: Instance, also: int | None = None) -> bool:
    """SIGTERM every process group of the instance (and `also`), SIGKILL what is left after 20 s."""
    groups = inst.groups() | ({also} if also and group_members(also) else set())
    for pgid in groups:
        say(f"stopping the Keystone process group {pgid} (SIGTERM)")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(pgid):
            say(f"process group {pgid} still alive after 20 s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    inst.pidfile.unlink(missing_ok=True)
    return bool(groups)


def cmd_status(inst: Instance) -> int:
    pid, api_up = inst.pid(), inst.api_ok()
    print(f"process: {f'running, pid {pid}' if pid else 'not running'}")
    print(f"api:     {inst.url} {'answers' if api_up else 'does not answer'}")
    return EXIT_OK if pid and api_up else EXIT_DOWN


def cmd_env(inst: Instance) -> None:
    facts = {
        "URL": inst.url,
        "PID": inst.pid() or "",
        "HOME": inst.home,
        "CONFIG": inst.conf,
        "LOG": inst.log,
        "PIDFILE": inst.pidfile,
    }
    for name, user in inst.state().get("users", {}).items():
        key = "BRIDGE" if name == "st2bridge" else name.upper()
        facts.update(
            {
                f"{key}_USER": name,
                f"{key}_PASSWORD": user["password"],
                f"{key}_PROJECT": user["project"],
            }
        )
    for key, value in facts.items():
        print(f"export ST2BRIDGE_KEYSTONE_{key}={shlex.quote(str(value))}")


# ---- command line -------------------------------------------------------------------------------
OPTIONS = {
    "home": "instance dir",
    "venv": "virtualenv shared by all instances",
    "host": "API address",
    "port": "API port",
    "token_expiration": "[token] expiration (seconds)",
    "mistral_url": "Mistral's API URL, registered as the workflowv2 endpoint",
    "timeout": "seconds to wait for the API",
}
COMMANDS = {
    "up": "install + start (idempotent)",
    "install": "install Keystone into the venv",
    "start": "start Keystone and wait for its API",
    "stop": "stop Keystone",
    "status": "exit 0 if up, 3 if down",
    "env": "print shell exports (URL, users, passwords)",
    "serve": "run the WSGI server in the foreground (start runs it)",
    "manage": "run keystone-manage steps in one process (start runs it)",
}


def resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Each option: the command line, else $ST2BRIDGE_KEYSTONE_<NAME>, else the setting an
    existing home was started with (keystone-local.json), else the built-in default."""
    env = {name: os.environ.get(f"ST2BRIDGE_KEYSTONE_{name.upper()}") for name in OPTIONS}
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    builtin = {
        "home": str(data / "st2bridge/keystone"),
        "venv": str(cache / f"st2bridge/{VENV_NAME}"),
        "host": "127.0.0.1",
        "port": "5000",
        "token_expiration": "3600",
        "mistral_url": "",
        "timeout": "120",
    }
    args.home = args.home or env["home"] or builtin["home"]
    try:
        saved = json.loads(
            (Path(args.home).expanduser().resolve() / "keystone-local.json").read_text()
        )
    except (OSError, ValueError):
        saved = {}
    for name in OPTIONS:
        value = getattr(args, name) or env[name] or saved.get(name) or builtin[name]
        setattr(args, name, value)
    try:
        args.port, args.timeout = int(args.port), float(args.timeout)
        args.token_expiration = int(args.token_expiration)
    except ValueError:
        parser.error("--port and --token-expiration must be integers and --timeout a number")
    if args.token_expiration < 1:
        parser.error("--token-expiration must be at least 1 second")


class PrivateKeystone:
    """A Keystone of its own for one test run: its own home and a free port, tokens living
    `token_expiration` seconds. Driven through this file's CLI in a child process."""

    def __init__(self, home, token_expiration=3600, mistral_url=""):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.home, self.token_expiration, self.mistral_url = (
            Path(home),
            token_expiration,
            mistral_url,
        )
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.output = ""

    def _run(self, command, capture):
        argv = [sys.executable, str(Path(__file__).resolve()), command, "--home", str(self.home)]
        argv += ["--port", str(self.port), "--token-expiration", str(self.token_expiration)]
        if self.mistral_url:
            argv += ["--mistral-url", self.mistral_url]
        return subprocess.run(argv, capture_output=capture, text=True)

    def up(self, capture=False) -> bool:
        proc = self._run("up", capture)
        self.output = (proc.stdout or "") + (proc.stderr or "")
        return proc.returncode == 0

    def user(self, name):
        """{"password", "project", "role"} of a user (after up())."""
        state = json.loads((self.home / "keystone-local.json").read_text())
        return state["users"][name]

    def stop(self) -> None:
        self._run("stop", capture=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a local Keystone for st2bridge.",
        epilog="Defaults: see the module docstring (python3 -m pydoc FILE).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {n: sub.add_parser(n, help=t, description=t) for n, t in COMMANDS.items()}
    commands["manage"].add_argument("steps", nargs="+", choices=MANAGE_STEPS)
    # Options before and after the command (see tools/mistral_local.py for the SUPPRESS trick).
    for p, default in [(parser, None)] + [(c, argparse.SUPPRESS) for c in commands.values()]:
        for name, text in OPTIONS.items():
            flag = "--" + name.replace("_", "-")
            p.add_argument(
                flag,
                dest=name,
                default=default,
                help=f"{text} [$ST2BRIDGE_KEYSTONE_{name.upper()}]",
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
        elif args.command == "serve":
            cmd_serve(inst)
        elif args.command == "manage":
            cmd_manage(inst, args.steps)
    except Failure as exc:
        print(f"keystone_local: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAIL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
