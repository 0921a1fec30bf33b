"""`st2bridge doctor` against the test session's real Mistral and a real
tracker: the callback self-test is a real execution whose webhook must reach
the tracker's listener."""

import json
import signal

import pytest

from tests.support.bridge import start_listening_tracker
from tests.support.net import free_port

pytestmark = pytest.mark.integration
# The daemons' default ports stay free (metrics 9102, web 9103).
NO_LISTENERS = "[metrics]\nport = 0\n[web]\nport = 0\n"


@pytest.fixture
def hybrid(bridge):
    """A tracker in hybrid mode listening for callbacks; no other listeners."""
    port = free_port()
    bridge.write(mode="hybrid", callback_port=port, extra=NO_LISTENERS)
    tracker = start_listening_tracker(bridge, port)
    yield bridge
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0


def doctor(bridge, *extra):
    proc = bridge.cli("doctor", "--json", *extra, timeout=120)
    rows = {row["check"]: row for row in json.loads(proc.stdout)["checks"]}
    return proc.returncode, rows


def test_all_well_with_a_tracker_listening(hybrid):
    code, rows = doctor(hybrid)
    assert code == 0, rows
    assert rows["callbacks"]["state"] == "ok"
    assert rows["callbacks"]["detail"].startswith(
        "the engine's webhook reached %s" % hybrid.callback
    )
    assert rows["clock"]["state"] == "ok"  # same host: no skew
    assert rows["trackers"]["detail"].startswith("1 alive")
    assert rows["engine"]["state"] == rows["store"]["state"] == rows["stuck"]["state"] == "ok"


def test_a_callback_url_the_engine_cannot_reach_is_found(hybrid):
    nobody = "http://127.0.0.1:%d" % free_port()
    hybrid.write(mode="hybrid", callback_port=free_port(), callback_url=nobody, extra=NO_LISTENERS)
    code, rows = doctor(hybrid, "--callback-timeout", "30")
    assert code == 1
    assert rows["callbacks"]["state"] == "FAIL"
    assert "no webhook from the engine reached %s" % nobody in rows["callbacks"]["detail"]
    assert "denied_cidrs" in rows["callbacks"]["fix"]
