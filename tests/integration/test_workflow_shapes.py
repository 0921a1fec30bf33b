"""Every workflow shape Mistral runs, through `st2bridge run` on a real
Mistral 23: workbooks with ad-hoc actions, reverse workflows, env, namespaces,
run by name, workflow register/list, idempotency keys, and a store that fails
after the engine accepted the submit. Independent runs go concurrently.

Adapted from Apache-2.0 files of openstack/python-mistralclient:
functionaltests/resources/v2/wb_v2.yaml (the workbook and its ad-hoc action
ac1) and functionaltests/resources/v2/for_namespaces/*.yaml (three levels of
sub-workflows across namespaces).
"""

import json
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.bridge import wait_status, write_workflow
from tests.support.dropping_proxy import DroppingProxy

pytestmark = pytest.mark.integration

WORKBOOK = """---
version: '2.0'

name: {wb}

actions:
  ac1:
    input:
      - str1
      - str2
    base: std.echo output="<% $.str1 %><% $.str2 %>"

workflows:
  wf1:
    type: direct

    tasks:
      hello:
        action: std.echo output="Hello"
        publish:
          result: <% task(hello).result %>

  main:
    input: [who]
    output:
      greeting: <% $.greeting %>
    tasks:
      greet:
        action: ac1 str1="Hello, " str2=<% $.who %>
        publish:
          greeting: <% task().result %>
        on-success: [sub]
      sub:
        workflow: wf1
"""

REVERSE = """version: '2.0'
{name}:
  type: reverse
  tasks:
    base:
      action: std.echo output="base"
    top:
      action: std.echo output="top"
      requires: [base]
    unrelated:
      action: std.echo output="never"
"""

ENV = """version: '2.0'
{name}:
  output:
    env: <% env() %>
    region: <% $.region %>
  tasks:
    read:
      action: std.echo output=<% env().region %>
      publish:
        region: <% task().result %>
"""

WHICH = """version: '2.0'
{name}:
  output:
    which: <% $.which %>
  tasks:
    t:
      action: std.echo output="{which}"
      publish:
        which: <% task().result %>
"""

# for_namespaces: top -> middle -> lowest.
LEVEL = "---\nversion: '2.0'\n\n{p}%s:\n  type: direct\n  tasks:\n    hello:\n      %s\n"
TOP = LEVEL % ("top", "workflow: {p}middle")
MIDDLE = LEVEL % ("middle", "workflow: {p}lowest")
LOWEST = LEVEL % ("lowest", "action: std.noop")

FAILING = """version: '2.0'
{name}:
  tasks:
    boom:
      action: std.fail error_data="disk on fire"
"""

SECRET_OUT = """version: '2.0'
{name}:
  output:
    params: <% execution().params %>
  tasks:
    t:
      action: std.noop
"""


def unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def together(bridge, *commands):
    """Run CLI commands two at a time; their CompletedProcesses in order. (Not
    more: the test engine keeps its state in SQLite, and under load its
    processes lose writes to "database is locked", leaving executions RUNNING.)"""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda argv: bridge.cli(*argv), commands))


def ok_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def engine_run(mistral, name, params=None, namespace=""):
    """The same workflow started on the engine directly, without the bridge."""
    body = {"workflow_name": name, "params": json.dumps(params or {})}
    if namespace:
        body["workflow_namespace"] = namespace
    ex = requests.post(mistral.api_url + "/executions", json=body, timeout=60).json()
    for _ in range(100):
        got = mistral.get("/executions/%s" % ex["id"])
        if got["state"] in ("SUCCESS", "ERROR"):
            return got
        __import__("time").sleep(0.2)
    pytest.fail("engine execution %s did not end" % ex["id"])


