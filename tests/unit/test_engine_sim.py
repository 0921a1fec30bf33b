"""tests/support/engine_sim.py driven through the bridge's own MistralClient.

Going through the real client proves the simulator speaks the subset of the
v2 API the bridge sends. Durations are fractions of a second; the whole file
runs in a few seconds.
"""

import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.errors import (
    EngineBadRequest,
    EngineConflict,
    EngineNotFound,
    EngineServerError,
    EngineUnavailable,
)
from tests.support import engine_sim

# Starts processes or real listeners: deselect with -m 'not process' for the fast loop.
pytestmark = pytest.mark.process

WF = "version: '2.0'\nsim.wf:\n  input: [{x: 0}]\n  tasks:\n    t1:\n      action: std.noop\n"
LIGHT = ["state", "state_info", "updated_at"]


@pytest.fixture
def sim():
    handle = engine_sim.start_in_thread(duration=0.2)
    yield handle
    handle.stop()


@pytest.fixture
def client(sim):
    # No retries: each fault must surface as the error the tracker sees.
    with MistralClient(sim.url, retry=RetryPolicy(stop_max_msec=0), read_timeout=5) as c:
        c.create_workflows(WF)
        yield c


def admin(sim, method, path, body=None):
    resp = requests.request(method, sim.base + "/_sim/" + path, json=body, timeout=5)
    resp.raise_for_status()
    return resp.json()


