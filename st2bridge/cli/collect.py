"""`st2bridge collect-logs [-o FILE]`: one archive with what a bug report needs.

    st2bridge-logs-HOST-TIME/
        README.txt               what was collected, and what could not be
        bridge.conf              the effective configuration, secrets redacted
        services.json            `st2bridge services --json`
        failed-executions.json   recent failed/timeout/abandoned executions
        versions.txt             st2bridge, Python and library versions
        logs/…                   the bridge's log files (log_dir), or its journal

Every member goes through st2bridge.redact: secret options and passwords
inside URLs never reach the archive, whatever wrote them where. A part that
cannot be collected (store down, no logs) is noted in README.txt; the
archive is made anyway.
"""

import gzip
import io
import os
import platform
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from importlib import metadata

from st2bridge import __version__, app, errors, redact
from st2bridge import status as st
from st2bridge.cli import output, services

FAILED = [st.FAILED, st.TIMEOUT, st.ABANDONED]
PACKAGES = (
    "oslo.config",
    "requests",
    "eventlet",
    "waitress",
    "pymongo",
    "prometheus_client",
    "keystoneauth1",
    "PyYAML",
)


def add_parser(commands):
    p = commands.add_parser(
        "collect-logs",
        help="an archive of logs, redacted configuration, services and "
        "recent failures, for a bug report",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it (default ./st2bridge-logs-HOST-TIME.tar.gz)",
    )
    p.add_argument(
        "--days",
        type=float,
        default=7.0,
        metavar="N",
        help="failed executions (and journal lines) of the last N days (default 7)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=100,
        metavar="N",
        help="at most N failed executions (default 100)",
    )
    p.add_argument(
        "--log-file",
        action="append",
        default=[],
        metavar="PATH",
        help="also collect this log file (repeatable), e.g. a tracker's redirected output",
    )
    p.add_argument(
        "--max-log-mb",
        type=float,
        default=20.0,
        metavar="MB",
        help="keep the last MB of each log file (default 20)",
    )
    p.set_defaults(handler=cmd_collect_logs)


def progress(message):
    print("collect-logs: %s" % message, file=sys.stderr, flush=True)


class Collection:
    """The members of the archive, each redacted as it is added."""

    def __init__(self, secrets):
        self.redactor = redact.Redactor(secrets)
        self.members = []  # (name, bytes)
        self.notes = []

    def add(self, name, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.members.append((name, self.redactor(text).encode("utf-8")))

    def note(self, message):
        self.notes.append(message)
        progress(message)


def cmd_collect_logs(args, conf):
    now = time.time()
    base = "st2bridge-logs-%s-%s" % (
        socket.gethostname(),
        time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)),
    )
    path = os.path.abspath(args.output or base + ".tar.gz")
    parts = Collection(redact.secret_values(conf))
    parts.add("bridge.conf", redact.config_text(conf))
    progress(
        "configuration: %d option groups, secrets redacted" % len(redact.effective_config(conf))
    )
    # Failures first: their secret input values are then masked in the logs too.
    collect_failures(conf, parts, now - args.days * 86400, args.limit)
    collect_logs(conf, parts, args.days, int(args.max_log_mb * 1024 * 1024), args.log_file)
    collect_services(conf, parts)
    parts.add("versions.txt", versions_text())
    parts.add("README.txt", readme(conf, parts, now))
    write_archive(path, base, parts.members, now)
    progress("wrote %d files to %s" % (len(parts.members), path))
    print(path)
    return errors.EXIT_OK


def collect_logs(conf, parts, days, max_bytes, extra_files=()):
    for path in extra_files:
        collect_file(path, parts, max_bytes)
    if not conf.log_dir:
        # The daemons log to stderr: the journal under systemd, else
        # whatever file a running tracker's stderr goes to.
        found = collect_journal(conf, parts, days)
        found += collect_tracker_output(conf, parts, max_bytes, extra_files)
        if not found and not extra_files:
            parts.note(
                "logs: log_dir is unset and no tracker output was found (no journal "
                "lines, no running tracker writing to a file); give a log file with --log-file"
            )
        return
    try:
        names = sorted(
            n for n in os.listdir(conf.log_dir) if n.startswith("st2bridge") and ".log" in n
        )
    except OSError as exc:
        parts.note("logs: cannot read log_dir %s: %s" % (conf.log_dir, exc.strerror or exc))
        return
    total = 0
    for name in names:
        full = os.path.join(conf.log_dir, name)
        try:
            data = _tail(full, max_bytes)
        except (OSError, EOFError) as exc:
            parts.note("logs: cannot read %s: %s" % (full, getattr(exc, "strerror", None) or exc))
            continue
        total += len(data)
        parts.add("logs/" + (name[:-3] if name.endswith(".gz") else name), data)
    if names:
        progress("logs: %d files (%.1f MB) from %s" % (len(names), total / 1e6, conf.log_dir))
    else:
        parts.note("logs: no st2bridge*.log files in %s" % conf.log_dir)


