"""The record's task view equals the engine's, on Mistral's own workflow shapes,
in every tracking mode and with `run --wait`; and killing a callback-mode
tracker loses nothing.

Shapes: a join with a sub-workflow branch, a with-items of sub-workflows whose
`migrate` fails on three hosts, 60 failing items (a WORKFLOW_FAILED body over
64 KB), a `succeed` command while a task still runs, wait-before and
pause-before tasks (null events), sub-workflows three deep. Everything runs at
once on the session's engine: three trackers (poll, callback, hybrid) and five
`run --wait` processes.
"""

import concurrent.futures
import json
import signal
import threading
import time
import uuid

import pytest
import requests

from st2bridge import status as st
from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.runner import Runner
from st2bridge.store import open_store
from st2bridge.workflow import parse
from tests.support.bridge import Bridge, start_listening_tracker, wait_for
from tests.support.net import free_port

pytestmark = pytest.mark.integration

SHAPES = """version: '2.0'
tv_join_{s}:
  tasks:
    start:
      action: std.noop
      on-success: [left, right]
    left:
      action: std.echo output="left"
      on-success: [join]
    right:
      workflow: tv_child_{s}
      on-success: [join]
    join:
      join: all
      action: std.noop
tv_child_{s}:
  tasks:
    c1:
      action: std.noop
      on-success: [c2]
    c2:
      action: std.echo output="child"
tv_hosts_{s}:
  tasks:
    deploy:
      with-items: host in <% ['web1', 'web2', 'web3'] %>
      workflow: tv_host_{s} host=<% $.host %>
tv_host_{s}:
  input: [host]
  tasks:
    prep:
      action: std.noop
      on-success: [migrate]
    migrate:
      action: std.fail
tv_many_{s}:
  tasks:
    many:
      with-items: i in <% range(60) %>
      action: std.fail
      input:
        error_data: <% concat('item ', str($.i), ' ', '{long}') %>
tv_succeed_{s}:
  tasks:
    slow:
      action: std.sleep seconds=2
    quick:
      action: std.noop
      on-success: [succeed]
tv_waits_{s}:
  tasks:
    a:
      action: std.noop
      on-success: [b]
    b:
      action: std.noop
      wait-before: 1
      on-success: [c]
    c:
      action: std.noop
      pause-before: true
tv_deep_{s}:
  tasks:
    l1:
      workflow: tv_deep2_{s}
tv_deep2_{s}:
  tasks:
    l2:
      workflow: tv_deep3_{s}
tv_deep3_{s}:
  tasks:
    l3:
      action: std.noop
"""
EXPECTED = {
    "join": st.SUCCEEDED,
    "hosts": st.FAILED,
    "many": st.FAILED,
    "succeed": st.SUCCEEDED,
    "waits": st.SUCCEEDED,
    "deep": st.SUCCEEDED,
}
COMMON = ["join", "hosts", "succeed", "waits", "deep"]
FINISHED_BY = {"poll": {"poll"}, "callback": {"callback"}, "hybrid": {"callback"}}


def engine_tree(mistral, root):
    """The engine's own task list of `root` and of every sub-workflow under it."""
    rows = mistral.get("/executions/%s/tasks" % root)["tasks"]
    for sub in mistral.get("/executions", root_execution_id=root, limit=1000)["executions"]:
        if sub["id"] != root:
            rows += mistral.get("/executions/%s/tasks" % sub["id"])["tasks"]
    return sorted((t["id"], t["name"], t["state"], t["workflow_execution_id"]) for t in rows)


def recorded_tree(record):
    return sorted(
        (t["id"], t["name"], t["state"], t["workflow_execution_id"]) for t in record["tasks"]
    )


def engine_settled(tree):
    return all(row[2] in ("SUCCESS", "ERROR", "CANCELLED", "SKIPPED") for row in tree)


class Resumer(threading.Thread):
    """Resumes executions the engine paused at a pause-before task."""

    def __init__(self, mistral):
        super().__init__(daemon=True)
        self.mistral, self.ids, self.done, self.stop = mistral, set(), set(), False

    def run(self):
        while not self.stop:
            for eid in list(self.ids - self.done):
                try:
                    state = self.mistral.get("/executions/%s" % eid)["state"]
                except requests.RequestException:
                    continue
                if state == "PAUSED":
                    requests.put(
                        self.mistral.api_url + "/executions/" + eid,
                        json={"state": "RUNNING"},
                        timeout=30,
                    ).raise_for_status()
                    self.done.add(eid)
            time.sleep(0.3)


