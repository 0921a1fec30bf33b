"""Stuck executions on a real Mistral with real faults, one per signature.

A private Mistral of this module's own (not the session's: these tests break
it) runs its engine and its executor as processes of their own
(tools/mistral_local.py --split), the engine talking to RabbitMQ through an
AMQP relay that can lose one chosen RPC message (tests/support/amqp_relay.py):

    lost result        the sub-workflow's result to its parent task is lost
    lost continuation  the start of the second task is lost
    lost action        the executor is killed (SIGKILL) during a std.sleep

For each: the tracker flags the execution within the configured time (the
detection time is printed and checked), `st2bridge execution recover` makes
it end in a state the engine agrees with, and the flag is gone. Meanwhile
healthy but slow workflows (a long std.sleep, a paused workflow, a with-items
over 300 items) run on the same engine and are never flagged.

Short thresholds keep the wall time down; Mistral's own heartbeat checker
(600 s here) and integrity check (off) do not step in. Deselect with -m 'not stuck'.
"""

import json
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from st2bridge.store import open_store
from tests.support.amqp_relay import AmqpRelay
from tests.support.bridge import Bridge, start_listening_tracker, wait_for, write_workflow
from tests.support.net import free_port
from tools.mistral_local import PrivateMistral

pytestmark = [pytest.mark.integration, pytest.mark.stuck]

# Tight, but not so tight that a busy engine looks stuck: it records heartbeats
# late. (Unbounded, the with-items below made this engine record them 13 s
# late on a loaded 2-core machine: see docs/operations.md.)
HEARTBEAT_TIMEOUT = 12.0
GRACE = 8.0
STUCK = """[metrics]
port = 0
[web]
port = 0
[stuck]
probe_after = 2
probe_interval = 2
heartbeat_timeout = %g
unstarted_timeout = 60
result_grace = %g
continuation_grace = %g
""" % (HEARTBEAT_TIMEOUT, GRACE, GRACE)
# Detection = the threshold + at most one look later (probe_interval) + a
# tracker pass + timestamps of one-second resolution on both ends + load.
SLACK = 2.0 + 1.0 + 2.0 + 2.0

WORKFLOWS = """version: '2.0'
stuck_sleep:
  input: [seconds]
  tasks:
    nap:
      action: std.sleep seconds=<% $.seconds %>
stuck_child:
  tasks:
    nap:
      action: std.sleep seconds=1
stuck_parent:
  tasks:
    call:
      workflow: stuck_child
stuck_two:
  tasks:
    first:
      action: std.noop
      on-success: [second]
    second:
      action: std.noop
stuck_items:
  tasks:
    each:
      with-items: i in <% range(0, 320) %>
      concurrency: 25
      action: std.echo output=<% $.i %>
"""

MISTRAL = """[action_heartbeat]
# One heartbeat a second, and Mistral's own checker only after 600 s.
check_interval = 1
max_missed_heartbeats = 600
[engine]
# Mistral's integrity check would repair a lost result by itself within minutes.
execution_integrity_check_delay = -1
"""


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    relay = AmqpRelay()
    home = tmp_path_factory.mktemp("mistral-stuck")
    engine = PrivateMistral(home, prefix="st2bridge-stuck", split=True, overrides=MISTRAL)
    (home / "overrides-engine.conf").write_text(
        "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:%d/%s\n"
        % (relay.port, engine.vhost)
    )
    started = time.monotonic()
    if not engine.up(capture=True):
        relay.close()
        engine.stop()
        pytest.fail("could not start Mistral:\n%s" % engine.output[-6000:])
    print("split Mistral up on port %d in %.1f s" % (engine.port, time.monotonic() - started))
    engine.relay = relay
    yield engine
    engine.stop()
    relay.close()


@pytest.fixture(scope="module")
def world(faulty, tmp_path_factory):
    """A bridge with a hybrid tracker watching for stuck executions, the
    workflows registered, and the healthy-but-slow ones started."""
    path = tmp_path_factory.mktemp("bridge-stuck")
    bridge = Bridge(path, faulty.api_url)
    port = free_port()
    bridge.write(mode="hybrid", callback_port=port, extra="stale_after = 2\n" + STUCK)
    tracker = start_listening_tracker(bridge, port)
    wf = write_workflow(path, WORKFLOWS)
    healthy = {
        "long sleep": run(bridge, wf, "stuck_sleep", "seconds=30"),
        "paused": run(bridge, wf, "stuck_sleep", "seconds=30"),
        "with-items x320": run(bridge, wf, "stuck_items"),
    }
    assert bridge.cli("execution", "pause", healthy["paused"]).returncode == 0
    world = {"bridge": bridge, "wf": wf, "engine": faulty, "healthy": healthy, "times": {}}
    yield world
    print("detection times (s):", json.dumps(world["times"]))
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0


def run(bridge, wf, name, *inputs):
    args = ["run", wf, "--workflow", name]
    for value in inputs:
        args += ["-i", value]
    proc = bridge.cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def engine_get(engine, path):
    response = requests.get(engine.api_url + path, timeout=30)
    response.raise_for_status()
    return response.json()


def flagged(bridge, execution_id, signature, timeout=60):
    """The record (read from the store) once it carries `signature`; then as
    `execution get --json` shows it."""

    def check():
        with open_store("sqlite:///%s" % (bridge.dir / "bridge.db")) as store:
            record = store.get_execution(execution_id)
        stuck = record.get("stuck")
        return record if stuck and stuck["signature"] == signature else None

    record = wait_for("%s flagged %s" % (execution_id, signature), check, timeout, interval=0.2)
    shown = bridge.get(execution_id)
    assert shown["stuck"]["signature"] == signature
    assert shown["stuck"]["command"] == "st2bridge execution recover %s" % execution_id
    return dict(shown, stuck=dict(shown["stuck"], detected_epoch=record["stuck"]["detected_at"]))