def _tail(path, max_bytes):
    """The last max_bytes of a log file (decompressed if rotated with gzip)."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            data = f.read()
        return data[-max_bytes:]
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        return f.read()


def collect_file(path, parts, max_bytes, name=None):
    """One log file given by path; True when collected."""
    try:
        data = _tail(path, max_bytes)
    except (OSError, EOFError) as exc:
        parts.note("logs: cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc))
        return False
    parts.add("logs/" + (name or os.path.basename(path)), data)
    progress("logs: %s (%d lines)" % (path, data.count(b"\n")))
    return True


def collect_journal(conf, parts, days):
    """Without log_dir the daemons log to stderr: under systemd, the journal.
    Returns how many units had lines; a unit without any is not claimed."""
    if not shutil.which("journalctl"):
        return 0
    found = 0
    for unit in conf.db_upgrade.bridge_systemd_units:
        try:
            proc = subprocess.run(
                [
                    "journalctl",
                    "--no-pager",
                    "--quiet",
                    "-o",
                    "short-iso",
                    "-u",
                    unit,
                    "--since",
                    "-%dh" % max(1, int(days * 24)),
                ],
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            parts.note("logs: journalctl -u %s failed: %s" % (unit, exc))
            continue
        if proc.returncode != 0:
            parts.note(
                "logs: journalctl -u %s: %s"
                % (unit, proc.stderr.decode("utf-8", "replace").strip()[:200])
            )
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip() and not ln.startswith(b"--")]
        if not lines:
            continue  # "-- No entries --" is not a log line
        parts.add("logs/journal-%s.log" % unit, b"\n".join(lines) + b"\n")
        progress("logs: journal of %s (%d lines)" % (unit, len(lines)))
        found += 1
    return found


def collect_tracker_output(conf, parts, max_bytes, already=()):
    """The file each tracker running on this host writes its stderr to (the
    quick start's .local/resultstracker.log, `tracker 2>> file`), found from
    the service registry and /proc. Returns how many were collected."""
    try:
        with app.build_store(conf, create=False) as store:
            services = store.list_services()
    except errors.BridgeError:
        return 0
    host, found, seen = socket.gethostname(), 0, {os.path.realpath(p) for p in already}
    for service in services:
        if service.get("host") != host or not service.get("pid"):
            continue
        try:
            target = os.readlink("/proc/%d/fd/2" % int(service["pid"]))
        except (OSError, ValueError):
            continue
        if not os.path.isfile(target) or os.path.realpath(target) in seen:
            continue
        seen.add(os.path.realpath(target))
        name = "%s-%s.log" % (service.get("name") or "tracker", service["pid"])
        found += collect_file(target, parts, max_bytes, name=name)
    return found


def collect_services(conf, parts):
    try:
        rows = services.collect(conf)
    except errors.BridgeError as exc:
        parts.note("services: %s" % exc)
        return
    parts.add("services.json", output.dumps(rows) + "\n")
    progress("services: %s" % ", ".join("%s %s" % (r["name"], r["state"]) for r in rows))


def collect_failures(conf, parts, since, limit):
    try:
        with app.build_store(conf, create=False) as store:
            records = store.list_executions(status=FAILED, since=since, limit=limit)
    except errors.BridgeError as exc:
        parts.note("failed executions: store unavailable: %s" % exc)
        return
    # execution_view masks secret input values; their texts are masked in
    # the whole archive too (a log line or an error may repeat them).
    for record in records:
        for secret in redact.input_secrets(record.get("input")):
            parts.redactor.add(secret)
    parts.add(
        "failed-executions.json", output.dumps([output.execution_view(r) for r in records]) + "\n"
    )
    progress("failed executions: %d since %s" % (len(records), output.iso(since)))


def versions_text():
    lines = [
        "st2bridge %s" % __version__,
        "python %s" % sys.version.split()[0],
        "platform %s" % platform.platform(),
    ]
    for name in PACKAGES:
        try:
            lines.append("%s %s" % (name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            lines.append("%s (not installed)" % name)
    return "\n".join(lines) + "\n"


def readme(conf, parts, now):
    lines = [
        "st2bridge collect-logs on %s at %s" % (socket.gethostname(), output.iso(now)),
        "config files: %s" % (", ".join(conf.config_file or []) or "(none: defaults)"),
        "",
        "files:",
    ]
    lines += ["  %s (%d bytes)" % (name, len(data)) for name, data in parts.members]
    lines += ["", "secrets (secret options, passwords in URLs) are shown as %s." % redact.MASK]
    if parts.notes:
        lines += ["", "not collected:"] + ["  " + n for n in parts.notes]
    return "\n".join(lines) + "\n"


def write_archive(path, base, members, now):
    """Write the tar.gz (mode 0600: logs are for the operator) atomically."""
    partial = path + ".part"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in members:
                info = tarfile.TarInfo("%s/%s" % (base, name))
                info.size, info.mtime, info.mode = len(data), int(now), 0o600
                tar.addfile(info, io.BytesIO(data))
        os.replace(partial, path)
    except OSError as exc:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise errors.InputError("cannot write %s: %s" % (path, exc.strerror or exc)) from None
