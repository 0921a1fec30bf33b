"""st2bridge-api's endpoints, in-process against the engine simulator: each
answer is checked against the OpenAPI document (tests/support/api_app.py)."""

import threading
import time

import pytest
from openapi_spec_validator import validate

from st2bridge import status as st
from st2bridge.api.openapi import document
from tests.support import engine_sim
from tests.support.api_app import WF, ApiHarness


@pytest.fixture(scope="module")
def sim():
    handle = engine_sim.start_in_thread(duration=600)
    yield handle
    handle.stop()


@pytest.fixture
def api(tmp_path, sim):
    harness = ApiHarness(tmp_path, sim)
    yield harness
    harness.close()


def start(api, name="wf", key="rw", headers=None, **body):
    body.setdefault("definition", WF.format(name=name))
    body.setdefault("input", {"x": 1})
    return api.call("POST", "/v1/executions", body, headers=headers, key=key)


def test_the_openapi_document_is_valid_and_served(api):
    validate(document())
    answer = api.call("GET", "/v1/openapi.json")
    assert answer.status == 200 and answer.body["openapi"].startswith("3.1")


def test_health_needs_no_key_and_reports_the_store(api):
    assert api.call("GET", "/v1/health", key=None).body == {
        "status": "ok",
        "store": "up",
        "version": document()["info"]["version"],
    }
    api.store.close()
    down = api.call("GET", "/v1/health", key=None)
    assert down.status == 503 and down.body["store"] == "down"


# -- authentication ---------------------------------------------------------------


def test_every_other_request_needs_a_valid_key(api):
    for key in (None, "st2b_nope", "x" * 300):
        answer = api.call("GET", "/v1/executions", key=key)
        assert answer.status == 401, key
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "\n" not in answer.body["error"]
    bearer = api.call(
        "GET", "/v1/executions", key=None, headers={"Authorization": "Bearer " + api.key}
    )
    assert bearer.status == 200


def test_a_read_only_key_reads_and_cannot_write(api):
    assert api.call("GET", "/v1/executions", key="ro").status == 200
    answer = start(api, key="ro")
    assert answer.status == 403 and "read-only" in answer.body["error"]
    assert api.store.count_executions() == 0


def test_a_revoked_key_stops_at_once(api):
    api.store.revoke_api_key("rw", time.time())
    assert api.call("GET", "/v1/executions").status == 401


# -- start ----------------------------------------------------------------------------


def test_start_with_a_definition_records_who_labels_and_env(api, sim):
    answer = start(api, "wf_def", labels={"team": "a"}, env={"site": "x"}, timeout=30)
    assert answer.status == 201, answer
    record = answer.body
    assert record["status"] == st.RUNNING and record["workflow_name"] == "wf_def"
    assert record["labels"] == {"team": "a"} and record["started_by"] == "rw"
    assert answer.headers["Location"] == "/v1/executions/" + record["id"]
    timing = dict(
        part.strip().split(";dur=") for part in answer.headers["Server-Timing"].split(",")
    )
    assert 0 < float(timing["engine"]) <= float(timing["total"])
    engine = sim.sim.execs[record["engine_execution_id"]]
    assert engine.params["env"] == {"site": "x", "st2bridge_execution_id": record["id"]}
    stored = api.store.get_execution(record["id"])
    assert stored["started_by"] == "rw" and stored["timeout_at"] is not None


def test_start_by_registered_name(api):
    api.register("wf_named")
    answer = api.call("POST", "/v1/executions", {"workflow": "wf_named", "input": {"x": 2}})
    assert answer.status == 201 and answer.body["input"] == {"x": 2}
    missing = api.call("POST", "/v1/executions", {"workflow": "no_such_wf"})
    assert missing.status == 400 and "no_such_wf" in missing.body["error"]  # as run --name


