"""The SQLite store's files: how they are created, kept and watched.

- Created 0640, owned by the owner of their directory: a command run as root
  in the service user's state directory (install.sh's first steps) leaves a
  store that the daemon, running as that user, can write. SQLite gives the
  -wal and -shm files the same owner and mode.
- Identity: the store file, its -wal and its -shm are the same files (device
  and inode) as when they were opened. If any was replaced, deleted or
  renamed under a running process, that process would write into files
  nobody else sees, and its last close would copy its old log over the
  store: it stops writing (StoreLost) and never closes that connection.
- Checkpoints: SQLite copies the write-ahead log into the store file only
  when the log passes 1,000 pages, so a small store lived in the log alone.
  `Checkpointer` copies it every `interval` seconds and whenever the log
  grew by `wal_mb`, PASSIVE: it never waits for, nor blocks, anyone.
- Integrity: `quick_check` (PRAGMA quick_check), cached, for `services` and
  /v1/health: a corrupted store shows as down.
"""

import ctypes
import logging
import os
import time

from st2bridge.errors import StoreLost, StoreUnavailable

LOG = logging.getLogger(__name__)
MODE = 0o640
SUFFIXES = ("", "-wal", "-shm")
INTEGRITY_CACHE_SECONDS = 30.0


def create(path):
    """Create an empty store file, private, owned by its directory's owner
    (when this process may give it away: root). No-op if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreUnavailable(
            "cannot create SQLite store %s: %s" % (path, exc.strerror or exc)
        ) from None
    try:
        directory = os.stat(os.path.dirname(os.path.abspath(path)))
        if os.geteuid() == 0 and (directory.st_uid, directory.st_gid) != (0, 0):
            os.fchown(fd, directory.st_uid, directory.st_gid)
    finally:
        os.close(fd)


def identity(path):
    """{suffix: (device, inode)} of the store's files that exist now."""
    found = {}
    for suffix in SUFFIXES:
        try:
            st = os.stat(path + suffix)
        except FileNotFoundError:
            continue
        found[suffix] = (st.st_dev, st.st_ino)
    return found


def check_identity(path, opened):
    """StoreLost when a file this process has open is gone or is another file."""
    now = identity(path)
    for suffix, ident in opened.items():
        if now.get(suffix) != ident:
            what = "deleted or renamed" if suffix not in now else "replaced"
            raise StoreLost(
                "SQLite store %s: %s was %s under this process; it stops writing "
                "(restart it once the store is back in place)" % (path, path + suffix, what)
            )


def never_close(conn):
    """Keep a connection whose files were replaced from ever being closed,
    even at interpreter exit. Closing the last connection of a WAL database
    copies its log into the store file and deletes the -wal and -shm by
    name: this process's orphaned log would overwrite what the others wrote
    since, and their log would be deleted. One reference too many (never
    released) means SQLite never closes it; the OS drops it at exit."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))


def writable_problem(path):
    """Why this process cannot write the store (for a one-line error)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    user = _user_name(os.geteuid())
    return "user %s cannot write it (owner %s, mode %04o)" % (
        user,
        _user_name(st.st_uid),
        st.st_mode & 0o7777,
    )


def _user_name(uid):
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


class Checkpointer:
    """Decides after each write whether to copy the log into the store file."""

    def __init__(self, path, interval=60.0, wal_mb=16.0, clock=time.monotonic):
        self.wal = path + "-wal"
        self.interval = interval
        self.wal_bytes = int(wal_mb * 1024 * 1024)
        self.clock = clock
        self.last_at = clock()
        self.last_size = self._size()
        self.count = 0

    def _size(self):
        try:
            return os.path.getsize(self.wal)
        except OSError:
            return 0

    def due(self):
        if self.interval and self.clock() - self.last_at >= self.interval:
            return True
        return bool(self.wal_bytes) and self._size() - self.last_size >= self.wal_bytes

    def run(self, conn):
        """One PASSIVE checkpoint; (frames in the log, frames copied)."""
        self.last_at = self.clock()
        busy, log_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.last_size = self._size()
        self.count += 1
        if log_frames != copied:
            LOG.debug(
                "checkpoint of %s: %d of %d log frames copied (readers in the way)",
                self.wal,
                copied,
                log_frames,
            )
        return log_frames, copied


class IntegrityCache:
    """PRAGMA quick_check at most every INTEGRITY_CACHE_SECONDS."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.checked_at = None
        self.result = (True, "ok")

    def get(self, run):
        now = self.clock()
        if self.checked_at is None or now - self.checked_at >= INTEGRITY_CACHE_SECONDS:
            self.result = run()
            self.checked_at = now
        return self.result

    def failed(self, detail):
        self.result = (False, detail)
        self.checked_at = self.clock()