def runner_of(bridge, mode, wf):
    """A runner like the CLI's, that trusts the definitions it registered
    (one registration for all the starts below)."""
    engine = MistralClient(bridge.api_url, retry=RetryPolicy(stop_max_msec=10000))
    store = open_store("sqlite:///%s" % (bridge.dir / "bridge.db"))
    runner = Runner(
        engine,
        store,
        mode=mode,
        callback_url=getattr(bridge, "callback", None),
        stale_after=60,
        query_interval=0.5,
        definition_cache_seconds=600,
    )
    runner.register(wf)
    return runner


def test_the_record_holds_the_engines_task_view_in_every_mode(mistral, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    path = tmp_path / "shapes.yaml"
    path.write_text(SHAPES.format(s=suffix, long="y" * 1200))
    bridges, trackers, ports, runners = {}, [], {}, {}
    resumer = Resumer(mistral)
    resumer.start()
    try:
        for mode in ("poll", "callback", "hybrid"):
            (tmp_path / mode).mkdir()
            bridge = bridges[mode] = Bridge(tmp_path / mode, mistral.api_url)
            if mode == "poll":
                bridge.write(mode="poll")
                trackers.append(bridge.start_tracker())
            else:
                ports[mode] = free_port()
                bridge.write(mode=mode, callback_port=ports[mode], extra="stale_after = 60\n")
                trackers.append(start_listening_tracker(bridge, ports[mode]))
        # Registered once, then everything starts at once.
        wf = parse(path.read_text(), str(path))
        runners.update((mode, runner_of(bridges[mode], mode, wf)) for mode in bridges)
        started, wait_views = {}, {}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            jobs = {
                (mode, shape): pool.submit(runners[mode].start, wf, "tv_%s_%s" % (shape, suffix))
                for mode in bridges
                for shape in COMMON + (["many"] if mode == "callback" else [])
            }
            waits = {
                shape: pool.submit(
                    bridges["hybrid"].cli,
                    "run",
                    path,
                    "--workflow",
                    "tv_%s_%s" % (shape, suffix),
                    "--wait",
                    "--json",
                    timeout=120,
                )
                for shape in COMMON
            }
            for key, job in jobs.items():
                started[key] = job.result()
                if key[1] == "waits":
                    resumer.ids.add(started[key]["engine_execution_id"])
            # --wait processes: their waits execution is found by workflow name.
            wait_for(
                "the --wait runs to start",
                lambda: (
                    len(
                        [
                            r
                            for r in bridges["hybrid"].records()
                            if r["workflow_name"].endswith(suffix)
                        ]
                    )
                    >= len(COMMON) * 2
                ),
                timeout=60,
            )
            for r in bridges["hybrid"].records():
                if r["workflow_name"] == "tv_waits_" + suffix:
                    resumer.ids.add(r["engine_execution_id"])
            for shape, job in waits.items():
                proc = job.result()
                assert proc.returncode == (0 if EXPECTED[shape] == st.SUCCEEDED else 1), (
                    shape,
                    proc.stderr,
                )
                wait_views[shape] = json.loads(proc.stdout)
                started[("wait", shape)] = {"id": wait_views[shape]["id"]}
        # Every record ends as the engine says, and its task list becomes the
        # engine's (sub-workflows, with-items and late tasks included).
        for (mode, shape), record in started.items():
            bridge = bridges["hybrid" if mode == "wait" else mode]

            def converged(bridge=bridge, record=record):
                rec = next(r for r in bridge.records() if r["id"] == record["id"])
                if not st.is_terminal(rec["status"]):
                    return None
                tree = engine_tree(mistral, rec["engine_execution_id"])
                return rec if engine_settled(tree) and recorded_tree(rec) == tree else None

            final = wait_for("%s %s to match the engine" % (mode, shape), converged, timeout=60)
            assert final["status"] == EXPECTED[shape], (mode, shape, final["error"])
            if mode in FINISHED_BY:
                assert final["finished_by"] in FINISHED_BY[mode], (mode, shape)
            assert final["created_at"] <= final["submitted_at"] <= final["ended_at"]
            assert final["engine_created_at"] and final["engine_updated_at"]
            if shape == "hosts":
                migrate = sorted(t["label"] for t in final["tasks"] if t["name"] == "migrate")
                assert migrate == [
                    "deploy[%d host=web%d] > migrate" % (i, i + 1) for i in range(3)
                ], mode
            if shape == "deep":
                assert [t["label"] for t in final["tasks"]] == ["l1", "l1 > l2", "l1 > l2 > l3"]
            if shape == "many":
                assert len(final["error"]) > 60000  # its WORKFLOW_FAILED body was over 64 KB
            if mode == "wait":
                # What `run --wait --json` printed was the engine's task view already.
                printed = wait_views[shape]["tasks"]
                assert sorted(
                    (t["id"], t["name"], t["state"], t["workflow_execution_id"]) for t in printed
                ) == recorded_tree(final), shape
        # Null events (wait-before, pause-before) and the 64 KB body: all taken.
        for mode, port in ports.items():
            counts = requests.get("http://127.0.0.1:%d/v1/health" % port, timeout=5).json()
            assert counts["callbacks"]["rejected"] == 0 and counts["callbacks"]["errors"] == 0
            assert counts["callbacks"]["accepted"] > 20, (mode, counts)
        # What a person sees: the three hosts told apart, in the error tree too.
        hosts = started[("hybrid", "hosts")]["id"]
        text = bridges["hybrid"].cli("execution", "get", hosts).stdout
        tree_lines = [line for line in text.splitlines() if "task deploy[" in line]
        assert len(tree_lines) == 3
        for i, line in enumerate(tree_lines):  # each with its task id, re-run below
            assert "task deploy[%d host=web%d] > migrate (ERROR)" % (i, i + 1) in line
            assert "st2bridge task rerun %s" % line.split()[-1] in text
        view = json.loads(bridges["hybrid"].cli("execution", "get", hosts, "--json").stdout)
        assert {t["item"] for t in view["tasks"] if t["name"] == "migrate"} == {
            "host=web1",
            "host=web2",
            "host=web3",
        }
        table = bridges["hybrid"].cli("execution", "tasks", hosts).stdout
        assert "deploy[2 host=web3] > migrate" in table
    finally:
        resumer.stop = True
        for runner in runners.values():
            runner.store.close()
        for tracker in trackers:
            tracker.send_signal(signal.SIGTERM)
        for tracker in trackers:
            assert tracker.wait(timeout=30) == 0


SLEEPY = """version: '2.0'
{name}:
  tasks:
    nap:
      action: std.sleep seconds=3
      on-success: [done]
    done:
      action: std.noop
"""


def test_killing_a_callback_mode_tracker_loses_nothing(bridge, mistral, tmp_path):
    """Callbacks go to tracker A, which is killed -9 mid-run: the workflow's
    end is posted to nobody. Tracker B (its own listener, same store) finds
    it silent for stale_after with its owner gone, and checks it once."""
    port_a = free_port()
    fast = "stale_after = 2\nheartbeat_interval = 0.5\nquery_interval = 0.5\nlease_seconds = 3\n"
    bridge.write(mode="callback", callback_port=port_a, extra=fast)
    tracker_a = start_listening_tracker(bridge, port_a)
    name = "cbkill_%s" % uuid.uuid4().hex[:8]
    (tmp_path / "sleepy.yaml").write_text(SLEEPY.format(name=name))
    proc = bridge.cli("run", tmp_path / "sleepy.yaml")
    assert proc.returncode == 0, proc.stderr
    execution_id = proc.stdout.strip()
    wait_for(
        "a callback to reach tracker A",
        lambda: next(r for r in bridge.records() if r["id"] == execution_id)["callback_owner"],
        timeout=15,
    )
    tracker_a.kill()  # kill -9
    tracker_a.wait()
    # B: same store, its own listener; the engine keeps posting to A's dead port.
    conf_b = tmp_path / "b.conf"
    conf_b.write_text("[callback]\nport = %d\n" % free_port())
    tracker_b = bridge.start_tracker("--config-file", str(conf_b))
    try:
        final = wait_for(
            "tracker B to finish it",
            lambda: next(
                (
                    r
                    for r in bridge.records()
                    if r["id"] == execution_id and st.is_terminal(r["status"])
                ),
                None,
            ),
            timeout=40,
        )
    finally:
        tracker_b.send_signal(signal.SIGTERM)
        assert tracker_b.wait(timeout=30) == 0
    assert final["status"] == st.SUCCEEDED and final["finished_by"] == "poll"
    engine = mistral.get("/executions/%s" % final["engine_execution_id"])
    assert engine["state"] == "SUCCESS"
    assert recorded_tree(final) == engine_tree(mistral, final["engine_execution_id"])