def test_the_same_idempotency_key_returns_the_same_execution(api, sim):
    first = start(api, "wf_idem", headers={"Idempotency-Key": "abc-1"})
    again = start(api, "wf_idem", headers={"Idempotency-Key": "abc-1"})
    assert first.status == 201 and again.status == 200
    assert again.body["id"] == first.body["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert sum(1 for e in sim.sim.execs.values() if e.wf == "wf_idem") == 1
    other = start(api, "wf_other", headers={"Idempotency-Key": "abc-1"})
    assert other.status == 409 and "abc-1" in other.body["error"]


def test_concurrent_starts_with_one_key_make_one_execution(api, sim):
    answers = []

    def go():
        answers.append(start(api, "wf_race", headers={"Idempotency-Key": "race-1"}))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.status for a in answers} <= {200, 201}
    assert len({a.body["id"] for a in answers}) == 1
    assert sum(1 for e in sim.sim.execs.values() if e.wf == "wf_race") == 1


def test_an_engine_that_does_not_answer_leaves_a_requested_record_202(api, sim):
    start(api, "wf_down")  # registered (and cached): the next start is one submit
    sim.sim.faults["error_rate"] = 1.0
    try:
        nothing = start(api, "wf_never", headers={"Idempotency-Key": "down-0"})
        assert nothing.status == 503  # failed before anything was recorded
        answer = start(api, "wf_down", headers={"Idempotency-Key": "down-1"})
    finally:
        sim.sim.faults.clear()
    assert answer.status == 202 and answer.body["status"] == st.REQUESTED
    assert "tracker submits it" in answer.body["warning"]
    assert (
        start(api, "wf_down", headers={"Idempotency-Key": "down-1"}).body["id"]
        == (answer.body["id"])
    )


def test_a_rejected_input_is_400_and_a_definition_with_several_workflows_needs_a_choice(api):
    bad = start(api, "wf_in", input={"nope": 1})
    assert bad.status == 400 and "unknown input" in bad.body["error"]
    two = "version: '2.0'\na: {tasks: {t: {action: std.noop}}}\nb: {tasks: {t: {action: std.noop}}}"
    several = api.call("POST", "/v1/executions", {"definition": two})
    assert several.status == 400 and "workflow" in several.body["error"]  # the CLI's line
    chosen = api.call("POST", "/v1/executions", {"definition": two, "workflow": "b"})
    assert chosen.status == 201 and chosen.body["workflow_name"] == "b"


# -- read -------------------------------------------------------------------------------


