"""Fixtures that start real parts: a Mistral 23 engine of the test session's
own (own home, port and RabbitMQ vhost), and bridge configs pointing at it.
The helpers they use are in tests/support/bridge.py."""

import os
import signal
import socket
import time

import pytest

from tests.support.bridge import Bridge, Engine, start_listening_tracker
from tests.support.browser import browser  # noqa: F401 -- headless Chromium, a fixture
from tests.support.net import free_port
from tools.mistral_local import PrivateMistral


def engine_database():
    """The session engine's database: PostgreSQL when it is there (CI has it).
    Mistral 23 on SQLite loses state changes when several executions run at
    once on a loaded machine ("database is locked": executions left RUNNING),
    and the tests run many at once. ST2BRIDGE_TEST_MISTRAL_DB overrides."""
    chosen = os.environ.get("ST2BRIDGE_TEST_MISTRAL_DB")
    if chosen:
        return chosen
    with socket.socket() as sock:
        sock.settimeout(1)
        return "postgresql" if sock.connect_ex(("127.0.0.1", 5432)) == 0 else "sqlite"


@pytest.fixture(scope="session")
def mistral(tmp_path_factory):
    """A running Mistral engine of this test session's own."""
    instance = PrivateMistral(
        tmp_path_factory.mktemp("mistral"), db=engine_database(), prefix="st2bridge-test"
    )
    started = time.monotonic()
    if not instance.up(capture=True):
        pytest.fail("could not start Mistral:\n%s" % instance.output[-6000:])
    print(
        "Mistral up on port %d (%s) in %.1f s"
        % (instance.port, instance.db, time.monotonic() - started)
    )
    yield Engine(instance.api_url, instance.home)
    instance.stop()


@pytest.fixture
def bridge(tmp_path, mistral):
    return Bridge(tmp_path, mistral.api_url)


@pytest.fixture
def hybrid(bridge):
    """The bridge with a tracker in hybrid mode; with stale_after at 60 s,
    only callbacks can act within a test. `bridge.callback` is its URL."""
    port = free_port()
    bridge.write(mode="hybrid", callback_port=port, extra="stale_after = 60\n")
    tracker = start_listening_tracker(bridge, port)
    yield bridge
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0
