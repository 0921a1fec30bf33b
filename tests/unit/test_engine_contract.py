"""The engine contract (st2bridge/engine/base.py), run against every implementation.

Implementations: StubEngine (in memory), and MistralClient talking to the engine
simulator (tests/support/engine_sim.py, on a thread). The same suite runs against
MistralClient and a real Mistral 23 in tests/integration/test_engine_contract_mistral.py.

The engine interface cannot make an execution run or fail: a harness per
implementation does that (the stub's controls, the simulator's `sim_*` input, real
workflows on Mistral). Names are unique per test, so one engine serves a session.
"""

import calendar
import json
import re
import time
import uuid

import pytest
import requests
import yaml

from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.engine.stub import StubEngine
from st2bridge.errors import (
    EngineBadRequest,
    EngineConflict,
    EngineNotFound,
    EngineServerError,
)
from st2bridge.results import LIGHT_FIELDS, TASK_FIELDS
from tests.support import engine_sim

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
NOOP = "    t1:\n      action: std.noop\n"
WAITS = "    t1:\n      action: std.async_noop\n"
FAILS = (
    "    ok:\n      action: std.noop\n      on-success: [boom]\n    boom:\n      action: std.fail\n"
)


def unique(prefix="wf"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:10])


def definition(name, tasks=NOOP, input_decl=None):
    head = "  input: %s\n" % input_decl if input_decl else ""
    return "version: '2.0'\n%s:\n%s  tasks:\n%s" % (name, head, tasks)


def epoch(stamp):
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))