def test_a_workbook_with_an_ad_hoc_action_and_a_reverse_workflow(bridge, mistral, tmp_path):
    wb, rev = unique("wb"), unique("rev")
    wb_path = write_workflow(tmp_path, WORKBOOK.format(wb=wb), "wb.yaml")
    rev_path = write_workflow(tmp_path, REVERSE.format(name=rev), "rev.yaml")
    failing = write_workflow(tmp_path, FAILING.format(name=unique("fails")), "fails.yaml")
    book, reverse, refused, failed = together(
        bridge,
        ["run", wb_path, "-i", "who=world", "--wait", "--json", "--timeout", "60"],
        ["run", rev_path, "--task", "top", "--wait", "--json", "--timeout", "60"],
        ["run", rev_path],
        ["--config-file", bridge.conf, "run", failing, "--wait", "--timeout", "60"],
    )
    # --wait ends like `execution get`: the error tree and the command, config file included.
    assert failed.returncode == 1 and "error tree (from the engine):" in failed.stdout
    assert "  st2bridge --config-file %s task rerun " % bridge.conf in failed.stdout
    book = ok_json(book)
    assert (book["status"], book["workflow_name"], book["workbook"]) == (
        "succeeded",
        wb + ".main",
        wb,
    )
    assert book["output"] == {"greeting": "Hello, world"}  # from the workbook's ad-hoc action
    engine_view = mistral.get("/executions/%s" % book["engine_execution_id"])
    assert json.loads(engine_view["output"]) == book["output"]
    assert engine_view["workflow_name"] == wb + ".main"

    reverse = ok_json(reverse)
    assert reverse["status"] == "succeeded"
    assert sorted(t["name"] for t in reverse["tasks"]) == ["base", "top"]  # not "unrelated"

    assert refused.returncode == 2 and "choose the task to run with --task" in refused.stderr
    assert "(its tasks: base, top, unrelated)" in refused.stderr
    assert [r for r in bridge.records() if r["workflow_name"] == rev] == [
        r for r in bridge.records() if r["id"] == reverse["id"]
    ]  # the refused run recorded nothing
    assert len(mistral.executions(rev)) == 1  # and sent nothing


