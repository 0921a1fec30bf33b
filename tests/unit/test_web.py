"""The web view: graph building, escaping, auth and read-only routing."""

import io
import json
import time

import pytest

from st2bridge import config, errors
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from st2bridge.web import graph
from st2bridge.web.app import make_app

DEFINITION = """version: '2.0'
main:
  task-defaults:
    on-error: [cleanup]
  tasks:
    start:
      action: std.noop
      on-success:
        - left
        - right: <% $.go %>
        - fail
    left:
      with-items: x in <% [1, 2] %>
      action: std.echo output=<% $.x %>
      on-complete: merge
    right:
      workflow: child
      on-success:
        publish: {a: 1}
        next: [merge]
    merge:
      join: all
      action: std.noop
      on-success: [start]
      on-error: noop
    cleanup:
      action: std.noop
child:
  tasks:
    only:
      action: std.noop
"""


def test_graph_edges_of_every_transition_form():
    g = graph.build(DEFINITION, "main")
    assert set(g.nodes) == {"start", "left", "right", "merge", "cleanup"}
    edges = set(g.edges)
    assert ("start", "left", "on-success") in edges
    assert ("start", "right", "on-success") in edges  # {task: condition}
    assert ("left", "merge", "on-complete") in edges  # a plain string
    assert ("right", "merge", "on-success") in edges  # {publish, next}
    assert ("merge", "start", "on-success") in edges  # a loop back
    assert ("start", "cleanup", "on-error") in edges  # task-defaults
    assert ("merge", "cleanup", "on-error") not in edges  # own on-error (a command) wins
    assert not any(dst in ("fail", "noop") for _, dst, _ in edges)
    assert g.nodes["merge"]["join"] == "all" and g.nodes["right"]["workflow"] == "child"
    assert g.nodes["left"]["with_items"]


def test_graph_layers_follow_transitions_despite_the_loop():
    g = graph.build(DEFINITION, "main")
    y = {n: g.positions[n][1] for n in g.nodes}
    assert y["start"] < y["left"] == y["right"] < y["merge"]
    xs = [(g.positions[n][0], y[n]) for n in g.nodes]
    assert len(set(xs)) == len(xs)  # no two nodes on top of each other


def test_graph_of_a_single_workflow_document_and_reverse_workflows():
    g = graph.build(
        "version: '2.0'\nwf:\n  type: reverse\n  tasks:\n    a: {action: std.noop}\n"
        "    b: {action: std.noop, requires: [a]}\n",
        "wf",
    )
    assert g.edges == [("a", "b", "requires")]
    assert set(graph.build({"tasks": {"x": {}}}, "any").nodes) == {"x"}
    with pytest.raises(ValueError):
        graph.build("version: '2.0'\nother:\n  tasks: {a: {}}\nmore:\n  tasks: {b: {}}\n", "wf")


def test_svg_escapes_names_and_marks_failed_nodes():
    g = graph.build({"tasks": {"<b>x</b>": {"on-error": ["y"]}, "y": {}}}, "w<i>")
    out = graph.svg(g, {"<b>x</b>": {"state": "ERROR", "items": 3}}, failed={"<b>x</b>"})
    assert "<b>" not in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert 'class="node state-ERROR failed"' in out and "3 items" in out


class FakeEngine:
    def __init__(self, definition=DEFINITION):
        self.definition = definition
        self.gets = []

    def get_workflow(self, name, namespace=None):
        self.gets.append(name)
        return {"name": name, "definition": self.definition}

    def list_executions(self, **filters):
        return []

    def list_tasks(self, execution_id, fields=None):
        return [
            {"id": "t1", "name": "start", "state": "SUCCESS"},
            {
                "id": "t2",
                "name": "left",
                "state": "ERROR",
                "state_info": "boom <img src=x>",
                "runtime_context": {"with_items": {"count": 2, "capacity": 0}},
            },
        ]

    def execution_report(self, execution_id, errors_only=True):
        return {
            "root_workflow_execution": {
                "id": execution_id,
                "name": "main",
                "state": "ERROR",
                "state_info": "failed",
                "task_executions": [
                    {"id": "t2", "name": "left", "state": "ERROR", "state_info": "boom <img src=x>"}
                ],
            }
        }


@pytest.fixture
def store(tmp_path):
    with open_store("sqlite:///%s" % (tmp_path / "b.db")) as s:
        now = time.time()
        s.create_execution(
            new_execution_record(
                id="ok1",
                workflow_name="main",
                engine_execution_id="e-ok",
                status="succeeded",
                created_at=now - 10,
                ended_at=now - 5,
                input={"who": "<i>me</i>"},
                output={"html": "<script>alert(1)</script>"},
            )
        )
        s.create_execution(
            new_execution_record(
                id="bad1",
                workflow_name="main",
                engine_execution_id="e-bad",
                status="failed",
                created_at=now - 3,
                ended_at=now - 1,
                error="left failed",
            )
        )
        yield s


def call(app, path, method="GET", headers=None):
    path, _, query = path.partition("?")
    environ = {
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_METHOD": method,
        "wsgi.input": io.BytesIO(),
    }
    environ.update(headers or {})
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(environ, start_response)).decode()
    return got["status"], got["headers"], body


def test_script_in_output_shows_as_text(store):
    status, headers, body = call(make_app(store, FakeEngine()), "/executions/ok1")
    assert status == 200
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<i>me" not in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_failed_execution_page_marks_the_failed_node_and_its_error(store):
    status, _, body = call(make_app(store, FakeEngine()), "/executions/bad1")
    assert status == 200 and 'data-task="left"' in body
    assert "state-ERROR failed" in body and "2 items" in body
    assert "boom &lt;img src=x&gt;" in body and "<img" not in body


