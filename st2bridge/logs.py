"""Logging of the bridge's commands and daemons.

- Where: stderr by default (journald under systemd); with `[DEFAULT] log_dir`
  one file per component, `<log_dir>/<component>.log`, written through a
  WatchedFileHandler, which reopens the file when logrotate has moved it
  (no copytruncate, no signal needed).
- How much: `[DEFAULT] log_level`. A daemon re-reads it on SIGHUP
  (`reload_level`), so DEBUG can be switched on without a restart.
- Never a secret: every line goes through a formatter that masks the
  configuration's secrets and passwords inside URLs (st2bridge.redact),
  tracebacks included. The engine client does not log tokens in the first
  place; this is the net under it.
"""

import logging
import logging.handlers
import os
import sys
import time

from st2bridge import concurrency, config, errors, redact

LOG = logging.getLogger(__name__)
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

TRACKER = "st2bridge-resultstracker"
API = "st2bridge-api"
CLI = "st2bridge"
DB_UPGRADE = "st2bridge-db-upgrade"

# Libraries that log every connection, job run or request: kept to warnings
# whatever the bridge's level (keystoneauth's debug lines show request bodies).
NOISY = ("urllib3", "waitress", "keystoneauth", "stevedore")


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks every secret in the whole text."""

    def __init__(self, secrets, fmt=FORMAT):
        super().__init__(fmt)
        self.redactor = redact.Redactor(secrets)

    def format(self, record):
        return self.redactor(super().format(record))


class PrivateFileHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler whose files are created 0640 (owner and its
    group, as logrotate's `create 0640` does): logs name executions, hosts
    and errors, which are not for every user of the machine. A file that
    root creates in the service user's log directory is given to that user,
    as the store is (st2bridge.store.sqlite_file)."""

    def _open(self):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(self.baseFilename, flags | os.O_EXCL, 0o640)
        except FileExistsError:
            fd = os.open(self.baseFilename, flags, 0o640)
        else:
            _give_to_directory_owner(fd, self.baseFilename)
        return open(fd, self.mode.replace("w", "a"), encoding=self.encoding, errors=self.errors)


def _give_to_directory_owner(fd, path):
    if os.geteuid() != 0:
        return
    directory = os.stat(os.path.dirname(os.path.abspath(path)))
    if (directory.st_uid, directory.st_gid) != (0, 0):
        os.fchown(fd, directory.st_uid, directory.st_gid)


class RateLimitedLog:
    """At most one line per `interval` seconds for each kind of event (`key`);
    the events in between are counted and the next line says how many, so a
    flood (a client hammering an endpoint) costs a line a minute, not one per
    request, and nothing goes unmentioned. Shared by the listeners.

        REJECTED = RateLimitedLog(LOG)
        REJECTED.log(logging.WARNING, 404, "callback for unknown execution %s", eid)
    """

    def __init__(self, logger, interval=60.0, clock=time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last = {}  # key -> when its last line was written
        self._held = {}  # key -> events not written since
        self._lock = concurrency.current().lock()

    def log(self, level, key, message, *args):
        """Write the line now, or count it; True when written."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
        if held:
            message += " (and %d more like it in the last %.0f s)"
            args += (held, now - last)
        self.logger.log(level, message, *args)
        return True


def log_path(conf, component):
    return os.path.join(conf.log_dir, component + ".log") if conf.log_dir else None


def setup(conf, component, stream=None, quiet=False, strict=True):
    """Configure the root logger for one component.

    Daemons (`quiet=False`) log at log_level to the component's file, or to
    `stream` when log_dir is unset. Commands (`quiet=True`) keep stderr to
    warnings and errors (unless DEBUG) and write log_level to their file.
    A log file that cannot be opened is a ConfigError when `strict` (daemons);
    a command warns once on stderr and goes on.
    """
    stream = stream or sys.stderr
    redact.configure(conf)
    level = logging.getLevelName(conf.log_level)
    formatter = RedactingFormatter(redact.secret_values(conf))
    handlers = []
    path = log_path(conf, component)
    file_problem = None
    if path:
        try:
            os.makedirs(conf.log_dir, exist_ok=True)
            handler = PrivateFileHandler(path, encoding="utf-8")
        except OSError as exc:
            file_problem = "cannot write log file %s: %s" % (path, exc.strerror or exc)
            if strict:
                raise errors.ConfigError(file_problem + " (check [DEFAULT] log_dir)") from None
        else:
            handler.setLevel(level)
            handler.st2bridge_follows_level = True
            handlers.append(handler)
    if quiet or not handlers:
        handler = logging.StreamHandler(stream)
        if quiet and level != logging.DEBUG:
            handler.setLevel(max(level, logging.WARNING))
        else:
            handler.setLevel(level)
            handler.st2bridge_follows_level = True
        handlers.append(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    _set_levels(level)
    if file_problem:
        LOG.warning("%s; logging to stderr only", file_problem)
    for warning in getattr(conf, "warnings", ()):
        logging.getLogger("st2bridge.config").warning("%s", warning)
    return path if not file_problem else None


def command_component(command):
    """The log file of a `st2bridge COMMAND` run."""
    return DB_UPGRADE if command == "db-upgrade" else CLI


def _set_levels(level):
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "st2bridge_follows_level", False):
            handler.setLevel(level)
    root.setLevel(min([level] + [h.level for h in root.handlers if h.level]))
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))


def reload_level(conf):
    """Re-read the config files and apply their log_level (SIGHUP).

    The files are first loaded into a fresh configuration, so a broken file
    leaves everything as it was, and says why in one line. Only log_level
    changes in the running daemon (it is the one option marked mutable);
    oslo.config warns about any other option that changed and needs a
    restart. Never raises: a daemon must survive a bad reload.
    Returns the level now in effect.
    """
    old = conf.log_level
    try:
        fresh = config.reread(conf)
        conf.mutate_config_files()
        new = conf.log_level
    except errors.ConfigError as exc:
        LOG.warning("SIGHUP: configuration not re-read: %s; log level stays %s", exc, old)
        return old
    except Exception as exc:  # oslo.config's own errors: keep the old configuration
        LOG.warning(
            "SIGHUP: configuration not re-read (%s); log level stays %s",
            type(exc).__name__,
            old,
        )
        return old
    for warning in fresh.warnings:
        LOG.warning("SIGHUP: %s", warning)
    old_no, new_no = logging.getLevelName(old), logging.getLevelName(new)
    # Say it while the more verbose of the two levels is in effect.
    say_at = max(logging.INFO, min(old_no, new_no))
    if new_no > old_no:
        LOG.log(say_at, "SIGHUP: log level changed from %s to %s", old, new)
    _set_levels(new_no)
    if new_no < old_no:
        LOG.log(say_at, "SIGHUP: log level changed from %s to %s", old, new)
    elif new_no == old_no:
        LOG.log(say_at, "SIGHUP: configuration re-read; log level stays %s", new)
    return new
