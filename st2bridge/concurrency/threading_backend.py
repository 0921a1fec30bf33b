"""The threading backend: native threads, and waitress as the WSGI server.

Nothing is patched: a call that blocks (a SQLite lock wait, a slow DNS
lookup) holds up its own thread only, where under eventlet it holds up the
whole process. Workers cost an OS thread each, so pools are as large as the
configuration says and no larger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from st2bridge.concurrency import MAX_HEADER_BYTES, READ_TIMEOUT

if TYPE_CHECKING:
    from st2bridge.concurrency import Backend, Executor

# waitress answers requests with its own worker threads; the API's streams
# hold one each for as long as they are open, so the API asks for more.
SERVER_THREADS = 16
STOP_SECONDS = 5.0


class ThreadingBackend:
    name = "threading"

    def prepare(self) -> None:
        pass  # nothing to patch

    def executor(self, size: int) -> ThreadExecutor:
        return ThreadExecutor(size)

    def lock(self) -> Any:
        return threading.Lock()

    def rlock(self) -> Any:
        return threading.RLock()

    def event(self) -> Any:
        return threading.Event()

    def condition(self) -> Any:
        return threading.Condition()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def yield_(self) -> None:
        time.sleep(0)  # gives up the GIL: threads about to write join the batch

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
    ) -> WaitressServer:
        return WaitressServer(
            app, host, port, logger, name=name, max_connections=max_connections, max_body=max_body
        )


class ThreadExecutor:
    """A pool of `size` native threads with the GreenPool's behaviour: `submit`
    waits for a free worker, `free()`/`running()` count workers, not queued
    calls (there is no queue)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="st2bridge")
        # For concurrently(): started as needed, then kept (a thread per call
        # cost more than the reads it overlaps); room for 4 extra calls per worker.
        self._helpers = ThreadPoolExecutor(
            max_workers=4 * size + 4, thread_name_prefix="st2bridge-aux"
        )
        self._slots = threading.BoundedSemaphore(size)
        self._idle = threading.Condition()
        self._running = 0

    def free(self) -> int:
        return self.size - self._running

    def running(self) -> int:
        return self._running

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        self._slots.acquire()
        with self._idle:
            self._running += 1
        self._pool.submit(self._call, fn, args)

    def _call(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:  # as eventlet does: the worker lives on, the error is told
            logging.getLogger("st2bridge").exception("unhandled error in a worker")
        finally:
            with self._idle:
                self._running -= 1
                if self._running == 0:
                    self._idle.notify_all()
            self._slots.release()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def concurrently(self, *fns: Callable[[], Any]) -> list[Any]:
        """Call the functions at the same time; their results, in order
        (the others run on helper threads outside the pool, as the green
        executor's extra green threads do; kept, not started per call)."""
        others = [self._helpers.submit(fn) for fn in fns[1:]]
        try:
            first = fns[0]()
        finally:
            futures.wait(others)
        return [first] + [f.result() for f in others]  # re-raises, as GreenThread.wait does

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for in-flight calls; True if all ended."""
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout)
            return self._running == 0


class WaitressServer:
    """waitress in a thread of its own: one select loop for the connections,
    SERVER_THREADS workers for the requests. The same hardening as eventlet's
    server: `max_connections`, READ_TIMEOUT for a silent client, headers
    capped at MAX_HEADER_BYTES. waitress reads a body before the app runs, so
    it is capped too: at `max_body` and a margin (the app answers 413 below
    that; waitress above)."""

    def __init__(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        logger: logging.Logger,
        *,
        name: str,
        max_connections: int = 1024,
        max_body: int | None = None,
    ) -> None:
        from waitress.server import create_server

        self.name = name
        threads = SERVER_THREADS if max_connections < 256 else max(SERVER_THREADS, 64)
        self._server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            connection_limit=max_connections,
            channel_timeout=READ_TIMEOUT,
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=(max_body or 1 << 30) + 65536,
            asyncore_use_poll=True,  # select() stops at 1024 descriptors
            ident=None,  # no Server header, as under eventlet
            clear_untrusted_proxy_headers=True,
        )
        self.address: tuple[str, int] = (
            str(self._server.effective_host),
            int(self._server.effective_port),
        )
        self._thread = threading.Thread(
            target=self._serve, args=(logger,), name="wsgi %s" % name, daemon=True
        )
        self._thread.start()

    def _serve(self, logger: logging.Logger) -> None:
        try:
            self._server.run()
        except Exception:
            logger.exception("%s: server loop failed", self.name)

    def stop(self) -> None:
        """Close the listening socket and every connection, from inside the
        server's loop (its sockets are not ours to close from another thread)."""

        def close_all() -> None:
            for channel in list(self._server._map.values()):
                channel.close()

        self._server.trigger.pull_trigger(close_all)
        self._thread.join(STOP_SECONDS)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_SECONDS)


if TYPE_CHECKING:  # mypy: the classes fit the seam's protocols

    def _fits(backend: ThreadingBackend, pool: ThreadExecutor) -> tuple[Backend, Executor]:
        return backend, pool
