"""The operator's commands against a real Mistral, each run as a person would:
`st2bridge execution list/get/tasks/watch/cancel/pause/resume`, `st2bridge task rerun`."""

import json
import signal
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.bridge import FINAL, QUICK, wait_for, wait_status, write_workflow

pytestmark = pytest.mark.integration

# A parent whose sub-workflow fails in its second task (after one retry).
NESTED_FAIL = """version: '2.0'
{name}:
  tasks:
    first:
      action: std.noop
      on-success: [call_child]
    call_child:
      workflow: {name}_child
{name}_child:
  tasks:
    child_a:
      action: std.echo output=7
      on-success: [boom]
    boom:
      action: std.fail error_data="disk full on /var/spool"
      retry:
        count: 1
        delay: 0
"""

# A parent whose sub-workflow naps twice: long enough to pause or cancel it,
# and to be seen running again after a resume.
NESTED_NAP = """version: '2.0'
{name}:
  tasks:
    call_child:
      workflow: {name}_child
{name}_child:
  tasks:
    nap:
      action: std.sleep seconds={seconds}
      on-success: [after]
    after:
      action: std.sleep seconds={after}
"""

# A sub-workflow calling an HTTP service: it answers 503 the first time, 200 after.
NESTED_HTTP = """version: '2.0'
{name}:
  input: [url]
  output:
    body: <% $.body %>
  tasks:
    call_child:
      workflow: {name}_child url=<% $.url %>
      publish:
        body: <% task().result.body %>
{name}_child:
  input: [url]
  output:
    body: <% $.body %>
  tasks:
    fetch:
      action: std.http url=<% $.url %>
      publish:
        body: <% task().result.content %>
"""