def test_list_filters_and_pages(api):
    ids = [start(api, "wf_list", labels={"n": str(i % 2)}).body["id"] for i in range(5)]
    start(api, "wf_else")
    page = api.call("GET", "/v1/executions?workflow=wf_list&limit=2").body
    seen = [r["id"] for r in page["executions"]]
    while page["next_marker"]:
        page = api.call(
            "GET", "/v1/executions?workflow=wf_list&limit=2&marker=" + page["next_marker"]
        ).body
        seen += [r["id"] for r in page["executions"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    odd = api.call("GET", "/v1/executions?label=n=1").body["executions"]
    assert sorted(r["id"] for r in odd) == sorted(ids[1::2])
    assert api.call("GET", "/v1/executions?status=succeeded").body["executions"] == []
    assert len(api.call("GET", "/v1/executions?since=1h&limit=1000").body["executions"]) == 6


def test_get_by_id_engine_id_and_prefix(api):
    record = start(api, "wf_get").body
    for ref in (record["id"], record["engine_execution_id"], record["id"][:8]):
        answer = api.call("GET", "/v1/executions/" + ref)
        assert answer.status == 200 and answer.body["id"] == record["id"]
        assert answer.body["error_tree"] is None
    assert api.call("GET", "/v1/executions/ffffffff-none").status == 404


def test_tasks_come_from_the_engine(api, sim):
    record = start(api, "wf_tasks").body
    answer = api.call("GET", "/v1/executions/%s/tasks" % record["id"])
    assert answer.status == 200 and answer.body["execution_id"] == record["id"]
    assert [t["name"] for t in answer.body["tasks"]] == ["task1"]


# -- act ---------------------------------------------------------------------------------


def test_pause_resume_cancel(api):
    rid = start(api, "wf_ctl").body["id"]
    paused = api.call("POST", "/v1/executions/%s/pause" % rid)
    assert paused.status == 200 and paused.body["status"] == st.PAUSING
    api.store.update_execution(rid, {"status": st.PAUSED})  # what a tracker would record
    assert api.call("POST", "/v1/executions/%s/resume" % rid).body["status"] == st.RESUMING
    api.store.update_execution(rid, {"status": st.RUNNING})
    same = api.call("POST", "/v1/executions/%s/resume" % rid)
    assert same.status == 200 and same.body["changed"] is False
    assert api.call("POST", "/v1/executions/%s/cancel" % rid).body["status"] == st.CANCELING
    api.store.update_execution(rid, {"status": st.CANCELED})
    conflict = api.call("POST", "/v1/executions/%s/pause" % rid)
    assert conflict.status == 409 and "cannot be paused" in conflict.body["error"]
    assert api.call("GET", "/v1/executions/%s/cancel" % rid, check=False).status == 405


def test_rerun_a_failed_task(api, sim):
    record = start(api, "wf_rerun", input={"x": 1}).body
    engine = sim.sim.execs[record["engine_execution_id"]]
    engine.final, engine.finish = "ERROR", sim.sim.now()  # it fails now
    task = [t for t in sim.sim.tasks(engine, sim.sim.now()) if t["state"] == "ERROR"][0]
    answer = api.call("POST", "/v1/tasks/%s/rerun" % task["id"], {"reset": True})
    assert answer.status == 200, answer
    assert answer.body["execution_id"] == record["id"] and answer.body["task_name"] == task["name"]
    assert api.call("POST", "/v1/tasks/no-such-task/rerun").status == 404


def test_unknown_paths_and_methods(api):
    assert api.call("GET", "/v2/nothing", check=False).status == 404
    answer = api.call("DELETE", "/v1/executions", check=False)
    assert answer.status == 405 and "GET" in answer.headers["Allow"]


def test_secret_input_is_masked_in_answers(api, sim):
    wf = WF.format(name="wf_secret").replace("input: [x]", "input: [password]")
    answer = api.call(
        "POST", "/v1/executions", {"definition": wf, "input": {"password": "hunter2"}}
    )
    assert answer.status == 201 and answer.body["input"] == {"password": "***"}
    assert api.call("GET", "/v1/executions/" + answer.body["id"]).body["input"] == {
        "password": "***"
    }
    engine = sim.sim.execs[answer.body["engine_execution_id"]]
    assert engine.input == {"password": "hunter2"}  # the workflow gets it


def test_recover_refuses_what_is_not_stuck_and_checks_its_body(api, sim):
    rid = start(api, "wf_recover").body["id"]
    calm = api.call("POST", "/v1/executions/%s/recover" % rid, {"dry_run": True})
    assert calm.status == 409 and "not stuck" in calm.body["error"], calm
    assert "\n" not in calm.body["error"]
    for body in ({"settle": -1}, {"dry_run": "yes"}, {"wait": True}, {"settle": True}):
        bad = api.call("POST", "/v1/executions/%s/recover" % rid, body)
        assert bad.status == 400, body
    assert api.call("POST", "/v1/executions/%s/recover" % rid, key="ro").status == 403
    assert api.call("POST", "/v1/executions/nope-nope/recover").status == 404
    api.store.update_execution(rid, {"status": st.CANCELED})
    ended = api.call("POST", "/v1/executions/%s/recover" % rid)
    assert ended.status == 409 and "has ended" in ended.body["error"]
    assert api.store.get_execution(rid)["status"] == st.CANCELED
