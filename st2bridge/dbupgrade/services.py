"""Is anything that uses the target database still running?

Four independent checks, each switchable in [db_upgrade]:
  systemd     `systemctl is-active` on the configured units (where systemd runs)
  processes   command lines in /proc matching the configured patterns; a match
              counts only if its config file names the target database (or
              when that cannot be told: then it is reported as "may use")
  engine API  the engine's REST API answers on its URL
  heartbeats  a bridge daemon's heartbeat in the store's service registry is
              younger than heartbeat_stale_after

Each finding says what runs and how to stop it.
"""

import configparser
import os
import re
import shutil
import subprocess
import time

import requests

ENGINE_DEFAULT_CONFIGS = ("/etc/mistral/mistral.conf", "/etc/mistral.conf")
BRIDGE_DEFAULT_CONFIG = "/etc/st2bridge/bridge.conf"


class Finding:
    """One running service: `check` that found it, what it is, how to stop it."""

    def __init__(self, check, what, stop, certain=True, short=None):
        self.check, self.what, self.stop, self.certain = check, what, stop, certain
        self.short = short or what  # for the one-line error

    def as_dict(self):
        return {"check": self.check, "what": self.what, "stop": self.stop, "certain": self.certain}

    def __str__(self):
        return "%s: %s%s (stop: %s)" % (
            self.check,
            self.what,
            "" if self.certain else " [may use it]",
            self.stop,
        )


# -- systemd ------------------------------------------------------------------


def systemd_running():
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def systemd_units(units):
    if not units or not systemd_running():
        return []
    proc = subprocess.run(
        ["systemctl", "is-active"] + list(units), capture_output=True, text=True, timeout=30
    )
    found = []
    for unit, state in zip(units, proc.stdout.split()):
        if state in ("active", "activating", "reloading", "deactivating"):
            found.append(
                Finding(
                    "systemd",
                    "unit %s is %s" % (unit, state),
                    "systemctl stop %s" % unit,
                    short=unit,
                )
            )
    return found


# -- the process table ----------------------------------------------------------


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def cmdline(pid):
    return [a.decode("utf-8", "replace") for a in _read("/proc/%s/cmdline" % pid).split(b"\0") if a]


def parent(pid):
    stat = _read("/proc/%s/stat" % pid).decode("ascii", "replace")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def config_files(pid, depth=3):
    """--config-file values of a process, or of its nearest ancestor that has
    any (mistral-server's forked workers rename themselves and lose them).
    Relative paths are resolved against the process's working directory."""
    for _ in range(depth + 1):
        if pid <= 1:
            return []
        # setproctitle joins the arguments into one; split them again
        tokens = " ".join(cmdline(pid)).replace("[", " ").replace("]", " ").split()
        files = []
        for i, token in enumerate(tokens):
            if token == "--config-file" and i + 1 < len(tokens):
                files.append(tokens[i + 1])
            elif token.startswith("--config-file="):
                files.append(token.split("=", 1)[1])
        if files:
            try:
                cwd = os.readlink("/proc/%d/cwd" % pid)
            except OSError:
                cwd = "/"
            return [os.path.join(cwd, f) for f in files]
        pid = parent(pid)
    return []


