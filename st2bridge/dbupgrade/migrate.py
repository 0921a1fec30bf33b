"""Run the engine's migration commands, streaming their output.

Commands are configured as shell-like strings with the placeholder
{engine_config_file}; they run without a shell, without our PYTHONPATH (the
engine lives in its own virtualenv), with stdin closed.
"""

import os
import re
import shlex
import signal
import subprocess
import threading
import time

from st2bridge import errors

PLACEHOLDER = "{engine_config_file}"
# alembic history lines: "044 -> 045 (head), Add indexes ..." / "<base> -> 001, Kilo"
_HISTORY = re.compile(r"^\s*(\S+) -> (\S+?)(?: \(([^)]*)\))?,")


def render(template, config_file):
    """argv for a command template; ConfigError if it cannot be parsed."""
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise errors.ConfigError(
            "cannot parse [db_upgrade] command %r: %s" % (template, exc)
        ) from None
    if not argv:
        raise errors.ConfigError("a [db_upgrade] command is empty")
    return [token.replace(PLACEHOLDER, config_file) for token in argv]


def child_env():
    """Our environment without what would make another virtualenv's Python
    import our packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run(argv, *, on_line, redact=str, timeout=1800.0):
    """Run argv; call on_line(text) for each output line (stdout and stderr
    merged) as it comes. Returns (exit code, last 20 lines)."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env(),
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise errors.ConfigError(
            "command not found: %s (check [db_upgrade] manage_command "
            "and migrate_commands)" % argv[0]
        ) from None
    except PermissionError:
        raise errors.ConfigError("command not executable: %s" % argv[0]) from None
    timed_out = []

    def kill():
        timed_out.append(True)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(5)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    last = []
    try:
        for line in proc.stdout:
            line = redact(line.rstrip("\n"))
            last = (last + [line])[-20:]
            on_line(line)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted: do not leave a migration half-watched
            proc.kill()
            proc.wait()
    if timed_out:
        last.append(
            "(stopped after %.0f s: [db_upgrade] command_timeout)" % (time.monotonic() - started)
        )
        return -signal.SIGTERM, last
    return code, last


def capture(argv, *, redact=str, timeout=300.0):
    """Run argv quietly; (exit code, output)."""
    lines = []
    code, _ = run(argv, on_line=lines.append, redact=redact, timeout=timeout)
    return code, "\n".join(lines)


def parse_history(text):
    """Revisions from the first to the head, from `alembic history` output.
    ValueError when there is not exactly one head."""
    parent = {}
    heads = []
    for line in text.splitlines():
        match = _HISTORY.match(line)
        if not match:
            continue
        down, up, tags = match.groups()
        parent[up] = None if down == "<base>" else down
        if tags and "head" in [t.strip() for t in tags.split(",")]:
            heads.append(up)
    if not parent:
        raise ValueError("no revisions in the history output")
    if len(heads) != 1:
        raise ValueError("expected one head revision, found %s" % (heads or "none"))
    chain = []
    rev = heads[0]
    while rev is not None:
        if rev in chain:
            raise ValueError("the revision history has a cycle at %s" % rev)
        chain.append(rev)
        rev = parent.get(rev)
    return list(reversed(chain))


def revisions(manage_template, config_file, redact=str):
    """The engine's migration revisions, oldest first (the last is the head)."""
    argv = render(manage_template, config_file) + ["history"]
    code, out = capture(argv, redact=redact)
    if code != 0:
        raise errors.MigrationFailed(
            "`%s history` failed (exit %d): %s" % (shlex.join(argv[:1]), code, _last_error(out))
        )
    try:
        return parse_history(out)
    except ValueError as exc:
        raise errors.MigrationFailed(
            "cannot read the engine's migration history: %s" % exc
        ) from None


def _last_error(out):
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


last_error = _last_error
