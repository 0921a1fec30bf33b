"""The concurrency seam: only it imports eventlet, and the threading
backend's pool and server keep the eventlet ones' behaviour and limits."""

import ast
import logging
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from st2bridge import concurrency

ROOT = Path(__file__).resolve().parents[2]
SEAM = ROOT / "st2bridge" / "concurrency"


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_only_the_concurrency_package_imports_eventlet_or_waitress():
    offenders = [
        "%s imports %s" % (path.relative_to(ROOT), name)
        for folder in ("st2bridge", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if SEAM not in path.parents
        for name in imported_modules(path)
        if name.split(".")[0] in ("eventlet", "waitress")
    ]
    assert offenders == []
    assert "eventlet" in set(imported_modules(SEAM / "eventlet_backend.py"))


def test_backends_by_name_and_an_unknown_one():
    assert [concurrency.backend(name).name for name in concurrency.NAMES] == list(concurrency.NAMES)
    with pytest.raises(ValueError, match="unknown concurrency backend 'gevent'"):
        concurrency.backend("gevent")


def test_a_full_thread_pool_makes_submit_wait_for_a_worker():
    pool = concurrency.backend("threading").executor(2)
    release = threading.Event()
    pool.submit(release.wait)
    pool.submit(release.wait)
    assert (pool.running(), pool.free()) == (2, 0)
    third = threading.Thread(target=pool.submit, args=(lambda: None,))
    third.start()
    third.join(0.2)
    assert third.is_alive()  # waiting for a free worker, as GreenPool.spawn_n does
    release.set()
    third.join(5)
    assert pool.wait(5) and pool.running() == 0 and pool.free() == 2


def test_concurrently_runs_at_once_and_raises_what_a_call_raised():
    pool = concurrency.backend("threading").executor(1)
    started = time.monotonic()
    assert pool.concurrently(*[lambda i=i: time.sleep(0.2) or i for i in range(4)]) == [0, 1, 2, 3]
    assert time.monotonic() - started < 0.6

    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        pool.concurrently(lambda: 1, boom)


def test_wait_gives_up_after_its_timeout():
    pool = concurrency.backend("threading").executor(1)
    release = threading.Event()
    pool.submit(release.wait)
    assert pool.wait(0.1) is False
    release.set()
    assert pool.wait(5) is True


def echo(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got %d" % len(body)]


@pytest.fixture
def waitress_server():
    server = concurrency.backend("threading").wsgi_server(
        echo, "127.0.0.1", 0, logging.getLogger("test"), name="test", max_body=1000
    )
    yield "http://%s:%d" % server.address
    server.stop()


def test_waitress_serves_and_caps_headers_and_bodies(waitress_server):
    assert requests.post(waitress_server, data=b"x" * 10, timeout=5).text == "got 10"
    # The app refuses bodies over its max_body; waitress a little above it.
    assert requests.post(waitress_server, data=b"x" * 1500, timeout=5).text == "got 1500"
    assert requests.post(waitress_server, data=b"x" * 100_000, timeout=5).status_code == 413
    huge = {"X-Filler-%d" % i: "y" * 4000 for i in range(20)}  # 80 KB of headers
    assert requests.get(waitress_server, headers=huge, timeout=5).status_code == 431


def test_stopping_waitress_closes_its_port_and_open_connections():
    server = concurrency.backend("threading").wsgi_server(
        echo, "127.0.0.1", 0, logging.getLogger("test"), name="test"
    )
    idle = socket.create_connection(server.address, timeout=5)  # a keep-alive client
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    try:
        assert idle.recv(1) == b""  # closed by the server
    except ConnectionResetError:
        pass  # or reset, if it had not accepted it yet: closed either way
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1).close()