def cli_ok(bridge, *args):
    proc = bridge.cli(*args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def cli_json(bridge, *args):
    return json.loads(cli_ok(bridge, *args, "--json"))


def children(mistral, record):
    return mistral.get(
        "/executions",
        root_execution_id=record["engine_execution_id"],
        fields="id,state,workflow_name",
    )["executions"]


def name_of(kind):
    return "%s_%s" % (kind, uuid.uuid4().hex[:8])


def stop(tracker):
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0


def test_succeeded_watch_list_get_tasks(bridge, tmp_path):
    name = name_of("ok")
    path = write_workflow(tmp_path, QUICK.format(name=name))
    execution_id = cli_ok(bridge, "run", path, "-i", "who=ops").strip()
    # No tracker runs: watch reads the engine itself and ends with the record.
    proc = bridge.cli("execution", "watch", execution_id, "--interval", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert "status:     succeeded (finished by wait)" in proc.stdout

    rows = cli_json(bridge, "execution", "list", "--since", "10m", "--workflow", name)
    assert [(r["id"], r["status"], r["finished_by"]) for r in rows] == [
        (execution_id, "succeeded", "wait")
    ]
    assert rows[0]["duration_s"] >= 0 and rows[0]["ended_at"]
    table = cli_ok(bridge, "execution", "list", "--status", "succeeded", "--since", "1h")
    assert table.splitlines()[0].split() == [
        "ID",
        "WORKFLOW",
        "STATUS",
        "STARTED",
        "DURATION",
        "FINISHED_BY",
    ]
    assert execution_id in table
    assert cli_json(bridge, "execution", "list", "--status", "failed", "--workflow", name) == []
    assert bridge.cli("execution", "list", "--since", "yesterday").returncode == 2

    view = cli_json(bridge, "execution", "get", execution_id)
    assert view["output"] == {"greeting": "hi ops"} and view["error_tree"] is None
    tasks = cli_json(bridge, "execution", "tasks", execution_id)
    assert [(t["name"], t["state"], t["workflow"]) for t in tasks] == [
        ("greet", "SUCCESS", None),
        ("done", "SUCCESS", None),
    ]
    assert bridge.cli("execution", "get", str(uuid.uuid4())).returncode == 5


def test_failed_in_a_nested_sub_workflow_get_shows_the_tree_and_the_fix(bridge, tmp_path, mistral):
    name = name_of("fail")
    path = write_workflow(tmp_path, NESTED_FAIL.format(name=name))
    proc = bridge.cli("run", path, "--workflow", name, "--wait")
    assert proc.returncode == 1, proc.stderr
    execution_id = cli_json(bridge, "execution", "list", "--workflow", name)[0]["id"]

    view = cli_json(bridge, "execution", "get", execution_id)
    readme_fields = [
        "id",
        "status",
        "workflow_name",
        "namespace",
        "workbook",
        "engine_execution_id",
        "engine_state",
        "input",
        "output",
        "error",
        "tasks",
        "finished_by",
        "created_at",
        "submitted_at",
        "updated_at",
        "ended_at",
        "labels",
        "started_by",
        "engine_created_at",
        "engine_updated_at",
        "stuck",
    ]
    assert list(view) == readme_fields + ["error_tree"]
    tree = view["error_tree"]
    call_child = tree["tasks"][0]
    assert (tree["workflow"], tree["state"], call_child["name"]) == (name, "ERROR", "call_child")
    child = call_child["workflows"][0]
    boom = child["tasks"][0]
    assert child["workflow"] == name + "_child"
    assert (boom["name"], boom["error"], boom["retry_count"]) == (
        "boom",
        "disk full on /var/spool",
        1,
    )
    assert [a["name"] for a in boom["actions"]] == ["std.fail", "std.fail"]
    engine_boom = [
        t
        for t in mistral.get("/executions/%s/tasks" % child["execution_id"])["tasks"]
        if t["name"] == "boom"
    ][0]
    assert boom["id"] == engine_boom["id"]

    text = cli_ok(bridge, "execution", "get", execution_id)
    assert "action std.fail x2: disk full on /var/spool" in text
    assert text.rstrip().splitlines()[-1].strip() == "st2bridge task rerun %s" % boom["id"]
    assert boom["label"] == "call_child > boom"  # the tree names it by its place

    rows = cli_json(bridge, "execution", "tasks", execution_id)
    assert [(r["name"], r["state"], r["workflow"], r["retries"]) for r in rows] == [
        ("first", "SUCCESS", None, None),
        ("call_child", "ERROR", None, None),
        ("child_a", "SUCCESS", name + "_child", None),
        ("boom", "ERROR", name + "_child", 1),
    ]
    assert execution_id in cli_ok(bridge, "execution", "list", "--status", "failed")
    # Only failed tasks can be re-run; the refusal names the state.
    first = rows[0]["id"]
    proc = bridge.cli("task", "rerun", first)
    assert (
        proc.returncode == 7 and "is SUCCESS" in proc.stderr and len(proc.stderr.splitlines()) == 1
    )
    assert bridge.cli("task", "rerun", str(uuid.uuid4())).returncode == 5


def test_pause_and_resume_cascade_and_pass_through_pausing_and_resuming(bridge, tmp_path, mistral):
    name = name_of("pause")
    path = write_workflow(tmp_path, NESTED_NAP.format(name=name, seconds=4, after=3))
    execution_id = cli_ok(bridge, "run", path, "--workflow", name).strip()
    record = bridge.get(execution_id)
    wait_for(
        "the sub-workflow",
        lambda: [c for c in children(mistral, record) if c["state"] == "RUNNING"],
    )

    # No tracker yet: the record shows `pausing` until something sees the engine.
    assert cli_json(bridge, "execution", "pause", execution_id)["status"] == "pausing"
    assert bridge.get(execution_id)["status"] == "pausing"
    assert mistral.get("/executions/" + record["engine_execution_id"])["state"] == "PAUSED"
    assert [c["state"] for c in children(mistral, record)] == ["PAUSED"]  # the engine cascades
    tracker = bridge.start_tracker()  # poll mode: the poller confirms
    try:
        assert wait_status(bridge, execution_id, ["paused"])["engine_state"] == "PAUSED"
    finally:
        stop(tracker)
    assert "paused already" in cli_ok(bridge, "execution", "pause", execution_id)

    assert cli_json(bridge, "execution", "resume", execution_id)["status"] == "resuming"
    assert bridge.get(execution_id)["status"] == "resuming"
    # Resumed with its parent (its nap may have ended during the pause: then it finishes at once).
    assert [c["state"] for c in children(mistral, record)] in (["RUNNING"], ["SUCCESS"])
    proc = bridge.cli("execution", "watch", execution_id, "--interval", "0.2", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["status"] == "running" and lines[-1]["status"] == "succeeded"
    proc = bridge.cli("execution", "resume", execution_id)
    assert proc.returncode == 7 and "is succeeded; it cannot be resumed" in proc.stderr


def test_cancel_cascades_and_a_callback_confirms_it(hybrid, tmp_path, mistral):
    name = name_of("cancel")
    path = write_workflow(tmp_path, NESTED_NAP.format(name=name, seconds=4, after=0))
    execution_id = cli_ok(hybrid, "run", path, "--workflow", name).strip()
    record = hybrid.get(execution_id)
    wait_for("the sub-workflow", lambda: children(mistral, record))

    answer = cli_json(hybrid, "execution", "cancel", execution_id)
    assert (answer["status"], answer["engine_state"]) == ("canceling", "CANCELLED")
    record = wait_status(hybrid, execution_id, FINAL, timeout=15)
    assert (record["status"], record["finished_by"]) == ("canceled", "callback")
    assert [c["state"] for c in children(mistral, record)] == ["CANCELLED"]
    assert "canceled already" in cli_ok(hybrid, "execution", "cancel", execution_id)
    proc = hybrid.cli("execution", "pause", execution_id)
    assert proc.returncode == 7, proc.stderr


class Flaky(BaseHTTPRequestHandler):
    """503 on the first request, 200 on every later one."""

    calls = 0

    def do_GET(self):
        type(self).calls += 1
        ok = type(self).calls > 1
        body = json.dumps({"ok": ok}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/status" % server.server_port
    server.shutdown()


def test_rerun_after_failure_reopens_and_tracks_to_succeeded(hybrid, tmp_path, flaky_url):
    name = name_of("rerun")
    path = write_workflow(tmp_path, NESTED_HTTP.format(name=name))
    execution_id = cli_ok(hybrid, "run", path, "--workflow", name, "-i", "url=" + flaky_url).strip()
    failed = wait_status(hybrid, execution_id, FINAL)
    assert (failed["status"], failed["finished_by"]) == ("failed", "callback")

    # The two commands: what failed and how to fix it, then the fix.
    fix = cli_ok(hybrid, "execution", "get", execution_id).rstrip().splitlines()[-1].split()
    assert fix[:3] == ["st2bridge", "task", "rerun"]
    answer = cli_json(hybrid, *fix[1:])
    assert (answer["execution_id"], answer["task_name"], answer["reopened"]) == (
        execution_id,
        "fetch",
        True,
    )

    record = wait_status(hybrid, execution_id, FINAL)
    # stale_after is 60 s: the re-run's callbacks were accepted and finished it.
    assert (record["status"], record["finished_by"]) == ("succeeded", "callback")
    assert record["output"] == {"body": {"ok": True}} and record["error"] is None
    assert Flaky.calls == 2
    proc = hybrid.cli(*fix[1:])
    assert proc.returncode == 7 and "fetch" in proc.stderr and "SUCCESS" in proc.stderr