def environ(pid):
    env = {}
    for item in _read("/proc/%s/environ" % pid).split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def processes(patterns, uses_target, exclude=()):
    """Findings for processes whose command line matches a pattern and whose
    config `uses_target(pid)` -> True (uses it), False (another database;
    skipped) or None (cannot tell: reported)."""
    regexes = [re.compile(p) for p in patterns if p]
    if not regexes or not os.path.isdir("/proc"):
        return []
    skip = {os.getpid()} | set(exclude)
    matched = {}
    for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
        if not name.isdigit() or int(name) in skip:
            continue
        line = " ".join(cmdline(name))
        if not line or not any(r.search(line) for r in regexes):
            continue
        if _state(name) == "Z":
            continue
        uses = uses_target(int(name))
        if uses is not False:
            matched[int(name)] = (line, uses)
    # A service's forked workers are listed under it, not one by one.
    children = {pid: 0 for pid in matched}
    for pid in matched:
        top = _matched_ancestor(pid, matched)
        if top != pid:
            children[top] += 1
            children.pop(pid)
    found = []
    for pid, workers in sorted(children.items()):
        line, uses = matched[pid]
        text = line if len(line) <= 160 else line[:157] + "..."
        more = " (and %d child processes)" % workers if workers else ""
        program = os.path.basename(line.split()[0]).rstrip(":")
        found.append(
            Finding(
                "process",
                "pid %d: %s%s" % (pid, text, more),
                "its service manager, or kill -TERM %d" % pid,
                certain=uses is True,
                short="pid %d %s%s" % (pid, program, more),
            )
        )
    return found


def _matched_ancestor(pid, matched, depth=5):
    """The furthest ancestor of pid (within depth) that is also matched."""
    top, current = pid, pid
    for _ in range(depth):
        current = parent(current)
        if current <= 1:
            break
        if current in matched:
            top = current
    return top


def _state(pid):
    stat = _read("/proc/%s/stat" % pid).decode("ascii", "replace")
    try:
        return stat.rsplit(")", 1)[1].split()[0]
    except IndexError:
        return "?"


def engine_process_uses(target_url, same_database):
    """uses_target for engine processes: their [database] connection."""

    def uses(pid):
        files = config_files(pid) or [f for f in ENGINE_DEFAULT_CONFIGS if os.path.exists(f)]
        url = None
        for path in files:
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            try:
                parser.read(path, encoding="utf-8")
            except (OSError, configparser.Error):
                return None
            url = parser.get("database", "connection", fallback=url)
        if not url:
            return None
        return same_database(url, target_url)

    return uses


def bridge_process_uses(target_store, store_url_of, same_store):
    """uses_target for bridge daemons: their [store] url."""

    def uses(pid):
        files = config_files(pid)
        if not files:
            env_file = environ(pid).get("ST2BRIDGE_CONFIG_FILE")
            files = (
                [env_file]
                if env_file
                else ([BRIDGE_DEFAULT_CONFIG] if os.path.exists(BRIDGE_DEFAULT_CONFIG) else [])
            )
        try:
            url = store_url_of(files)
        except Exception:  # an unreadable or invalid config: cannot tell
            return None
        return same_store(url, target_store)

    return uses


# -- network ------------------------------------------------------------------


def engine_api(url, timeout=3.0):
    """A finding when anything answers HTTP at the engine API's URL."""
    if not url:
        return []
    try:
        response = requests.get(url.rstrip("/") + "/", timeout=timeout)
    except requests.RequestException:
        return []
    return [
        Finding(
            "engine-api",
            "the engine API answers at %s (HTTP %d)" % (url, response.status_code),
            "stop the engine's API service (mistral-api, or mistral-server)",
            short="answers at %s" % url,
        )
    ]


def heartbeats(services, stale_after, now=None):
    """Findings for service records whose heartbeat is younger than stale_after."""
    now = time.time() if now is None else now
    found = []
    for svc in services:
        beat = svc.get("heartbeat_at")
        if not isinstance(beat, (int, float)) or now - beat > stale_after:
            continue
        found.append(
            Finding(
                "heartbeat",
                "%s on %s (pid %s) beat %.0f s ago"
                % (
                    svc.get("name") or "service",
                    svc.get("host") or "?",
                    svc.get("pid"),
                    max(0.0, now - beat),
                ),
                "on %s: systemctl stop %s, or kill -TERM %s"
                % (svc.get("host") or "its host", _unit(svc.get("name")), svc.get("pid")),
                short="%s on %s pid %s, %.0f s ago"
                % (
                    svc.get("name") or "service",
                    svc.get("host"),
                    svc.get("pid"),
                    max(0.0, now - beat),
                ),
            )
        )
    return found


def _unit(name):
    return "%s.service" % name if name else "the daemon's unit"