def detection(world, name, record, onset):
    took = record["stuck"]["detected_epoch"] - onset
    world["times"][name] = round(took, 1)
    print("%s flagged %.1f s after its onset" % (name, took))
    return took


def recover_and_check(world, execution_id, engine_state="SUCCESS"):
    bridge = world["bridge"]
    listed = bridge.cli("execution", "list", "--stuck", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows[execution_id]["stuck"]["command"] == "st2bridge execution recover %s" % (
        execution_id
    )
    dry = bridge.cli("execution", "recover", execution_id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would: " in dry.stdout
    proc = bridge.cli("execution", "recover", execution_id, timeout=180)
    print(proc.stdout, proc.stderr)
    record = bridge.get(execution_id)
    engine_view = engine_get(world["engine"], "/executions/%s" % record["engine_execution_id"])
    assert engine_view["state"] == engine_state
    assert record["status"] == {"SUCCESS": "succeeded", "ERROR": "failed"}[engine_state]
    assert record["stuck"] is None
    assert proc.returncode == (0 if engine_state == "SUCCESS" else 1), proc.stderr
    return proc


def test_lost_result_is_flagged_and_recovered(world):
    bridge, engine = world["bridge"], world["engine"]
    dropped = len(engine.relay.dropped)
    engine.relay.drop_next(
        lambda body: b"on_action_complete" in body and re.search(rb'wf_action\\": \\"true', body)
    )
    execution_id = run(bridge, world["wf"], "stuck_parent")
    assert engine.relay.wait_dropped(dropped + 1, timeout=60), "the result was never sent"
    onset = time.time()
    record = flagged(bridge, execution_id, "lost_result")
    assert detection(world, "lost_result", record, onset) <= GRACE + SLACK
    evidence = record["stuck"]["evidence"]
    assert evidence["task"]["name"] == "call" and evidence["task"]["state"] == "RUNNING"
    assert evidence["workflow_executions"][0]["state"] == "SUCCESS"
    text = bridge.cli("execution", "get", execution_id).stdout
    assert "STUCK:      lost_result since" in text and "execution recover" in text
    proc = recover_and_check(world, execution_id)
    assert "its result was sent again" in proc.stdout


def test_lost_continuation_is_flagged_and_recovered(world):
    bridge, engine = world["bridge"], world["engine"]
    dropped = len(engine.relay.dropped)
    # The start of the task the first one triggers (on-success) is lost.
    engine.relay.drop_next(
        lambda body: b"start_task" in body and b'triggered_by\\": null' not in body
    )
    execution_id = run(bridge, world["wf"], "stuck_two")
    assert engine.relay.wait_dropped(dropped + 1, timeout=60), "the task was never started"
    onset = time.time()
    record = flagged(bridge, execution_id, "lost_continuation")
    assert detection(world, "lost_continuation", record, onset) <= GRACE + SLACK
    assert "second was created but never started" in record["stuck"]["reason"]
    proc = recover_and_check(world, execution_id)
    assert "paused and resumed" in proc.stdout


def test_healthy_slow_workflows_are_never_flagged(world):
    bridge = world["bridge"]
    healthy = world["healthy"]
    # Each is watched for well over the thresholds before this looks.
    for name in ("long sleep", "with-items x320"):
        record = wait_for(
            "%s to end" % name,
            lambda i=healthy[name]: (r := bridge.get(i))["status"] == "succeeded" and r,
            timeout=120,
        )
        assert record["stuck"] is None
    paused = bridge.get(healthy["paused"])
    assert paused["status"] == "paused" and paused["stuck"] is None
    assert bridge.cli("execution", "cancel", healthy["paused"]).returncode == 0
    logged = flagged_in_logs(bridge)
    assert not logged & set(healthy.values()), "a healthy execution was flagged"
    world["false_positives"] = len(logged & set(healthy.values()))


def test_lost_action_is_flagged_and_recovered(world):
    bridge, engine = world["bridge"], world["engine"]
    execution_id = run(bridge, world["wf"], "stuck_sleep", "seconds=8")
    engine_id = bridge.get(execution_id)["engine_execution_id"]

    def sleeping():
        tree = engine_get(engine, "/executions/%s/report" % engine_id)
        tasks = tree["root_workflow_execution"]["task_executions"]
        actions = tasks[0]["action_executions"] if tasks else []
        return actions and actions[0]["state"] == "RUNNING" and actions[0]["last_heartbeat"]

    wait_for("std.sleep to run", sleeping, timeout=60)
    engine.kill("executor")  # SIGKILL while the action runs: its heartbeats stop
    onset = time.time()
    try:
        record = flagged(bridge, execution_id, "lost_action")
        assert detection(world, "lost_action", record, onset) <= HEARTBEAT_TIMEOUT + SLACK
        evidence = record["stuck"]["evidence"]
        assert evidence["action_executions"][0]["name"] == "std.sleep"
        assert evidence["action_executions"][0]["state"] == "RUNNING"
        assert "executor is gone" in record["stuck"]["reason"]
    finally:
        engine.start_component("executor")
    # Failing the action fails the workflow; the task is re-run on the new executor.
    proc = recover_and_check(world, execution_id)
    assert "is ERROR" in proc.stdout and "is running again" in proc.stdout
    assert not flagged_in_logs(bridge) & set(world["healthy"].values())


def flagged_in_logs(bridge):
    """Bridge execution ids the tracker ever logged as stuck."""
    ids = set()
    for log in Path(bridge.dir).glob("tracker-*.log"):
        ids |= set(re.findall(r"execution (\S+) looks stuck", log.read_text()))
    return ids