def test_env_reads_as_without_the_bridge(bridge, mistral, tmp_path):
    name, env_name = unique("env"), unique("envstore")
    path = write_workflow(tmp_path, ENV.format(name=name))
    (tmp_path / "env.yaml").write_text("region: eu-west\nlimits:\n  cpu: 2\n")
    stored = {"region": "us-east", "tier": "gold"}
    answer = requests.post(
        mistral.api_url + "/environments",
        json={"name": env_name, "variables": json.dumps(stored)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    by_values, by_file, by_name, unknown = together(
        bridge,
        [
            "run",
            path,
            "--env",
            "region=ap-south",
            "--env",
            "n=3",
            "--wait",
            "--json",
            "--timeout",
            "60",
        ],
        ["run", path, "--env-file", tmp_path / "env.yaml", "--wait", "--json", "--timeout", "60"],
        ["run", path, "--env-name", env_name, "--wait", "--json", "--timeout", "60"],
        ["run", path, "--env-name", unique("missing")],
    )
    by_values, by_file, by_name = ok_json(by_values), ok_json(by_file), ok_json(by_name)
    assert by_values["output"]["region"] == "ap-south"
    assert by_values["output"]["env"] == {
        "region": "ap-south",
        "n": 3,
        "st2bridge_execution_id": by_values["id"],  # the bridge's one key
    }
    assert by_file["output"]["env"]["limits"] == {"cpu": 2}
    # A stored environment: exactly what the engine gives without the bridge.
    direct = engine_run(mistral, name, {"env": env_name})
    assert by_name["output"] == json.loads(direct["output"]) == {"env": stored, "region": "us-east"}
    # Values: the same as without the bridge, but for the bridge's own key.
    direct = engine_run(mistral, name, {"env": {"region": "ap-south", "n": 3}})
    bridged = dict(by_values["output"]["env"])
    bridged.pop("st2bridge_execution_id")
    assert json.loads(direct["output"])["env"] == bridged
    assert unknown.returncode == 2 and "the engine has no environment" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_namespaces_keep_same_named_workflows_apart(bridge, mistral, tmp_path):
    name, ns_a, ns_b, p = unique("same"), unique("nsa"), unique("nsb"), unique("n") + "_"
    a = write_workflow(tmp_path, WHICH.format(name=name, which="A"), "a.yaml")
    b = write_workflow(tmp_path, WHICH.format(name=name, which="B"), "b.yaml")
    d = write_workflow(tmp_path, WHICH.format(name=name, which="D"), "d.yaml")
    for text, file in ((TOP, "top.yaml"), (MIDDLE, "middle.yaml"), (LOWEST, "lowest.yaml")):
        write_workflow(tmp_path, text.format(p=p), file)
    register, lowest = together(
        bridge,
        ["workflow", "register", tmp_path / "middle.yaml", "--namespace", ns_a, "--json"],
        ["workflow", "register", tmp_path / "lowest.yaml"],  # the default namespace only
    )
    assert ok_json(register)[0]["outcome"] == "created"
    assert lowest.returncode == 0 and "created" in lowest.stdout, lowest.stderr
    in_a, in_b = together(
        bridge,
        ["run", a, "--namespace", ns_a, "--wait", "--json", "--timeout", "60"],
        ["run", b, "--namespace", ns_b, "--wait", "--json", "--timeout", "60"],
    )
    records_before = len(bridge.records())
    default, bad_input = together(
        bridge,
        ["run", d, "--wait", "--json", "--timeout", "60"],
        # Run by name: what the engine holds in that namespace, input checked first.
        ["run", "--name", name, "--namespace", ns_b, "-i", "bogus=1"],
    )
    in_a, in_b, default = ok_json(in_a), ok_json(in_b), ok_json(default)
    assert [r["output"]["which"] for r in (in_a, in_b, default)] == ["A", "B", "D"]
    assert (in_a["namespace"], in_b["namespace"], default["namespace"]) == (ns_a, ns_b, "")
    for ns, which in ((ns_a, "A"), (ns_b, "B"), ("", "D")):  # none overwrote another
        held = mistral.get("/workflows/%s" % name, namespace=ns)
        assert 'output="%s"' % which in held["definition"]
    assert bad_input.returncode == 2 and "unknown input 'bogus'" in bad_input.stderr
    assert len(bridge.records()) == records_before + 1  # the default one only

    # Sub-workflows resolve as Mistral resolves them: the namespace first, then the default.
    # (Alone: three executions at once.)
    nested = bridge.cli(
        "run", tmp_path / "top.yaml", "--namespace", ns_a, "--wait", "--json", "--timeout", "60"
    )
    assert ok_json(nested)["status"] == "succeeded", nested.stdout
    by_name, listed = together(
        bridge,
        ["run", "--name", name, "--namespace", ns_b, "--wait", "--json", "--timeout", "60"],
        ["workflow", "list", "--namespace", ns_a, "--json"],
    )
    assert sorted(w["name"] for w in ok_json(listed)) == sorted([name, p + "middle", p + "top"])
    assert ok_json(by_name)["output"] == {"which": "B"}


def test_an_idempotency_key_starts_one_execution_however_often_it_is_run(bridge, mistral, tmp_path):
    name, key = unique("idem"), unique("key")
    path = write_workflow(tmp_path, WHICH.format(name=name, which="once"))
    runs = together(bridge, *[["run", path, "--idempotency-key", key]] * 3)
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert len({r.stdout.strip() for r in runs}) == 1
    assert len(mistral.executions(name)) == 1 and len(bridge.records()) == 1
    other = bridge.cli("run", path, "--idempotency-key", key, "-i", "x=1")
    assert other.returncode == 2  # the file's input check comes first: x is unknown
    changed = write_workflow(tmp_path, WHICH.format(name=name, which="twice"), "changed.yaml")
    conflict = bridge.cli("run", changed, "--idempotency-key", key)
    assert conflict.returncode == 7 and "was used for a different request" in conflict.stderr


def test_a_store_locked_after_the_submit_still_reports_success(bridge, mistral, tmp_path):
    """Issue 16 (5): the engine accepted it, then the store stays locked past its
    busy timeout. `run` must say so and exit 0 (a retrying caller would start it
    twice); the tracker brings the record up to date; the retry with the same
    idempotency key returns the first execution."""
    name, key = unique("locked"), unique("key")
    path = write_workflow(tmp_path, WHICH.format(name=name, which="ran"))
    db = tmp_path / "bridge.db"
    holder = {}

    def lock_store(method, path_):
        if method == "POST" and path_ == "/v2/executions" and "conn" not in holder:
            conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN IMMEDIATE")  # another process's long write
            holder["conn"] = conn

    proxy = DroppingProxy(mistral.api_url.rsplit("/v2", 1)[0], drops=0, before=lock_store)
    try:
        bridge.write(api_url=proxy.url + "/v2")
        with open(bridge.conf, "a") as conf:
            conf.write("[store]\nbusy_timeout = 0.5\n")
        run = bridge.cli("run", path, "--idempotency-key", key)
    finally:
        proxy.close()
    assert "conn" in holder, "the submit never reached the engine"
    execution_id = run.stdout.strip()
    assert run.returncode == 0, run.stderr
    assert "warning: the engine accepted execution %s" % execution_id in run.stderr
    assert "the record catches up" in run.stderr and "try again" not in run.stderr
    holder["conn"].execute("ROLLBACK")
    holder["conn"].close()
    assert bridge.get(execution_id)["status"] == "requested"

    bridge.write()  # the engine directly again
    retry = bridge.cli("run", path, "--idempotency-key", key)
    assert retry.returncode == 0 and retry.stdout.strip() == execution_id, retry.stderr
    tracker = bridge.start_tracker()
    try:
        record = wait_status(bridge, execution_id, timeout=30)
    finally:
        tracker.terminate()
        tracker.wait(timeout=30)
    assert record["status"] == "succeeded" and record["output"] == {"which": "ran"}
    assert len(mistral.executions(name)) == 1


def test_the_callback_secret_stays_out_of_the_record(bridge, mistral, tmp_path):
    """Issue 13 (11): a workflow returning execution() gets its params, the
    callback secret with them; the record keeps it masked."""
    from tests.support.net import free_port

    name = unique("params")
    path = write_workflow(tmp_path, SECRET_OUT.format(name=name))
    bridge.write(mode="hybrid", callback_port=free_port())  # nobody listens: --wait polls
    record = ok_json(bridge.cli("run", path, "--wait", "--json"))
    engine_output = json.loads(
        mistral.get("/executions/%s" % record["engine_execution_id"])["output"]
    )
    secret = engine_output["params"]["notify"][0]["headers"]["X-St2bridge-Secret"]
    assert len(secret) > 20
    assert record["output"]["params"]["notify"][0]["headers"]["X-St2bridge-Secret"] == "***"
    assert secret not in json.dumps(bridge.get(record["id"]))
    for stored in tmp_path.glob("bridge.db*"):  # the WAL too
        assert secret.encode() not in stored.read_bytes()


def test_a_resubmit_by_the_tracker_carries_the_webhook(hybrid, mistral, tmp_path):
    """Issue 16 (7): the submit never reached the engine; the tracker submits the
    requested record, and its callbacks (authenticated with a new secret) arrive."""
    bridge, name = hybrid, unique("resubmit")
    path = write_workflow(tmp_path, WHICH.format(name=name, which="late"))
    port = int(bridge.callback.rsplit(":", 1)[1])

    def refuse_submits(method, path_):
        if method == "POST" and path_ == "/v2/executions":
            raise ConnectionAbortedError("the submit is lost on the way")

    proxy = DroppingProxy(mistral.api_url.rsplit("/v2", 1)[0], drops=0, before=refuse_submits)
    try:
        bridge.write(
            api_url=proxy.url + "/v2", mode="hybrid", callback_port=port, extra="stale_after = 60\n"
        )
        run = bridge.cli("run", path)
    finally:
        proxy.close()
        bridge.write(mode="hybrid", callback_port=port, extra="stale_after = 60\n")
    assert run.returncode == 3 and "stays 'requested'" in run.stderr, run.stderr
    execution_id = run.stdout.strip()  # printed when recorded, before the submit
    assert mistral.executions(name) == []
    assert bridge.cli("track", execution_id).returncode == 0  # due now, not after stale_after
    record = wait_status(bridge, execution_id, timeout=30)
    assert record["status"] == "succeeded" and record["output"] == {"which": "late"}
    (engine_run_,) = mistral.executions(name)
    entry = json.loads(engine_run_["params"])["notify"][0]
    assert entry["url"] == bridge.callback + "/v1/callbacks/mistral/" + execution_id
    stored = next(r for r in bridge.records() if r["id"] == execution_id)
    assert stored["last_event_at"] is not None  # its callbacks were accepted
    from st2bridge.callbacks import secrets, webhook

    assert secrets.matches(entry["headers"][webhook.SECRET_HEADER], stored["callback_secret_hash"])
