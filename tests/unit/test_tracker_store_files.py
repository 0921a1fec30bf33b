"""A real tracker process and its store's files (issue 16 #8, #9): files
deleted under it make it stop writing and exit with one line (code 4),
without erasing what others wrote; a store it cannot use at start is one
line and code 4 before any listener is up; the store is checkpointed while
it runs."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from st2bridge import status as st
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from tests.support import engine_sim
from tests.support.net import free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim():
    handle = engine_sim.start_in_thread(duration=600)
    yield handle
    handle.stop()


def write_conf(tmp_path, api_url, state=None, extra="", backend="eventlet"):
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nconcurrency = %s\nstate_path = %s\n[engine]\napi_url = %s\n"
        "[store]\ncheckpoint_interval = 0.5\n"
        "[resultstracker]\nmode = poll\nquery_interval = 0.2\nheartbeat_interval = 0.2\n"
        "[metrics]\nport = 0\n[web]\nport = 0\n%s" % (backend, state or tmp_path, api_url, extra)
    )
    return conf


def record(engine_id, now):
    return new_execution_record(
        id=str(uuid.uuid4()),
        workflow_name="sim.wf",
        engine_execution_id=engine_id,
        status=st.RUNNING,
        created_at=now,
        updated_at=now,
        tracked=True,
        next_poll_at=now,
    )


def start_tracker(conf, log):
    return subprocess.Popen(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )


def wait_for(check, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_deleting_the_log_files_under_a_tracker_stops_it_and_loses_nothing(
    tmp_path, sim, backend_name
):
    ids = requests.post(sim.base + "/_sim/executions", json={"count": 3}, timeout=5).json()["ids"]
    db = tmp_path / "bridge.db"
    with open_store("sqlite:///%s" % db) as store:
        for engine_id in ids:
            store.create_execution(record(engine_id, time.time()))
    conf = write_conf(tmp_path, sim.url, backend=backend_name)
    log_path = tmp_path / "tracker.log"
    with open(log_path, "w") as log:
        tracker = start_tracker(conf, log)
    try:
        with open_store("sqlite:///%s" % db) as store:
            assert wait_for(lambda: store.list_services()), log_path.read_text()
        # Checkpointed while it runs: the store file alone holds the records.
        time.sleep(1.0)
        copy = tmp_path / "copy.db"
        copy.write_bytes(db.read_bytes())
        with sqlite3.connect(copy) as conn:
            assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 3
        os.unlink(str(db) + "-wal")
        os.unlink(str(db) + "-shm")
        # Two runs recorded by others after that.
        with open_store("sqlite:///%s" % db) as store:
            store.create_execution(record("after-1", time.time() + 3600))
            store.create_execution(record("after-2", time.time() + 3600))
        assert tracker.wait(timeout=30) == 4
    finally:
        if tracker.poll() is None:
            tracker.kill()
            tracker.wait()
    text = log_path.read_text()
    assert "under this process; it stops writing" in text
    assert "Traceback" not in text
    with open_store("sqlite:///%s" % db) as store:
        engine_ids = {r["engine_execution_id"] for r in store.list_executions(limit=None)}
    assert {"after-1", "after-2"} <= engine_ids and set(ids) <= engine_ids


def test_a_store_that_cannot_be_used_at_start_is_one_line_and_exit_4(tmp_path, sim):
    (tmp_path / "not-a-dir").write_text("a file where the state directory should be")
    port = free_port()
    conf = write_conf(
        tmp_path,
        sim.url,
        state=tmp_path / "not-a-dir" / "state",
        extra="[callback]\nport = %d\n" % port,
    )
    (tmp_path / "bridge.conf").write_text(conf.read_text().replace("mode = poll", "mode = hybrid"))
    proc = subprocess.run(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQLite store" in lines[0], proc.stderr
    assert "callback listener" not in proc.stderr


def test_a_tracker_without_any_config_file_says_where_it_looked(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "st2bridge.tracker.daemon"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
        env=dict(os.environ, ST2BRIDGE_CONFIG_FILE=""),
    )
    if os.path.exists("/etc/st2bridge/bridge.conf"):
        pytest.skip("this machine has /etc/st2bridge/bridge.conf")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("st2bridge-resultstracker: error: no config file:")
    assert not os.path.exists("/var/lib/st2bridge/bridge.db")


def test_a_reload_that_fails_keeps_the_daemon_on_its_configuration(tmp_path, sim, backend_name):
    """issue 16 #11: SIGHUP after adding a `$` value killed the tracker."""
    conf = write_conf(tmp_path, sim.url, backend=backend_name)
    log_path = tmp_path / "tracker.log"
    with open(log_path, "w") as log:
        tracker = start_tracker(conf, log)
    try:
        with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
            assert wait_for(lambda: store.list_services()), log_path.read_text()
        text = conf.read_text()
        conf.write_text(
            text.replace("[DEFAULT]\n", "[DEFAULT]\ninterpolation = true\nlog_level = DEBUG\n")
            + "[engine]\npassword = Sup3r$ecret\n"
        )
        tracker.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "SIGHUP: configuration not re-read" in log_path.read_text())
        assert tracker.poll() is None  # still running
        # A literal `$` (the default) is fine, and the new level applies.
        conf.write_text(
            text.replace("[DEFAULT]\n", "[DEFAULT]\nlog_level = DEBUG\n")
            + "[engine]\npassword = Sup3r$ecret\n"
        )
        tracker.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: "SIGHUP: log level changed from INFO to DEBUG" in log_path.read_text()
        )
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0
    finally:
        if tracker.poll() is None:
            tracker.kill()
            tracker.wait()
    text = log_path.read_text()
    assert "Sup3r" not in text and "Traceback" not in text
