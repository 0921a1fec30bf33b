"""st2bridge-resultstracker as a real process against the engine simulator
(no Mistral needed): draining, a second SIGTERM, and track/untrack."""

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from st2bridge import status as st
from st2bridge.cli.main import main as cli
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from tests.support import engine_sim

# Starts processes or real listeners: deselect with -m 'not process' for the fast loop.
pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim():
    handle = engine_sim.start_in_thread(duration=600)
    yield handle
    handle.stop()


def write_conf(tmp_path, api_url, backend="eventlet"):
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nconcurrency = %s\nstate_path = %s\n[engine]\napi_url = %s\nread_timeout = 30\n"
        "[resultstracker]\nmode = poll\nquery_interval = 0.2\ndrain_timeout = 20\n"
        % (backend, tmp_path, api_url)
    )
    return conf


def add_records(tmp_path, engine_ids):
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        now = time.time()
        for eid in engine_ids:
            store.create_execution(
                new_execution_record(
                    id=str(uuid.uuid4()),
                    workflow_name="sim.wf",
                    engine_execution_id=eid,
                    status=st.RUNNING,
                    created_at=now,
                    updated_at=now,
                    tracked=True,
                    next_poll_at=now,
                )
            )


def test_second_sigterm_exits_at_once_while_draining(tmp_path, sim, backend_name):
    ids = requests.post(sim.base + "/_sim/executions", json={"count": 2}, timeout=5).json()["ids"]
    add_records(tmp_path, ids)
    # Every engine answer now takes 15 s: the tracker's checks hang in flight.
    requests.put(sim.base + "/_sim/faults", json={"latency_ms": 15000}, timeout=5)
    conf = write_conf(tmp_path, sim.url, backend_name)
    log = open(tmp_path / "tracker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    # Registered means its signal handlers are in place (a fixed sleep was
    # overrun on a loaded machine); then its first checks go in flight.
    deadline = time.monotonic() + 30
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        while not store.list_services() and time.monotonic() < deadline:
            time.sleep(0.1)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert proc.poll() is None, "the first SIGTERM drains in-flight checks (up to 20 s)"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 1
    assert time.monotonic() - started < 2
    text = (tmp_path / "tracker.log").read_text()
    assert "SIGTERM received: stopped claiming; waiting up to 20 s for 2 in-flight checks" in text
    assert "second SIGTERM: exiting now without draining" in text


def test_track_and_untrack(tmp_path, sim, capsys, backend_name):
    ids = requests.post(sim.base + "/_sim/executions", json={"count": 1}, timeout=5).json()["ids"]
    add_records(tmp_path, ids)
    conf = str(write_conf(tmp_path, sim.url, backend_name))
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        (record,) = store.list_executions()
    assert cli(["--config-file", conf, "untrack", record["id"]]) == 0
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        assert store.get_execution(record["id"])["tracked"] is False
        assert store.claim_due("x", time.time() + 100, 10, 10) == []
    assert cli(["--config-file", conf, "track", record["id"]]) == 0
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        assert [r["id"] for r in store.claim_due("x", time.time(), 10, 10)] == [record["id"]]
        store.update_execution(record["id"], {"status": st.SUCCEEDED})
    # track and untrack agree on a finished execution (issue 15 #11): nothing to do.
    capsys.readouterr()
    for command in ("track", "untrack"):
        assert cli(["--config-file", conf, command, record["id"]]) == 0
        assert capsys.readouterr().out == (
            "execution %s has ended (succeeded): no tracker polls it; nothing to do\n"
            % record["id"]
        )
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        assert store.get_execution(record["id"])["tracked"] is True  # untouched
    assert cli(["--config-file", conf, "track", "nope"]) == 5
    # A unique start of the id, or the engine's id, names it too.
    assert cli(["--config-file", conf, "untrack", record["engine_execution_id"][:8]]) == 0


def test_services_lists_a_running_tracker(tmp_path, sim, capsys, backend_name):
    conf = write_conf(tmp_path, sim.url, backend_name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(ROOT),
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            capsys.readouterr()
            assert cli(["--config-file", str(conf), "services", "--json"]) == 0
            rows = json.loads(capsys.readouterr().out)
            if any(r["name"] == "st2bridge-resultstracker" for r in rows):
                break
            time.sleep(0.3)
        states = {r["name"]: r["state"] for r in rows}
        assert states == {"st2bridge-resultstracker": "alive", "store": "up", "engine API": "up"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
