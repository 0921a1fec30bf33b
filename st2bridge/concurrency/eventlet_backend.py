"""The eventlet backend: green threads in one OS thread (the default).

The only module of the bridge that imports eventlet. `prepare()` monkey-patches
sockets, threads and time, so libraries (requests, pymongo, sqlite3 calls
between yields) cooperate; it must run before they are imported.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from st2bridge.concurrency import MAX_HEADER_BYTES, READ_TIMEOUT

if TYPE_CHECKING:
    from st2bridge.concurrency import Backend, Executor


def _import_eventlet() -> Any:  # eventlet publishes no types
    # eventlet announces its own deprecation on import; the bridge keeps it
    # behind this seam so that the threading backend can replace it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        import eventlet
    return eventlet


class EventletBackend:
    name = "eventlet"

    def __init__(self) -> None:
        self._eventlet = _import_eventlet()
        from eventlet.green import threading as green_threading

        self._threading = green_threading

    def prepare(self) -> None:
        """Make sockets, threads and time cooperative (daemons only).

        eventlet's green DNS resolver is disabled: it has broken /etc/hosts and
        IPv6 lookups in the past; a blocking lookup only happens when the pooled
        engine connection is re-opened.
        """
        os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
        self._eventlet.monkey_patch()

    def executor(self, size: int) -> GreenExecutor:
        return GreenExecutor(size)

    def lock(self) -> Any:
        return self._threading.Lock()

    def rlock(self) -> Any:
        return self._threading.RLock()

    def event(self) -> Any:
        return self._threading.Event()

    def condition(self) -> Any:
        return self._threading.Condition()

    def sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

    def yield_(self) -> None:
        self._eventlet.sleep(0)

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
    ) -> WsgiServer:
        # Bodies: each app refuses an over-long Content-Length before reading.
        return WsgiServer(app, host, port, logger, max_connections=max_connections, name=name)


class GreenExecutor:
    """Runs calls in an eventlet GreenPool of a fixed size."""

    def __init__(self, size: int) -> None:
        eventlet = _import_eventlet()
        self._eventlet = eventlet
        self._pool = eventlet.GreenPool(size)

    def free(self) -> int:
        return int(self._pool.free())

    def running(self) -> int:
        return int(self._pool.running())

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        self._pool.spawn_n(fn, *args)

    def sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

    def concurrently(self, *fns: Callable[[], Any]) -> list[Any]:
        """Call the functions at the same time; their results, in order.
        (Extra green threads, outside the pool: they are short requests made
        on behalf of a call the pool already counts.)"""
        others = [self._eventlet.spawn(fn) for fn in fns[1:]]
        first = fns[0]()
        return [first] + [thread.wait() for thread in others]

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for in-flight calls; True if all ended."""
        with self._eventlet.Timeout(timeout, False):
            self._pool.waitall()
        return bool(self._pool.running() == 0)


class WsgiServer:
    """eventlet's WSGI server in a green thread: many concurrent connections,
    keep-alive, no thread per request. Its own caps: request line and each
    header line 8 KB, all headers 64 KB (MAX_HEADER_BYTES)."""

    def __init__(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        logger: logging.Logger,
        max_connections: int = 1024,
        name: str = "callback listener",
    ) -> None:
        eventlet = _import_eventlet()
        from eventlet import wsgi

        assert wsgi.MAX_TOTAL_HEADER_SIZE == MAX_HEADER_BYTES
        self._sock = eventlet.listen((host, port))
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._thread = eventlet.spawn(
            wsgi.server,
            self._sock,
            app,
            log=_LoggerFile(logger, name),
            log_output=False,
            max_size=max_connections,
            socket_timeout=READ_TIMEOUT,
            debug=False,
        )

    def stop(self) -> None:
        self._thread.kill()
        self._sock.close()


class _LoggerFile:
    """eventlet.wsgi writes errors to a file-like object: send them to logging."""

    def __init__(self, logger: logging.Logger, name: str = "callback listener") -> None:
        self.logger = logger
        self.name = name

    def write(self, message: str) -> None:
        if message.strip():
            self.logger.warning("%s: %s", self.name, message.strip())

    def flush(self) -> None:
        pass


if TYPE_CHECKING:  # mypy: the classes fit the seam's protocols

    def _fits(backend: EventletBackend, pool: GreenExecutor) -> tuple[Backend, Executor]:
        return backend, pool
