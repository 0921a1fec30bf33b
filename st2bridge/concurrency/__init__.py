"""The concurrency seam: eventlet's green threads or native threads.

A process runs under one backend, chosen at start-up from `[DEFAULT]
concurrency` (`init()`, daemons only, before anything opens a socket or starts
a thread). The backend supplies every primitive the bridge uses: pools of
workers (executors), locks, events, conditions, sleep, a yield, and the WSGI
server of the listeners. The rest of the code asks `current()` for them and
never imports eventlet or waitress; only `eventlet_backend` imports eventlet.

Until a daemon chooses, the backend is native threads without a server
(commands and tests stay plain Python).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

NAMES = ("eventlet", "threading")
DEFAULT = "eventlet"

LOG = logging.getLogger("st2bridge.concurrency")


class Executor(Protocol):
    """What the poller, the callback listener and the API's loops run their
    work through: a pool of `size` workers. `submit` waits for a free worker
    when all are busy (back-pressure, as eventlet's GreenPool does)."""

    def free(self) -> int: ...

    def running(self) -> int: ...

    def submit(self, fn: Callable[..., object], *args: Any) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    def concurrently(self, *fns: Callable[[], Any]) -> list[Any]: ...

    def wait(self, timeout: float) -> bool: ...


class Server(Protocol):
    """A listener serving one WSGI app; `address` is where it listens."""

    address: tuple[str, int]

    def stop(self) -> None: ...


class Backend(Protocol):
    name: str

    def prepare(self) -> None:
        """Process-wide set-up, before the rest of the bridge is imported."""

    def executor(self, size: int) -> Executor: ...

    def lock(self) -> Any: ...

    def rlock(self) -> Any: ...

    def event(self) -> Any: ...

    def condition(self) -> Any: ...

    def sleep(self, seconds: float) -> None: ...

    def yield_(self) -> None:
        """Let other workers run (a writer waiting for others to join its batch)."""

    def wsgi_server(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        logger: logging.Logger,
        *,
        name: str,
        max_connections: int = 1024,
        max_body: int | None = None,
    ) -> Server:
        """Serve `app` on host:port in this process's workers, hardened alike
        under every backend: at most `max_connections` connections at once, a
        client silent for READ_TIMEOUT seconds (headers or body) is dropped,
        headers capped at MAX_HEADER_BYTES; bodies over `max_body` are the
        app's to refuse (each app checks Content-Length before reading)."""
        ...


# The listeners' hardening, the same under both backends.
READ_TIMEOUT = 60  # seconds a client may stay silent mid-request
MAX_HEADER_BYTES = 65536  # request line and headers (eventlet.wsgi's own cap)


def backend(name: str) -> Backend:
    """A new backend by name (see NAMES)."""
    if name == "eventlet":
        from st2bridge.concurrency.eventlet_backend import EventletBackend

        return EventletBackend()
    if name == "threading":
        from st2bridge.concurrency.threading_backend import ThreadingBackend

        return ThreadingBackend()
    raise ValueError("unknown concurrency backend %r (choose from %s)" % (name, ", ".join(NAMES)))


_current: Backend | None = None


def init(name: str) -> Backend:
    """Choose this process's backend and prepare it (eventlet monkey-patches
    here). Daemons call it once, first thing after reading the config."""
    global _current
    chosen = backend(name)
    chosen.prepare()
    _current = chosen
    return chosen


def current() -> Backend:
    """This process's backend (native threads until a daemon chose)."""
    global _current
    if _current is None:
        _current = backend("threading")
    return _current


class Tally(dict[str, int]):
    """Counts that workers add to at once (`+=` on a shared dict is not
    atomic under native threads); reads are plain dict reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = current().lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self[key] = self.get(key, 0) + n


class InlineExecutor:
    """Runs each call at once in the caller (tests, and one-shot commands)."""

    def __init__(self, size: int = 1) -> None:
        self.size = size

    def free(self) -> int:
        return self.size

    def running(self) -> int:
        return 0

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        fn(*args)

    def sleep(self, seconds: float) -> None:
        current().sleep(seconds)

    def concurrently(self, *fns: Callable[[], Any]) -> list[Any]:
        return [fn() for fn in fns]

    def wait(self, timeout: float) -> bool:
        return True


def sleep(seconds: float) -> None:
    """Sleep under this process's backend (a default for `sleep=` parameters,
    looked up at each call, not when the module was imported)."""
    current().sleep(seconds)
