"""An engine that answers `200 {}` (a broken engine or a proxy in front of it)
never changes a record: the tracker as a real process against the engine
simulator with its `malformed` fault, on the poll path and the callback path."""

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
from tests.support.net import free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
WF = "version: '2.0'\n{name}:\n  tasks:\n    t1:\n      action: std.noop\n"


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail("timed out waiting for " + what)


def test_a_malformed_engine_answer_never_changes_a_record(tmp_path, backend_name):
    sim = engine_sim.start_in_thread(duration=2)
    port = free_port()
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nconcurrency = %s\nstate_path = %s\nlog_level = INFO\n"
        "[engine]\napi_url = %s\nretry_exp_msec = 200\nretry_exp_max_msec = 400\n"
        "retry_stop_max_msec = 2000\n"
        "[resultstracker]\nmode = hybrid\nquery_interval = 0.2\nstale_after = 1\n"
        "[callback]\nport = %d\n[metrics]\nport = 0\n[web]\nport = 0\n"
        % (backend_name, tmp_path, sim.url, port)
    )
    log = tmp_path / "tracker.log"
    tracker = subprocess.Popen(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    store = open_store("sqlite:///%s" % (tmp_path / "bridge.db"))
    try:
        wait_for(lambda: _answers("http://127.0.0.1:%d/v1/health" % port), 15, "the listener")
        name = "lying_%s" % uuid.uuid4().hex[:8]
        wf = tmp_path / "wf.yaml"
        wf.write_text(WF.format(name=name))
        # A: started through the CLI with the webhook; it ends 2 s later.
        assert cli(["--config-file", str(conf), "run", str(wf)]) == 0
        (a,) = store.list_executions()
        # B: recorded, its submit never sent (a runner that died in between).
        now = time.time()
        b = new_execution_record(
            id=str(uuid.uuid4()),
            workflow_name=name,
            engine_execution_id=str(uuid.uuid4()),
            status=st.REQUESTED,
            created_at=now,
            updated_at=now,
            tracked=True,
            next_poll_at=now,
        )
        store.create_execution(b)
        requests.put(sim.base + "/_sim/faults", json={"malformed": True}, timeout=5)
        # A ends meanwhile: its callback comes, every read of it answers `{}`;
        # B is checked again and again (the machine may be slow: wait for it).
        wait_for(
            lambda: (
                "fetching its result failed" in log.read_text()
                and store.get_execution(b["id"])["poll_failures"] >= 2
                and store.get_execution(a["id"])["poll_failures"] >= 1
            ),
            60,
            "A's end and B's checks to meet the malformed answers",
        )
        during_a, during_b = store.get_execution(a["id"]), store.get_execution(b["id"])
        assert during_a["status"] == st.RUNNING and during_a["tasks"] == a["tasks"]
        assert during_a["output"] is None and during_a["ended_at"] is None
        assert during_b["status"] == st.REQUESTED and during_b["engine_state"] is None
        assert during_b["not_found_count"] == 0 and during_b["poll_failures"] >= 1
        text = log.read_text()
        assert "treated as an engine error" in text
        assert "succeeded" not in text and "abandoned" not in text
        injected = requests.get(sim.base + "/_sim/stats", timeout=5).json()["injected"]
        assert injected["malformed"] >= 3
        # The engine answers properly again: both end as the engine says.
        requests.put(sim.base + "/_sim/faults", json={"clear": True}, timeout=5)
        wait_for(
            lambda: all(store.get_execution(r["id"])["status"] == st.SUCCEEDED for r in (a, b)),
            60,
            "both to succeed",
        )
        final_a = store.get_execution(a["id"])
        assert [t["name"] for t in final_a["tasks"]] == ["task1", "task2", "task3"]
        assert "submitting it now" in log.read_text()
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0
        store.close()
        sim.stop()


def _answers(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
