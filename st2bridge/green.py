"""The one seam between the bridge and eventlet.

Only daemons call `monkey_patch()`, first thing, before anything opens a
socket or starts a thread. Everything else runs work through an executor and
never imports eventlet, so the CLI and the tests stay plain Python.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol


class Executor(Protocol):
    """What the poller and the callback listener run their work through."""

    def free(self) -> int: ...

    def running(self) -> int: ...

    def submit(self, fn: Callable[..., object], *args: Any) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    def concurrently(self, *fns: Callable[[], Any]) -> list[Any]: ...

    def wait(self, timeout: float) -> bool: ...


def _import_eventlet() -> Any:  # eventlet publishes no types
    # eventlet announces its own deprecation on import; the bridge keeps it
    # behind this seam precisely so it can be swapped out later.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        import eventlet
    return eventlet


def monkey_patch() -> None:
    """Make sockets, threads and time cooperative (daemons only).

    eventlet's green DNS resolver is disabled: it has broken /etc/hosts and
    IPv6 lookups in the past; a blocking lookup only happens when the pooled
    engine connection is re-opened.
    """
    os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
    _import_eventlet().monkey_patch()


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
    keep-alive, no thread per request."""

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

        self._sock = eventlet.listen((host, port))
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._thread = eventlet.spawn(
            wsgi.server,
            self._sock,
            app,
            log=_LoggerFile(logger, name),
            log_output=False,
            max_size=max_connections,
            socket_timeout=60,
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
        import time

        time.sleep(seconds)

    def concurrently(self, *fns: Callable[[], Any]) -> list[Any]:
        return [fn() for fn in fns]

    def wait(self, timeout: float) -> bool:
        return True


if TYPE_CHECKING:  # mypy: both executors are Executors

    def _are_executors(green: GreenExecutor, inline: InlineExecutor) -> list[Executor]:
        return [green, inline]
