"""Fixtures that start real parts: a Mistral 23 engine of the test session's
own (own home, port and RabbitMQ vhost), and bridge configs pointing at it.
The helpers they use are in tests/support/bridge.py."""

import signal
import time

import pytest

from tests.support.bridge import Bridge, Engine, start_listening_tracker
from tests.support.net import free_port
from tools.mistral_local import PrivateMistral


@pytest.fixture(scope="session")
def mistral(tmp_path_factory):
    """A running Mistral engine of this test session's own."""
    instance = PrivateMistral(tmp_path_factory.mktemp("mistral"), prefix="st2bridge-test")
    started = time.monotonic()
    if not instance.up(capture=True):
        pytest.fail("could not start Mistral:\n%s" % instance.output[-6000:])
    print("Mistral up on port %d in %.1f s" % (instance.port, time.monotonic() - started))
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