def wait_for(engine, execution_id, states, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        ex = engine.get_execution(execution_id)
        if ex["state"] in states:
            return ex
        assert time.monotonic() < deadline, "execution %s still %s" % (execution_id, ex["state"])
        time.sleep(0.1)


class Harness:
    """What a test needs beyond the interface, for an engine that runs workflows
    (the simulator, Mistral): `engine`, and executions in a known state."""

    action_executions = True

    def __init__(self, engine, api_url=None):
        self.engine, self.api_url = engine, api_url

    def start(self, name, input=None, **kwargs):
        return self.engine.start_execution(
            name, input or {}, execution_id=str(uuid.uuid4()), **kwargs
        )

    def running(self):
        """An execution that stays RUNNING until told otherwise."""
        name = unique()
        self.engine.create_workflows(definition(name, WAITS))
        return self.start(name, self.input_for("waits"))

    def succeeded(self):
        name = unique()
        self.engine.create_workflows(definition(name, NOOP))
        return wait_for(self.engine, self.start(name, self.input_for("ends"))["id"], ["SUCCESS"])

    def failed(self):
        """(execution in ERROR, a task of it in SUCCESS, its task in ERROR)."""
        name = unique()
        self.engine.create_workflows(definition(name, FAILS))
        ex = wait_for(self.engine, self.start(name, self.input_for("fails"))["id"], ["ERROR"])
        tasks = self.engine.list_tasks(ex["id"])
        ok = next(t for t in tasks if t["state"] == "SUCCESS")
        return ex, ok, next(t for t in tasks if t["state"] == "ERROR")

    def input_for(self, kind):
        return {}

    def running_action(self):
        """(execution, id of its task, its action execution, RUNNING)."""
        ex = self.running()
        deadline = time.monotonic() + 30
        while True:
            tree = self.engine.execution_tree(ex["id"])
            tasks = tree["root_workflow_execution"]["task_executions"]
            running = [
                (t, a) for t in tasks for a in t["action_executions"] if a["state"] == "RUNNING"
            ]
            if running:
                return ex, running[0][0]["id"], running[0][1]
            assert time.monotonic() < deadline, "no running action in %s" % ex["id"]
            time.sleep(0.1)

    def with_sub_workflow(self):
        """(root execution id, id of the sub-workflow execution one of its tasks runs)."""
        child, parent = unique("child"), unique("parent")
        self.engine.create_workflows(definition(child, WAITS))
        self.engine.create_workflows(definition(parent, "    call:\n      workflow: %s\n" % child))
        root = self.start(parent)["id"]
        deadline = time.monotonic() + 30
        while not (subs := list(self.engine.list_executions(root_execution_id=root))):
            assert time.monotonic() < deadline, "no sub-workflow execution under %s" % root
            time.sleep(0.1)
        return root, subs[0]["id"]

    def add_environment(self, name, variables):
        answer = requests.post(
            self.api_url + "/environments", json={"name": name, "variables": variables}, timeout=10
        )
        answer.raise_for_status()

    def after(self, stamp):
        """Wait until the engine's clock is past the second of `stamp`."""
        time.sleep(max(0.0, epoch(stamp) + 1.05 - time.time()))


class StubHarness(Harness):
    """The stub runs nothing: its controls put executions where a test needs them.
    Its clock is the harness's, so waiting for a second costs nothing."""

    def __init__(self):
        self.now = float(int(time.time()))
        super().__init__(StubEngine(clock=lambda: self.now))

    def succeeded(self):
        ex = self.running()
        self.engine.add_task(ex["id"], "t1", "SUCCESS")
        self.engine.set_state(ex["id"], "SUCCESS", output={})
        return self.engine.get_execution(ex["id"])

    def failed(self):
        ex = self.running()
        ok = self.engine.add_task(ex["id"], "ok", "SUCCESS")
        boom = self.engine.add_task(ex["id"], "boom", "ERROR", state_info="Fail action expected")
        self.engine.add_action(ok["id"], "std.noop")
        self.engine.add_action(boom["id"], "std.fail")
        self.engine.set_state(ex["id"], "ERROR", state_info="Failure caused by error in tasks")
        return self.engine.get_execution(ex["id"]), dict(ok), dict(boom)

    def running_action(self):
        ex = self.running()
        task = self.engine.add_task(ex["id"], "t1", "RUNNING")
        return ex, task["id"], dict(self.engine.add_action(task["id"], "std.async_noop"))

    def with_sub_workflow(self):
        root = self.running()
        call = self.engine.add_task(root["id"], "call", "RUNNING")
        return root["id"], self.engine.add_sub_execution(call["id"], unique("child"))["id"]

    def add_environment(self, name, variables):
        self.engine.environments[name] = variables

    def after(self, stamp):
        self.now = max(self.now, epoch(stamp) + 1)


class SimHarness(Harness):
    """The simulator runs an execution for its `sim_duration` and fails it on
    `sim_fail` (its last task fails). It has no sub-workflows and no action
    executions."""

    action_executions = False

    def input_for(self, kind):
        return {
            "waits": {"sim_duration": 3600},
            "ends": {"sim_duration": 0},
            "fails": {"sim_duration": 0, "sim_fail": True},
        }[kind]

    def with_sub_workflow(self):
        pytest.skip("the engine simulator has no sub-workflows")

    def running_action(self):
        pytest.skip("the engine simulator has no action executions")


class EngineContract:
    """Subclasses give an `h` fixture (a Harness)."""

    # -- errors -------------------------------------------------------------------

    def test_unknown_names_and_ids_are_not_found(self, h):
        e, missing = h.engine, str(uuid.uuid4())
        for call in (
            lambda: e.get_execution(missing),
            lambda: e.get_execution(missing, fields=LIGHT_FIELDS),
            lambda: e.update_execution_state(missing, "CANCELLED"),
            lambda: e.execution_report(missing),
            lambda: e.list_tasks(missing),
            lambda: e.get_task(missing),
            lambda: e.rerun_task(missing),
            lambda: e.get_workflow(unique()),
            lambda: e.get_workbook(unique()),
            lambda: e.get_environment(unique()),
            lambda: e.execution_tree(missing),
        ):
            with pytest.raises(EngineNotFound, match=r"\(HTTP 404\)$"):
                call()

    def test_an_unknown_listing_filter_is_a_bad_request(self, h):
        with pytest.raises(EngineBadRequest, match="bogus"):
            list(h.engine.list_executions(bogus="x"))

    # -- definitions --------------------------------------------------------------

    def test_a_workflow_is_created_once_read_back_and_updated(self, h):
        name = unique()
        text = definition(name, NOOP, "[a, {b: 1}]")
        assert [w["name"] for w in h.engine.create_workflows(text)] == [name]
        got = h.engine.get_workflow(name)
        assert (got["name"], got["namespace"], got["input"]) == (name, "", 'a, b="1"')
        assert yaml.safe_load(got["definition"])[name]["input"] == ["a", {"b": 1}]
        with pytest.raises(EngineConflict):
            h.engine.create_workflows(text)
        changed = definition(name, "    t2:\n      action: std.noop\n")
        assert [w["name"] for w in h.engine.update_workflows(changed)] == [name]
        assert "t2" in yaml.safe_load(h.engine.get_workflow(name)["definition"])[name]["tasks"]
        with pytest.raises(EngineNotFound):
            h.engine.update_workflows(definition(unique()))
        assert name in [w["name"] for w in h.engine.list_workflows(fields=["name"])]

    def test_several_workflows_in_one_file_are_stored_each_on_its_own(self, h):
        a, b = unique("a"), unique("b")
        text = definition(a) + "%s:\n  tasks:\n%s" % (b, NOOP)
        assert sorted(w["name"] for w in h.engine.create_workflows(text)) == sorted([a, b])
        doc = yaml.safe_load(h.engine.get_workflow(b)["definition"])
        assert b in doc and a not in doc

    def test_an_invalid_definition_is_a_bad_request(self, h):
        for text in (
            "version: '2.0'\n%s: 42\n" % unique(),
            "%s:\n  tasks:\n%s" % (unique(), NOOP),  # no version
        ):
            with pytest.raises(EngineBadRequest, match="Invalid DSL"):
                h.engine.create_workflows(text)

    def test_namespaces_are_matched_exactly(self, h):
        name = unique()
        h.engine.create_workflows(definition(name), namespace="team")
        with pytest.raises(EngineNotFound):
            h.engine.get_workflow(name)
        with pytest.raises(EngineNotFound):
            h.engine.get_workflow(name, namespace="other")
        assert h.engine.get_workflow(name, namespace="team")["namespace"] == "team"
        h.engine.create_workflows(definition(name, "    t2:\n      action: std.noop\n"))
        team = h.engine.get_workflow(name, namespace="team")
        assert "t1" in yaml.safe_load(team["definition"])[name]["tasks"]  # not overwritten
        ex = h.start(name, h.input_for("waits"), namespace="team")
        assert ex["workflow_namespace"] == "team" and ex["params"]["namespace"] == "team"
        with pytest.raises(EngineNotFound):
            h.start(name, h.input_for("waits"), namespace="other")
        listed = h.engine.list_workflows(namespace="team", fields=["name", "namespace"])
        assert {w["namespace"] for w in listed} == {"team"}

    def test_a_workbook_is_created_once_and_names_its_workflows(self, h):
        book = unique("wb")
        text = "version: '2.0'\nname: %s\nworkflows:\n  main:\n    tasks:\n%s" % (
            book,
            "  " + NOOP.replace("\n    ", "\n      "),
        )
        assert h.engine.create_workbook(text)["name"] == book
        assert h.engine.get_workbook(book)["definition"] == text
        main = h.engine.get_workflow(book + ".main")
        assert "tasks" in yaml.safe_load(main["definition"])["main"]
        with pytest.raises(EngineConflict):
            h.engine.create_workbook(text)
        assert h.engine.update_workbook(text)["name"] == book
        with pytest.raises(EngineNotFound):
            h.engine.update_workbook(text.replace(book, unique("wb")))
        with pytest.raises(EngineNotFound):
            h.engine.get_workbook(book, namespace="other")

    def test_a_stored_environment_is_read_and_resolved_by_name(self, h):
        env = unique("env")
        h.add_environment(env, {"region": "eu", "n": 1})
        assert h.engine.get_environment(env)["variables"] == {"region": "eu", "n": 1}
        name = unique()
        h.engine.create_workflows(definition(name, WAITS))
        ex = h.start(name, h.input_for("waits"), params={"env": env})
        assert ex["params"]["env"] == {"region": "eu", "n": 1}
        with pytest.raises(EngineBadRequest, match="Environment is not found"):
            h.start(name, h.input_for("waits"), params={"env": unique("env")})

    # -- starting -----------------------------------------------------------------

    def test_a_start_is_idempotent_with_the_callers_id(self, h):
        name, ex_id = unique(), str(uuid.uuid4())
        h.engine.create_workflows(definition(name, WAITS))
        start = lambda: h.engine.start_execution(  # noqa: E731
            name, h.input_for("waits"), execution_id=ex_id, params={"notify": []}
        )
        first, again = start(), start()
        assert first["id"] == again["id"] == ex_id
        assert (first["workflow_name"], first["state"]) == (name, "RUNNING")
        listed = h.engine.list_executions(workflow_name=name, fields=["state"])
        assert [row["id"] for row in listed] == [ex_id]
        other = unique()
        h.engine.create_workflows(definition(other, WAITS))
        with pytest.raises(EngineConflict, match="belongs to an execution of workflow"):
            h.engine.start_execution(other, {}, execution_id=ex_id)

    def test_starting_a_workflow_the_engine_does_not_have_is_not_found(self, h):
        with pytest.raises(EngineNotFound, match="Workflow not found"):
            h.start(unique())

    def test_input_is_checked_against_the_declaration(self, h):
        name = unique()
        h.engine.create_workflows(definition(name, WAITS, "[a, {b: 1}]"))
        extra = h.input_for("waits")
        for given, problem in (({}, "missing"), ({"a": 1, "zz": 2}, "unexpected")):
            with pytest.raises(EngineBadRequest, match="Invalid input.*%s" % problem):
                h.start(name, dict(extra, **given))
        ex = h.start(name, dict(extra, a="x"))
        assert {k: ex["input"][k] for k in ("a", "b")} == {"a": "x", "b": 1}

    # -- reading executions -------------------------------------------------------

    def test_an_execution_reads_back_whole_or_in_the_fields_asked_for(self, h):
        name = unique()
        h.engine.create_workflows(definition(name, WAITS, "[{x: 0}]"))
        notify = [{"type": "webhook", "url": "http://127.0.0.1:9/cb", "events": []}]
        started = h.start(
            name, dict(h.input_for("waits"), x={"deep": [1]}), params={"notify": notify}
        )
        full = h.engine.get_execution(started["id"])
        assert full["input"]["x"] == {"deep": [1]}  # JSON text decoded to objects
        assert full["params"]["notify"] == notify and isinstance(full["output"], dict)
        assert full["task_execution_id"] is None and full["root_execution_id"] is None
        light = h.engine.get_execution(started["id"], fields=LIGHT_FIELDS)
        assert set(light) == set(LIGHT_FIELDS) and light["state"] == "RUNNING"
        for stamp in (full["created_at"], full["updated_at"]):
            assert STAMP.match(stamp) and abs(epoch(stamp) - time.time()) < 60

    def test_a_listing_returns_every_match_whatever_the_page_size(self, h):
        name = unique()
        h.engine.create_workflows(definition(name, WAITS))
        ids = {h.start(name, h.input_for("waits"))["id"] for _ in range(5)}
        rows = list(h.engine.list_executions(workflow_name=name, fields=LIGHT_FIELDS, limit=2))
        assert sorted(r["id"] for r in rows) == sorted(ids)
        assert all(set(r) == set(LIGHT_FIELDS) and r["state"] == "RUNNING" for r in rows)

    def test_a_change_listing_holds_what_changed_at_or_after_a_second(self, h):
        done = h.succeeded()
        since = "gte:" + done["updated_at"]
        seen = lambda since: [  # noqa: E731
            r["id"]
            for r in h.engine.list_executions(
                fields=LIGHT_FIELDS, updated_at=since, nulls="task_execution_id"
            )
        ]
        assert done["id"] in seen(since)
        h.after(done["updated_at"])
        later = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch(done["updated_at"]) + 1))
        assert done["id"] not in seen("gte:" + later)
        running = h.running()
        h.after(running["updated_at"])
        cancelled = h.engine.update_execution_state(running["id"], "CANCELLED")
        assert cancelled["updated_at"] > running["updated_at"]
        assert running["id"] in seen("gte:" + cancelled["updated_at"])

    def test_sub_workflows_are_listed_under_their_root_not_as_roots(self, h):
        root, sub = h.with_sub_workflow()
        roots = [r["id"] for r in h.engine.list_executions(nulls="task_execution_id")]
        assert root in roots and sub not in roots
        under = h.engine.list_executions(
            root_execution_id=root, fields=["id", "workflow_name", "task_execution_id"]
        )
        (row,) = under
        assert row["id"] == sub and row["task_execution_id"]
        parent_task = h.engine.get_task(row["task_execution_id"])
        assert parent_task["workflow_execution_id"] == root

    # -- state changes ------------------------------------------------------------

    def test_pause_resume_cancel_and_their_repeats(self, h):
        ex_id = h.running()["id"]
        put = lambda state: h.engine.update_execution_state(ex_id, state)["state"]  # noqa: E731
        assert [put("PAUSED"), put("PAUSED")] == ["PAUSED", "PAUSED"]
        assert [put("RUNNING"), put("RUNNING")] == ["RUNNING", "RUNNING"]
        assert [put("CANCELLED"), put("CANCELLED")] == ["CANCELLED", "CANCELLED"]
        assert h.engine.get_execution(ex_id, fields=["state"])["state"] == "CANCELLED"

    def test_a_finished_execution_keeps_its_state(self, h):
        ex_id = h.succeeded()["id"]
        for state in ("CANCELLED", "RUNNING"):
            assert h.engine.update_execution_state(ex_id, state)["state"] == "SUCCESS"
        with pytest.raises(EngineBadRequest, match="from SUCCESS to PAUSED"):
            h.engine.update_execution_state(ex_id, "PAUSED")
        with pytest.raises(EngineBadRequest):
            h.engine.update_execution_state(ex_id, "BOGUS")
        assert h.engine.get_execution(ex_id, fields=["state"])["state"] == "SUCCESS"

    def test_failing_an_execution_and_sending_a_result_again(self, h):
        ex_id = h.running()["id"]
        failed = h.engine.update_execution_state(ex_id, "ERROR", "given up by the bridge")
        assert failed["state"] == "ERROR" and "given up by the bridge" in failed["state_info"]
        assert h.engine.update_execution_state(ex_id, "ERROR", "again")["state"] == "ERROR"
        with pytest.raises(EngineBadRequest, match="from ERROR to SUCCESS"):
            h.engine.update_execution_state(ex_id, "SUCCESS")
        done = h.succeeded()["id"]
        assert h.engine.update_execution_state(done, "SUCCESS")["state"] == "SUCCESS"

    # -- tasks ----------------------------------------------------------------------

    def test_tasks_are_listed_and_read_one_by_one(self, h):
        ex, ok, boom = h.failed()
        tasks = h.engine.list_tasks(ex["id"])
        assert {t["id"] for t in tasks} >= {ok["id"], boom["id"]}
        assert all(t["workflow_execution_id"] == ex["id"] for t in tasks)
        for t in tasks:
            assert STAMP.match(t["created_at"]) and STAMP.match(t["updated_at"])
        light = h.engine.list_tasks(ex["id"], fields=TASK_FIELDS)
        assert all(set(t) <= set(TASK_FIELDS) | {"id"} and t["name"] for t in light)
        got = h.engine.get_task(boom["id"])
        assert (got["name"], got["state"]) == (boom["name"], "ERROR") and got["state_info"]

    def test_only_a_failed_task_is_rerun_and_its_execution_runs_again(self, h):
        ex, ok, boom = h.failed()
        with pytest.raises(EngineBadRequest, match="must be in ERROR"):
            h.engine.rerun_task(ok["id"])
        with pytest.raises(EngineBadRequest, match="with-items"):
            h.engine.rerun_task(boom["id"], reset=False)
        h.after(ex["updated_at"])
        assert h.engine.rerun_task(boom["id"])["id"] == boom["id"]
        again = h.engine.get_execution(ex["id"], fields=LIGHT_FIELDS)
        # Running again (Mistral may have failed it again already, later).
        assert again["state"] == "RUNNING" or again["updated_at"] > ex["updated_at"]
        assert again["updated_at"] > ex["updated_at"]

    def test_the_error_report_holds_the_failed_tasks(self, h):
        ex, ok, boom = h.failed()
        report = h.engine.execution_report(ex["id"])
        root = report["root_workflow_execution"]
        assert (root["id"], root["state"]) == (ex["id"], "ERROR")
        failed = root["task_executions"]
        assert [t["id"] for t in failed] == [boom["id"]] and failed[0]["state_info"]
        assert report["statistics"]["error_tasks_count"] == 1
        everything = h.engine.execution_report(ex["id"], errors_only=False)
        listed = {t["id"] for t in everything["root_workflow_execution"]["task_executions"]}
        assert {ok["id"], boom["id"]} <= listed

    def test_the_task_tree_holds_every_task_and_its_action_executions(self, h):
        ex, ok, boom = h.failed()
        tree = h.engine.execution_tree(ex["id"])["root_workflow_execution"]
        assert (tree["id"], tree["state"]) == (ex["id"], "ERROR")
        tasks = {t["id"]: t for t in tree["task_executions"]}
        assert {ok["id"], boom["id"]} <= set(tasks)
        for task in tasks.values():
            assert isinstance(task["workflow_executions"], list)
            if h.action_executions:
                (action,) = task["action_executions"]
                assert action["state"] == task["state"] and STAMP.match(action["updated_at"])

    def test_an_action_execution_is_completed_once(self, h):
        ex, task_id, action = h.running_action()
        assert h.engine.get_action_execution(action["id"])["state"] == "RUNNING"
        done = h.engine.complete_action_execution(action["id"], "SUCCESS", {"answer": 42})
        assert done["state"] == "SUCCESS"
        got = h.engine.get_action_execution(action["id"])
        assert got["state"] == "SUCCESS" and "42" in json.dumps(got["output"])
        with pytest.raises(EngineServerError, match="already completed"):
            h.engine.complete_action_execution(action["id"], "ERROR", {})
        deadline = time.monotonic() + 30
        while h.engine.get_task(task_id)["state"] != "SUCCESS":  # its task goes on
            assert time.monotonic() < deadline, "task %s never ended" % task_id
            time.sleep(0.1)
        for call in (
            lambda: h.engine.get_action_execution(str(uuid.uuid4())),
            lambda: h.engine.complete_action_execution(str(uuid.uuid4()), "SUCCESS", {}),
        ):
            with pytest.raises(EngineNotFound):
                call()

    # -- the connection -------------------------------------------------------------

    def test_ping_and_request_count(self, h):
        before = h.engine.request_count
        assert h.engine.ping() is True
        assert h.engine.request_count == before + 1
        offset = h.engine.clock_offset()  # the engine's clock, from its answer
        assert isinstance(offset, float) and abs(offset) < 5
        assert isinstance(h.engine.display_url, str) and isinstance(h.engine.error_counts, dict)
        with h.engine as same:
            assert same is h.engine


class TestStubEngine(EngineContract):
    @pytest.fixture
    def h(self):
        return StubHarness()


@pytest.fixture(scope="module")
def sim():
    handle = engine_sim.start_in_thread(duration=0.2)
    yield handle
    handle.stop()


@pytest.mark.process
class TestMistralClientOnTheSimulator(EngineContract):
    @pytest.fixture
    def h(self, sim):
        # No retries: an error must surface as the one the bridge would see.
        with MistralClient(sim.url, retry=RetryPolicy(stop_max_msec=0), read_timeout=10) as c:
            yield SimHarness(c, sim.url)


def test_the_stub_keeps_callers_from_changing_its_state():
    h = StubHarness()
    ex = h.running()
    ex["params"]["env"]["x"] = 1
    got = h.engine.get_execution(ex["id"])
    got["input"]["y"] = 2
    assert h.engine.get_execution(ex["id"])["params"]["env"] == {}
    assert json.dumps(h.engine.get_execution(ex["id"])["input"]) == "{}"
