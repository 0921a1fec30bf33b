"""The results tracker as real processes against a real Mistral: several
trackers on one embedded store, kill -9, SIGTERM, and an engine API outage."""

import collections
import json
import re
import signal
import time
import uuid

import pytest

from st2bridge import status as st
from st2bridge import workflow
from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.runner import Runner
from st2bridge.store import open_store
from tests.support import tcp_relay

pytestmark = pytest.mark.integration

SLEEPY = """version: '2.0'
{name}:
  input: [seconds, tag]
  output:
    tag: <% $.tag %>
    slept: <% $.seconds %>
  tasks:
    nap:
      action: std.sleep seconds=<% $.seconds %>
      on-success: [done]
    done:
      action: std.noop
"""

FAST_TRACKER = (
    "query_interval = 0.5\nlease_seconds = 4\nheartbeat_interval = 1\ndrain_timeout = 10\n"
)
FINISHED = re.compile(r"execution (\S+) (succeeded|failed|canceled) \(finished by poll\)")


def start_workflows(bridge, api_url, count, seconds):
    """Start `count` sleepy workflows through the bridge's runner (in-process,
    like the CLI does) and return their records."""
    name = "sleepy_%s" % uuid.uuid4().hex[:8]
    wf = workflow.parse(SLEEPY.format(name=name), "sleepy.yaml")
    engine = MistralClient(api_url, retry=RetryPolicy(stop_max_msec=10000))
    with open_store("sqlite:///%s" % (bridge.dir / "bridge.db")) as store:
        runner = Runner(engine, store, query_interval=0.5)
        return [runner.start(wf, name, {"seconds": seconds(i), "tag": i}) for i in range(count)]


def wait_all_final(bridge, ids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = {r["id"]: r for r in bridge.records()}
        if all(st.is_terminal(records[i]["status"]) for i in ids):
            return records
        time.sleep(0.5)
    pending = [i for i in ids if not st.is_terminal(records[i]["status"])]
    pytest.fail("%d executions never finished in the bridge: %s" % (len(pending), pending[:5]))


def wait_registered(bridge, count, timeout=60):
    """Wait until `count` trackers are in the service registry (a daemon
    registers after it installed its signal handlers)."""
    deadline = time.monotonic() + timeout
    with open_store("sqlite:///%s" % (bridge.dir / "bridge.db")) as store:
        while len(store.list_services()) < count:
            if time.monotonic() > deadline:
                pytest.fail("the trackers did not register within %d s" % timeout)
            time.sleep(0.2)


def completions(bridge):
    """How many times each execution was recorded finished, over every tracker log."""
    counts = collections.Counter()
    for log in bridge.dir.glob("tracker-*.log"):
        counts.update(m.group(1) for m in FINISHED.finditer(log.read_text()))
    return counts


def assert_matches_engine(mistral, records, ids):
    for i in ids:
        engine_view = mistral.get("/executions/%s" % records[i]["engine_execution_id"])
        assert engine_view["state"] == "SUCCESS"
        assert records[i]["status"] == st.SUCCEEDED
        assert records[i]["output"] == json.loads(engine_view["output"])


def test_three_trackers_kill9_and_sigterm_lose_nothing(bridge, mistral):
    bridge.write(extra=FAST_TRACKER)
    records = start_workflows(bridge, mistral.api_url, 50, seconds=lambda i: 2 + i % 7)
    ids = [r["id"] for r in records]
    trackers = [bridge.start_tracker() for _ in range(3)]
    try:
        wait_registered(bridge, 3)  # signal handlers in place, however slow the start
        time.sleep(1)  # all three busy, executions still running
        trackers[0].kill()  # kill -9: its leases must lapse
        trackers[0].wait()
        trackers[1].send_signal(signal.SIGTERM)  # graceful: drains and releases
        assert trackers[1].wait(timeout=30) == 0
        final = wait_all_final(bridge, ids, timeout=90)
    finally:
        for t in trackers[2:]:
            t.send_signal(signal.SIGTERM)
            assert t.wait(timeout=30) == 0
    assert_matches_engine(mistral, final, ids)
    counts = completions(bridge)
    assert {i: counts[i] for i in ids} == {i: 1 for i in ids}, (
        "a completion was recorded twice or never"
    )
    assert [r["tag"] for r in (final[i]["output"] for i in ids)] == list(range(50))


def test_sigterm_drains_releases_and_leaves_the_registry(bridge, mistral):
    bridge.write(extra=FAST_TRACKER)
    start_workflows(bridge, mistral.api_url, 3, seconds=lambda i: 30)
    tracker = bridge.start_tracker()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            services = json.loads(bridge.cli("services", "--json").stdout)
            mine = [s for s in services if s["name"] == "st2bridge-resultstracker"]
            if mine and mine[0]["state"] == "alive" and "checks" in mine[0]["detail"]:
                break
            time.sleep(0.5)
        assert mine and mine[0]["state"] == "alive"
        engine_row = [s for s in services if s["name"] == "engine API"][0]
        assert engine_row["state"] == "up"
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0
    with open_store("sqlite:///%s" % (bridge.dir / "bridge.db")) as store:
        assert store.list_services() == []
        assert all(r["lease_owner"] is None for r in store.list_executions())
    log = next(bridge.dir.glob("tracker-*.log")).read_text()
    assert "SIGTERM received" in log and "released" in log


def test_engine_api_down_30s_nothing_lost(bridge, mistral):
    proxy = tcp_relay.Relay([int(mistral.api_url.split(":")[2].split("/")[0])])
    api_via_proxy = "http://127.0.0.1:%d/v2" % proxy.port
    try:
        bridge.write(api_url=api_via_proxy, extra=FAST_TRACKER)
        records = start_workflows(bridge, api_via_proxy, 10, seconds=lambda i: 8 + i)
        ids = [r["id"] for r in records]
        tracker = bridge.start_tracker()
        try:
            wait_registered(bridge, 1)
            time.sleep(1)
            proxy.down()  # every workflow finishes meanwhile
            time.sleep(30)
            during = {r["id"]: r["status"] for r in bridge.records()}
            assert all(during[i] == st.RUNNING for i in ids), (
                "nothing can finish while the API is down"
            )
            proxy.up()
            final = wait_all_final(bridge, ids, timeout=60)
        finally:
            tracker.send_signal(signal.SIGTERM)
            assert tracker.wait(timeout=30) == 0
    finally:
        proxy.close()
    assert_matches_engine(mistral, final, ids)
    log = next(bridge.dir.glob("tracker-*.log")).read_text()
    assert "cannot reach the engine" in log
