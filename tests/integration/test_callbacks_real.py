"""Completion callbacks from a real Mistral's webhook notifier to the tracker."""

import json
import signal
import time
import uuid

import pytest
import requests

from st2bridge import concurrency
from tests.support.bridge import (
    QUICK,
    Bridge,
    start_listening_tracker,
    wait_status,
    write_workflow,
)
from tests.support.net import free_port

pytestmark = pytest.mark.integration

NESTED = """version: '2.0'
{name}:
  output:
    inner: <% $.inner %>
  tasks:
    first:
      action: std.noop
      on-success: [call_child]
    call_child:
      workflow: {name}_child
      publish:
        inner: <% task().result.value %>
{name}_child:
  output:
    value: <% $.value %>
  tasks:
    child_a:
      action: std.echo output=7
      publish:
        value: <% task().result %>
      on-success: [child_b]
    child_b:
      action: std.noop
"""


@pytest.fixture(params=concurrency.NAMES)
def bridge(tmp_path, mistral, request):
    """Every test here under each concurrency backend of the tracker (its
    callback listener: eventlet's server or waitress)."""
    return Bridge(tmp_path, mistral.api_url, concurrency=request.param)


def run(bridge, path, *args):
    proc = bridge.cli("run", path, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def quick_finished_by_callback(bridge, tmp_path, who):
    """Run the QUICK workflow; its record, checked finished by callback with output and tasks."""
    name = "cb_%s" % uuid.uuid4().hex[:8]
    execution_id = run(
        bridge, write_workflow(tmp_path, QUICK.format(name=name)), "-i", "who=" + who
    )
    record = wait_status(bridge, execution_id)
    assert record["status"] == "succeeded" and record["finished_by"] == "callback"
    assert record["output"] == {"greeting": "hi " + who}
    assert sorted(t["name"] for t in record["tasks"]) == ["done", "greet"]
    return record


def test_workflow_finishes_by_callback_with_output(hybrid, tmp_path):
    # stale_after is 60 s: only a callback can have finished it this fast.
    quick_finished_by_callback(hybrid, tmp_path, "hook")


def test_workflow_events_only_still_finish_with_output_and_tasks(bridge, mistral, tmp_path):
    """[callback] task_events = false: Mistral posts only the workflow's own events; the
    end brings the output and the task view in one go."""
    port = free_port()
    bridge.write(mode="callback", callback_port=port, callback_extra="task_events = false\n")
    tracker = start_listening_tracker(bridge, port)
    try:
        record = quick_finished_by_callback(bridge, tmp_path, "lean")
        params = mistral.get("/executions/%s" % record["engine_execution_id"])["params"]
        (webhook,) = json.loads(params)["notify"]
        assert webhook["event_types"] and all(
            e.startswith("WORKFLOW_") for e in webhook["event_types"]
        )
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0


def test_sub_workflow_parent_finishes_and_shows_child_tasks(hybrid, tmp_path):
    name = "nest_%s" % uuid.uuid4().hex[:8]
    path = write_workflow(tmp_path, NESTED.format(name=name))
    execution_id = run(hybrid, path, "--workflow", name)
    record = wait_status(hybrid, execution_id)
    assert record["status"] == "succeeded" and record["finished_by"] == "callback"
    assert record["output"] == {"inner": 7}
    names = sorted(t["name"] for t in record["tasks"])
    assert names == ["call_child", "child_a", "child_b", "first"], names


def test_bad_callbacks_to_the_real_listener_change_nothing(hybrid, mistral, tmp_path):
    name = "bad_%s" % uuid.uuid4().hex[:8]
    path = write_workflow(tmp_path, QUICK.format(name=name))
    execution_id = run(hybrid, path, "-i", "who=x")
    before = wait_status(hybrid, execution_id)
    url = "%s/v1/callbacks/mistral/%s" % (hybrid.callback, execution_id)
    forged = {"event": "WORKFLOW_FAILED", "id": before["engine_execution_id"], "state": "ERROR"}
    answers = [
        requests.post(url, json=forged, timeout=5).status_code,
        requests.post(
            url, json=forged, headers={"X-St2bridge-Secret": "guess"}, timeout=5
        ).status_code,
        # The secret is checked first: a large body without it is never read.
        requests.post(
            url, data=b"x" * 70000, headers={"X-St2bridge-Secret": "guess"}, timeout=5
        ).status_code,
        requests.get(url, timeout=5).status_code,
        requests.post(
            hybrid.callback + "/v1/callbacks/mistral/nope", json=forged, timeout=5
        ).status_code,
    ]
    assert answers == [401, 403, 403, 405, 404]
    # With the execution's own secret (from the webhook Mistral holds),
    # malformed bodies are 400s, never 500s.
    params = json.loads(mistral.get("/executions/%s" % before["engine_execution_id"])["params"])
    secret = {"X-St2bridge-Secret": params["notify"][0]["headers"]["X-St2bridge-Secret"]}
    nested = b"[" * 3000 + b"]" * 3000
    bodies = [
        b'{"event": []}',
        b'{"event": {}}',
        nested,
        b'{"event": ' + nested + b"}",
        b'{"event": "WORKFLOW_FAILED", "id": "x", "state": NaN}',
        b'{"event": "WORKFLOW_FAILED", "id": "x", "state": "ERROR", "n": -Infinity}',
    ]
    assert [requests.post(url, data=b, headers=secret, timeout=5).status_code for b in bodies] == [
        400
    ] * len(bodies)
    assert hybrid.get(execution_id) == before
    health = requests.get(hybrid.callback + "/v1/health", timeout=5).json()["callbacks"]
    assert health["errors"] == 0 and health["rejected"] == 5 + len(bodies)
    log = "".join(p.read_text() for p in hybrid.dir.glob("tracker-*.log"))
    assert "guess" not in log and secret["X-St2bridge-Secret"] not in log


def test_listener_unreachable_hybrid_finishes_by_polling(bridge, tmp_path):
    # The engine is told to post to a port nobody listens on: every callback is lost.
    bridge.write(
        mode="hybrid",
        callback_port=free_port(),
        callback_url="http://127.0.0.1:%d" % free_port(),
        extra="stale_after = 3\n",
    )
    tracker = bridge.start_tracker()
    try:
        name = "lost_%s" % uuid.uuid4().hex[:8]
        started = time.monotonic()
        execution_id = run(
            bridge, write_workflow(tmp_path, QUICK.format(name=name)), "-i", "who=net"
        )
        record = wait_status(bridge, execution_id, timeout=40)
        assert record["status"] == "succeeded" and record["finished_by"] == "poll"
        assert record["output"] == {"greeting": "hi net"}
        assert time.monotonic() - started >= 2.5  # only once it had been silent for stale_after
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0
