"""A real workflow through the bridge against a real Mistral 23."""

import json
import signal
import time
import uuid

import pytest

from tests.support.bridge import write_workflow
from tests.support.dropping_proxy import DroppingProxy

pytestmark = pytest.mark.integration

THREE_TASKS = """version: '2.0'
{name}:
  input:
    - who
    - times: 2
  output:
    message: <% $.message %>
    total: <% $.total %>
  tasks:
    greet:
      action: std.echo output="hello <% $.who %>"
      publish:
        greeting: <% task().result %>
      on-success: [multiply]
    multiply:
      action: std.echo output=<% $.times * 21 %>
      publish:
        total: <% task().result %>
      on-success: [finish]
    finish:
      action: std.noop
      publish:
        message: <% $.greeting %> x<% $.times %>
"""

FAILING = """version: '2.0'
{name}:
  tasks:
    ok:
      action: std.noop
      on-success: [boom]
    boom:
      action: std.fail error_data="disk on fire"
"""


def unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def test_three_tasks_succeed_with_output(bridge, mistral, tmp_path):
    name = unique("three")
    path = write_workflow(tmp_path, THREE_TASKS.format(name=name))
    proc = bridge.cli("run", path, "-i", "who=world", "-i", "times=2", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "succeeded"
    assert result["output"] == {"message": "hello world x2", "total": 42}
    # Timestamps have one-second resolution, so the order of tasks created in
    # the same second is the engine's; compare the set.
    assert sorted(t["name"] for t in result["tasks"]) == ["finish", "greet", "multiply"]
    assert all(t["status"] == "succeeded" for t in result["tasks"])
    assert result["input"] == {"who": "world", "times": 2}
    assert result["ended_at"] and result["created_at"]
    # The record agrees with the engine's own.
    engine_view = mistral.get("/executions/%s" % result["engine_execution_id"])
    assert engine_view["state"] == "SUCCESS"
    assert json.loads(engine_view["output"]) == result["output"]
    # And the record reads back the same later.
    assert bridge.get(result["id"])["output"] == result["output"]


def test_std_fail_ends_failed_with_engine_error(bridge, tmp_path):
    name = unique("failing")
    path = write_workflow(tmp_path, FAILING.format(name=name))
    proc = bridge.cli("run", path, "--wait", "--json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "failed"
    assert "boom" in result["error"]
    by_name = {t["name"]: t["status"] for t in result["tasks"]}
    assert by_name == {"ok": "succeeded", "boom": "failed"}
    # The human view shows the failure too.
    text = bridge.cli("execution", "get", result["id"]).stdout
    assert "status:     failed" in text and "boom" in text


def test_invalid_yaml_records_nothing(bridge, mistral, tmp_path):
    path = write_workflow(tmp_path, "version: '2.0'\nbad:\n  tasks: [oops\n")
    proc = bridge.cli("run", path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "invalid YAML in %s at line" % path in proc.stderr
    assert bridge.records() == []
    assert mistral.executions("bad") == []


def test_invalid_dsl_is_rejected_by_engine_with_clear_error(bridge, mistral, tmp_path):
    name = unique("baddsl")
    path = write_workflow(
        tmp_path, "version: '2.0'\n%s:\n  tasks:\n    a:\n      acton: std.noop\n" % name
    )
    proc = bridge.cli("run", path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "rejected by the engine" in lines[0]
    assert mistral.executions(name) == []
    assert bridge.records() == []


def test_unknown_input_key_records_nothing(bridge, mistral, tmp_path):
    name = unique("three")
    path = write_workflow(tmp_path, THREE_TASKS.format(name=name))
    proc = bridge.cli("run", path, "-i", "who=x", "-i", "tims=3")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "st2bridge: error: unknown input 'tims' for workflow %s (it takes: who, times)" % name
    )
    assert mistral.executions(name) == []
    assert bridge.records() == []
    proc = bridge.cli("execution", "get", "no-such-id")
    assert proc.returncode == 5 and "no-such-id" in proc.stderr


def test_retried_submit_after_dropped_response_starts_one_execution(bridge, mistral, tmp_path):
    name = unique("once")
    path = write_workflow(tmp_path, THREE_TASKS.format(name=name))
    proxy = DroppingProxy(mistral.api_url.rsplit("/v2", 1)[0])
    try:
        bridge.write(api_url=proxy.url + "/v2")
        proc = bridge.cli("run", path, "-i", "who=once", "--wait", "--json")
        assert proc.returncode == 0, proc.stderr
        assert proxy.count("POST", "/v2/executions") == 2  # dropped, then retried
    finally:
        proxy.close()
    engine_executions = mistral.executions(name)
    assert len(engine_executions) == 1
    assert engine_executions[0]["id"] == json.loads(proc.stdout)["engine_execution_id"]


def test_tracker_process_finishes_executions_started_without_wait(bridge, tmp_path):
    name = unique("tracked")
    path = write_workflow(tmp_path, THREE_TASKS.format(name=name))
    ids = []
    for who in ("a", "b", "c"):
        proc = bridge.cli("run", path, "-i", "who=%s" % who)
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip())
    assert all(bridge.get(i)["status"] in ("running", "requested") for i in ids)
    tracker = bridge.start_tracker()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = [bridge.get(i) for i in ids]
            if all(r["status"] == "succeeded" for r in records):
                break
            time.sleep(0.5)
        assert [r["status"] for r in records] == ["succeeded"] * 3
        assert all(r["finished_by"] == "poll" for r in records)
        assert [r["output"]["message"] for r in records] == [
            "hello a x2",
            "hello b x2",
            "hello c x2",
        ]
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0


def test_cached_definition_deleted_in_the_engine_is_registered_again(mistral, tmp_path):
    """A long-lived runner trusts a definition it registered for
    definition_cache_seconds; if the engine lost it meanwhile, the rejected
    submit registers it again and the execution starts once."""
    import requests

    from st2bridge import workflow
    from st2bridge.engine import MistralClient
    from st2bridge.runner import Runner
    from st2bridge.store import open_store

    name = unique("cached")
    wf = workflow.parse(THREE_TASKS.format(name=name))
    engine = MistralClient(mistral.api_url)
    store = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    try:
        runner = Runner(engine, store, definition_cache_seconds=600)
        first = runner.start(wf, name, {"who": "a"})
        assert runner.register(wf) == "cached"
        assert (
            requests.delete("%s/workflows/%s" % (mistral.api_url, name), timeout=10).status_code
            == 204
        )
        second = runner.start(wf, name, {"who": "b"})
        assert second["status"] == "running"
        ids = sorted(e["id"] for e in mistral.executions(name))
        assert ids == sorted([first["engine_execution_id"], second["engine_execution_id"]])
    finally:
        store.close()