def wait_state(client, ex_id, states, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        ex = client.get_execution(ex_id, fields=LIGHT)
        if ex["state"] in states or time.monotonic() > deadline:
            return ex
        time.sleep(0.05)


def test_workflows_create_conflict_update_get(client):
    with pytest.raises(EngineConflict):
        client.create_workflows(WF)
    assert [w["name"] for w in client.update_workflows(WF)] == ["sim.wf"]
    assert client.get_workflow("sim.wf")["name"] == "sim.wf"
    with pytest.raises(EngineNotFound):
        client.get_workflow("nope")
    with pytest.raises(EngineBadRequest):
        client.create_workflows("just: text\n")
    assert client.ping() is True


def test_idempotent_start_light_query_and_finish(client):
    ex_id = str(uuid.uuid4())
    first = client.start_execution("sim.wf", {"x": 1}, execution_id=ex_id, params={"env": {}})
    again = client.start_execution("sim.wf", {"x": 2}, execution_id=ex_id)
    assert first["id"] == again["id"] == ex_id
    assert first["state"] == "RUNNING" and first["input"] == {"x": 1}
    light = client.get_execution(ex_id, fields=LIGHT)
    assert set(light) == {"id", "state", "state_info", "updated_at"}
    assert light["state"] == "RUNNING"
    done = wait_state(client, ex_id, ("SUCCESS",))
    assert done["state"] == "SUCCESS"
    full = client.get_execution(ex_id)
    assert isinstance(full["output"], dict) and full["output"]["result"]
    assert [t["state"] for t in client.list_tasks(ex_id)] == ["SUCCESS"] * 3
    with pytest.raises(EngineNotFound):
        client.start_execution("other.wf", execution_id=str(uuid.uuid4()))


def test_error_report_and_task_rerun(client):
    ex = client.start_execution(
        "sim.wf", {"sim_fail": True, "sim_duration": 0.1}, execution_id=str(uuid.uuid4())
    )
    assert wait_state(client, ex["id"], ("ERROR",))["state"] == "ERROR"
    report = client.execution_report(ex["id"])
    failed = report["root_workflow_execution"]["task_executions"]
    assert [t["state"] for t in failed] == ["ERROR"]
    task = client.get_task(failed[0]["id"])
    assert task["state"] == "ERROR" and task["workflow_execution_id"] == ex["id"]
    assert client.rerun_task(task["id"])["id"] == task["id"]  # as Mistral: the task as read
    assert client.get_execution(ex["id"], fields=LIGHT)["state"] == "RUNNING"
    assert wait_state(client, ex["id"], ("SUCCESS",))["state"] == "SUCCESS"


def test_pause_resume_cancel(client):
    ex = client.start_execution("sim.wf", {"sim_duration": 30}, execution_id=str(uuid.uuid4()))
    assert client.update_execution_state(ex["id"], "PAUSED")["state"] == "PAUSED"
    assert client.update_execution_state(ex["id"], "RUNNING")["state"] == "RUNNING"
    out = client.update_execution_state(ex["id"], "CANCELLED", "stop it")
    assert (out["state"], out["state_info"]) == ("CANCELLED", "stop it")
    # As Mistral: changing a finished execution is a no-op, the state tells.
    assert client.update_execution_state(ex["id"], "RUNNING")["state"] == "CANCELLED"


def test_changed_since_listing_pages_each_execution_once(sim, client):
    ids = admin(sim, "POST", "executions", {"count": 2500, "duration": 0.2, "spread": 0.3})["ids"]
    fields = ["id", "state", "state_info", "updated_at"]
    since = client.list_executions(fields=fields, limit=1)
    start = next(since)["updated_at"]
    time.sleep(0.6)
    rows = list(
        client.list_executions(
            fields=fields, limit=1000, updated_at="gte:" + start, nulls="task_execution_id"
        )
    )
    assert len(rows) == len({r["id"] for r in rows}) == 2500
    assert {r["id"] for r in rows} == set(ids)
    assert {r["state"] for r in rows} == {"SUCCESS"}
    assert set(rows[0]) == set(fields)
    stats = admin(sim, "GET", "stats")
    assert stats["requests"]["GET /v2/executions"] == 1 + 3  # 2500 rows in 3 pages
    # Nothing changes after the far future; gt/lt bounds work on whole seconds.
    assert list(client.list_executions(updated_at="gt:2999-01-01 00:00:00")) == []
    assert (
        len(
            list(
                client.list_executions(
                    updated_at="lt:2999-01-01 00:00:00", sort_keys="updated_at", sort_dirs="desc"
                )
            )
        )
        == 2500
    )
    with pytest.raises(EngineBadRequest):
        list(client.list_executions(id="in:a,b"))


def test_faults_500_404_down_and_recovery(sim, client):
    ex = client.start_execution("sim.wf", {"sim_duration": 30}, execution_id=str(uuid.uuid4()))
    admin(sim, "PUT", "faults", {"error_rate": 1.0})
    with pytest.raises(EngineServerError):
        client.get_execution(ex["id"], fields=LIGHT)
    admin(sim, "PUT", "faults", {"clear": True, "not_found": [ex["id"]]})
    with pytest.raises(EngineNotFound):
        client.get_execution(ex["id"], fields=LIGHT)
    admin(sim, "PUT", "faults", {"clear": True, "latency_ms": 50})
    started = time.monotonic()
    client.get_execution(ex["id"], fields=LIGHT)
    assert time.monotonic() - started >= 0.05
    admin(sim, "PUT", "faults", {"clear": True, "down": 0.5})
    time.sleep(0.05)
    with pytest.raises(EngineUnavailable, match="connection refused"):
        client.get_execution(ex["id"], fields=LIGHT)
    time.sleep(0.6)
    assert client.get_execution(ex["id"], fields=LIGHT)["state"] == "RUNNING"
    stats = admin(sim, "GET", "stats")
    assert stats["injected"] == {"errors": 1, "not_found": 1}


def test_bulk_create_and_light_query_stats(sim, client):
    chosen = [str(uuid.uuid4()) for _ in range(3)]
    assert admin(sim, "POST", "executions", {"ids": chosen, "duration": 60})["ids"] == chosen
    many = admin(sim, "POST", "executions", {"count": 10000, "duration": 60})
    assert len(set(many["ids"])) == many["created"] == 10000
    admin(sim, "POST", "stats/reset")
    for _ in range(2):
        for i in chosen:
            client.get_execution(i, fields=LIGHT)
    lq = admin(sim, "GET", "stats")["light_queries"]
    assert (lq["total"], lq["executions"], lq["gap_s"]["count"]) == (6, 3, 3)


def test_pipelined_requests_answered_in_order(sim):
    host, port = sim.base.split("//")[1].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            b"GET /v2/workflows/a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /_sim/executions HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"
            b'{"count": 1}GET /v2/workflows/b HTTP/1.1\r\nConnection: close\r\n\r\n'
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"404", b"201", b"404"]
    assert b"[workflow_identifier=a," in data.split(b"HTTP/1.1 201")[0]


def test_webhook_events_posted_once(client):
    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/hook" % server.server_address[1]
        ex = client.start_execution(
            "sim.wf",
            {"sim_duration": 0.1},
            execution_id=str(uuid.uuid4()),
            params={"notify": [{"type": "webhook", "url": url}]},
        )
        deadline = time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        server.shutdown()
    assert [(e["event"], e["id"]) for e in got] == [
        ("WORKFLOW_LAUNCHED", ex["id"]),
        ("WORKFLOW_SUCCEEDED", ex["id"]),
    ]
    assert got[1]["state"] == "SUCCESS" and "output" not in got[1]


def test_reschedule_sets_when_running_executions_finish(sim, client):
    ids = admin(sim, "POST", "executions", {"count": 20, "duration": 3600})["ids"]
    assert admin(sim, "POST", "reschedule", {"duration": 0.2, "spread": 0.2}) == {"rescheduled": 20}
    assert wait_state(client, ids[0], ("SUCCESS",))["state"] == "SUCCESS"
    time.sleep(0.3)
    finished = client.list_executions(fields=["id", "state"], updated_at="gte:2000-01-01 00:00:00")
    assert {r["state"] for r in finished if r["id"] in ids} == {"SUCCESS"}