def test_list_newest_first_with_filters_and_json(store):
    app = make_app(store, FakeEngine())
    _, _, body = call(app, "/executions")
    assert body.index("bad1") < body.index("ok1")
    _, _, body = call(app, "/executions?status=failed")
    assert "bad1" in body and 'href="executions/ok1"' not in body
    assert call(app, "/executions?status=nope")[0] == 400
    status, headers, body = call(app, "/api/executions?workflow=main")
    assert status == 200 and headers["Content-Type"] == "application/json" and '"ok1"' in body
    assert call(app, "/executions/missing")[0] == 404


def test_stuck_executions_are_marked_with_the_explanation_and_command(store):
    now = time.time()
    store.create_execution(
        new_execution_record(
            id="stuck1",
            workflow_name="main",
            engine_execution_id="e-stuck",
            status="running",
            engine_state="RUNNING",
            created_at=now - 100,
            stuck={
                "signature": "lost_action",
                "since": now - 95,
                "detected_at": now - 2,
                "reason": "action execution a1 <b>(std.sleep)</b> lost its executor",
                "evidence": {
                    "workflow_execution_id": "e-stuck",
                    "workflow_name": "main",
                    "task": {"id": "t9", "name": "nap", "state": "RUNNING"},
                    "action_executions": [
                        {
                            "id": "a1",
                            "name": "std.sleep",
                            "state": "RUNNING",
                            "last_heartbeat": "2026-11-26 10:00:00",
                        }
                    ],
                    "workflow_executions": [],
                },
            },
        )
    )
    app = make_app(store, FakeEngine())
    _, _, body = call(app, "/executions")
    row = body[body.index('data-id="stuck1"') :].split("</tr>")[0]
    assert 'class="badge stuck"' in row and "stuck: lost_action" in row
    assert "fix: st2bridge execution recover stuck1" in row
    assert (
        'data-id="ok1"' in body
        and "stuck: " not in body.split('data-id="ok1"')[1].split("</tr>")[0]
    )
    _, _, page = call(app, "/executions/stuck1")
    assert '<section class="box stuck" id="stuck"><h3>Stuck: lost_action</h3>' in page
    assert "task nap (t9) RUNNING in workflow main" in page
    assert "<code>st2bridge execution recover stuck1</code>" in page
    assert "<b>(std.sleep)" not in page  # escaped
    status, _, body = call(app, "/api/executions")
    rows = {r["id"]: r for r in json.loads(body)["executions"]}
    assert rows["stuck1"]["stuck"]["command"] == "st2bridge execution recover stuck1"
    assert rows["ok1"]["stuck"] is None


def test_read_only_and_token(store):
    app = make_app(store, FakeEngine(), token="s3cret")
    assert call(app, "/executions", method="POST")[0] == 405
    assert call(app, "/executions")[0] == 401
    assert call(app, "/executions", headers={"HTTP_AUTHORIZATION": "Bearer wrong"})[0] == 401
    assert call(app, "/executions", headers={"HTTP_AUTHORIZATION": "Bearer s3cret"})[0] == 200
    status, headers, _ = call(app, "/executions?token=s3cret&status=failed")
    assert status == 302 and headers["Location"] == "/executions?status=failed"
    assert "HttpOnly" in headers["Set-Cookie"]
    assert call(app, "/executions", headers={"HTTP_COOKIE": "st2bridge_web=s3cret"})[0] == 200
    assert call(app, "/v1/health")[0] == 200


def test_engine_down_falls_back_to_recorded_tasks(store):
    class Down(FakeEngine):
        def list_executions(self, **filters):
            raise errors.EngineUnavailable("engine down")

    store.update_execution(
        "ok1", {"tasks": [{"name": "start", "state": "SUCCESS"}]}, if_active=False
    )
    status, _, body = call(make_app(store, Down()), "/executions/ok1")
    assert status == 200 and "Engine not reachable" in body and "start" in body


def test_web_token_required_off_loopback(tmp_path):
    conf = tmp_path / "b.conf"
    conf.write_text("[web]\nhost = 0.0.0.0\n")
    with pytest.raises(errors.ConfigError, match="token"):
        config.load(["--config-file", str(conf)], config_files=[])
    conf.write_text("[web]\nhost = 0.0.0.0\ntoken = t\n")
    assert config.load(["--config-file", str(conf)], config_files=[]).web.token == "t"
    conf.write_text("[web]\nhost = 0.0.0.0\nport = 0\n")
    config.load(["--config-file", str(conf)], config_files=[])


def test_the_graph_is_the_definition_the_execution_started_with(store):
    """The engine's definition was edited since: the page still draws the old one."""
    from st2bridge.web import data

    old = (
        "version: '2.0'\nmain:\n  tasks:\n    first: {action: std.noop, on-success: [second]}\n"
        "    second: {action: std.noop}\n"
    )
    store.put_definition({"id": "d1", "kind": "workflows", "text": old, "workflows": ["main"]})
    store.create_execution(
        new_execution_record(
            id="old1",
            workflow_name="main",
            engine_execution_id="e-old",
            status="succeeded",
            created_at=time.time(),
            definition_id="d1",
            output={"ex": {"notify": [{"headers": {"X-St2bridge-Secret": "abcdefgh"}}]}},
        )
    )
    engine = FakeEngine()  # its current definition has other tasks
    detail = data.Detail(store, engine, "old1")
    assert sorted(detail.tree()["graph"].nodes) == ["first", "second"]
    assert engine.gets == []  # not asked: the stored definition has it
    assert "abcdefgh" not in repr(detail.record["output"])  # an older record, masked on show
    # Records from before definitions were kept: the engine's current definition.
    assert "start" in data.Detail(store, engine, "ok1").tree()["graph"].nodes
