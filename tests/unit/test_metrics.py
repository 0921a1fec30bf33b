"""Prometheus metrics: lease takeovers counted by both stores, and the
endpoint of a real tracker process whose values move."""

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mongomock
import pytest
import requests

from st2bridge import status as st
from st2bridge.metrics import callback_outcome
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from st2bridge.store.mongo import MongoStore
from tests.support import engine_sim
from tests.support.net import free_port

# Starts processes or real listeners: deselect with -m 'not process' for the fast loop.
pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def running(eid, now):
    return new_execution_record(
        id=str(uuid.uuid4()),
        workflow_name="wf",
        engine_execution_id=eid,
        status=st.RUNNING,
        created_at=now,
        updated_at=now,
        tracked=True,
        next_poll_at=now,
    )


@pytest.fixture(params=["sqlite", "mongo"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    else:
        with mongomock.patch(servers=(("localhost", 27017),)):
            s = MongoStore("mongodb://localhost:27017/t", database="t")
    yield s
    s.close()


def test_a_claim_of_a_lapsed_lease_is_a_takeover(store):
    now = 1000.0
    for i in range(3):
        store.create_execution(running("e%d" % i, now))
    assert len(store.claim_due("a", now, 10, 10)) == 3 and store.lease_takeovers == 0
    # "a" finishes one check (releases it) and dies with two in flight.
    first = store.list_executions()[0]["id"]
    store.update_execution(first, {"lease_owner": None, "lease_expires_at": None})
    reported = []
    store.observe_takeovers = reported.append  # the metrics hook, told as it happens
    claimed = store.claim_due("b", now + 11, 10, 10)
    assert len(claimed) == 3 and store.lease_takeovers == 2 and sum(reported) == 2
    assert {r["lease_owner"] for r in claimed} == {"b"}
    assert {r["lease_expires_at"] for r in claimed} == {now + 21}


def test_callback_outcomes():
    assert [callback_outcome(c) for c in (200, 401, 404, 503)] == [
        "accepted",
        "rejected",
        "rejected",
        "error",
    ]


def scrape(url):
    """{'name{labels}': value} of one scrape."""
    values = {}
    for line in requests.get(url, timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def test_endpoint_of_a_real_tracker(tmp_path, backend_name):
    sim = engine_sim.start_in_thread(duration=1)
    port, cb_port = free_port(), free_port()
    proc = None
    try:
        ids = requests.post(
            sim.base + "/_sim/executions", json={"count": 4, "duration": 3}, timeout=5
        ).json()["ids"]
        gone = ids[0]
        requests.put(sim.base + "/_sim/faults", json={"not_found": [gone]}, timeout=5)
        with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as s:
            now = time.time()
            for eid in ids:
                s.create_execution(running(eid, now))
        conf = tmp_path / "bridge.conf"
        conf.write_text(
            "[DEFAULT]\nconcurrency = %s\nstate_path = %s\n[engine]\napi_url = %s\n"
            "retry_exp_msec = 100\n"
            "[resultstracker]\nmode = hybrid\nstale_after = 0.2\nquery_interval = 0.2\n"
            "heartbeat_interval = 0.3\n[callback]\nport = %d\n[metrics]\nport = %d\n"
            % (backend_name, tmp_path, sim.url, cb_port, port)
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
            cwd=str(ROOT),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = "http://127.0.0.1:%d/metrics" % port
        deadline = time.monotonic() + 20
        first = None
        while time.monotonic() < deadline:
            try:
                values = scrape(url)
            except requests.ConnectionError:
                time.sleep(0.2)
                continue
            first = first or values
            if (
                values.get('st2bridge_executions{status="succeeded"}', 0)
                + values.get('st2bridge_executions{status="failed"}', 0)
                == 3
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail(
                "executions never finished: %s"
                % {k: v for k, v in values.items() if "executions" in k}
            )
        assert first['st2bridge_executions{status="running"}'] == 4
        assert (
            values['st2bridge_executions{status="running"}']
            + values['st2bridge_executions{status="abandoned"}']
            == 1
        )  # the 404 one
        assert values["st2bridge_checks_total"] > first.get("st2bridge_checks_total", 0)
        assert values["st2bridge_engine_requests_total"] >= 4
        assert values['st2bridge_engine_errors_total{kind="not_found"}'] >= 1
        assert values["st2bridge_check_lateness_seconds_count"] >= 4
        assert values["st2bridge_lease_takeovers_total"] == 0
        assert values["st2bridge_callback_results_left_to_poller_total"] == 0
        assert values["st2bridge_heartbeat_timestamp_seconds"] > time.time() - 10
        assert values['st2bridge_stuck_executions{signature="lost_action"}'] == 0
        assert "st2bridge_stuck_probes_total" in values
        # A callback the listener rejects (unknown execution) is counted with its latency.
        requests.post("http://127.0.0.1:%d/v1/callbacks/mistral/nope" % cb_port, json={}, timeout=5)
        values = scrape(url)
        assert values['st2bridge_callbacks_total{code="404",outcome="rejected"}'] == 1
        assert values["st2bridge_callback_duration_seconds_count"] == 1
        assert requests.get(url.replace("/metrics", "/other"), timeout=5).status_code == 404
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        sim.stop()


def test_stuck_gauge_counts_flagged_executions_by_signature(tmp_path):
    from prometheus_client import generate_latest

    from st2bridge.concurrency import InlineExecutor
    from st2bridge.engine.stub import StubEngine
    from st2bridge.metrics import TrackerMetrics
    from st2bridge.tracker import stuck
    from st2bridge.tracker.poller import Poller
    from st2bridge.tracker.stuckwatch import StuckWatch

    engine = StubEngine()  # counts its requests, as the client does
    with open_store("sqlite:///%s" % (tmp_path / "b.db")) as store:
        for i, signature in enumerate(["lost_action", "lost_action", "lost_result", None]):
            record = running("e%d" % i, 1000.0)
            record["stuck"] = signature and {"signature": signature, "since": 1.0}
            store.create_execution(record)
        watch = StuckWatch(engine, store, stuck.Settings())
        poller = Poller(engine, store, InlineExecutor(1), owner="o", stuck=watch)
        m = TrackerMetrics(poller=poller, engine=engine, store=store, executor=InlineExecutor(1))
        m.refresh()
        text = generate_latest(m.registry).decode()
    assert 'st2bridge_stuck_executions{signature="lost_action"} 2.0' in text
    assert 'st2bridge_stuck_executions{signature="lost_result"} 1.0' in text
    assert 'st2bridge_stuck_executions{signature="lost_continuation"} 0.0' in text
    assert "st2bridge_stuck_probes_total 0.0" in text


def test_metrics_port_0_disables_the_endpoint(tmp_path):
    from st2bridge import config

    path = tmp_path / "bridge.conf"
    path.write_text("[metrics]\nport = 0\n")
    assert config.load(["--config-file", str(path)]).metrics.port == 0
    assert re.search(r"port = 9102", (ROOT / "conf" / "bridge.conf.sample").read_text())


def test_checks_are_counted_as_they_are_made_not_read_off_the_poller(tmp_path):
    from prometheus_client import generate_latest

    from st2bridge.concurrency import InlineExecutor
    from st2bridge.engine.stub import StubEngine
    from st2bridge.metrics import TrackerMetrics
    from st2bridge.tracker.poller import Poller

    engine = StubEngine()
    with open_store("sqlite:///%s" % (tmp_path / "b.db")) as store:
        poller = Poller(engine, store, InlineExecutor(1), owner="o")
        m = TrackerMetrics(poller=poller, engine=engine, store=store, executor=InlineExecutor(1))
        poller.stats.polls = 1000  # the poller's own count is not what is exported
        poller.stats.polled({"next_poll_at": 100.0}, 100.5)
        poller.stats.polled({"next_poll_at": None}, 101.0)  # not due at a time: no lateness
        text = generate_latest(m.registry).decode()
    assert "st2bridge_checks_total 2.0" in text
    assert "st2bridge_check_lateness_seconds_count 1.0" in text
    assert 'st2bridge_check_lateness_seconds_bucket{le="0.5"} 1.0' in text


def test_takeovers_reach_the_metric_as_claims_make_them(store):
    from prometheus_client import generate_latest

    from st2bridge.concurrency import InlineExecutor
    from st2bridge.engine.stub import StubEngine
    from st2bridge.metrics import TrackerMetrics
    from st2bridge.tracker.poller import Poller

    engine = StubEngine()
    poller = Poller(engine, store, InlineExecutor(1), owner="b")
    m = TrackerMetrics(poller=poller, engine=engine, store=store, executor=InlineExecutor(1))
    store.create_execution(running("e0", 1000.0))
    store.claim_due("a", 1000.0, 10, 10)  # "a" dies holding it
    assert "st2bridge_lease_takeovers_total 0.0" in generate_latest(m.registry).decode()
    store.claim_due("b", 1011.0, 10, 10)
    assert "st2bridge_lease_takeovers_total 1.0" in generate_latest(m.registry).decode()
