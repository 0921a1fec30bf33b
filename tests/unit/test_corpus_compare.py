"""The corpus compares the bridge's run of a case with a direct run on the
engine: what names an execution is replaced before comparing, what the
workflow did is not, and `compare:` loosens only the part it names."""

import pytest

from tests.support.corpus import load_cases
from tests.support.corpus_compare import Outcome, differences, normalize, task_list

BRIDGE_ID = "0b7e1d3c-2f41-4e55-9d1a-aa0c5b1f2e3d"
ENGINE_ID = "7c9f2a10-5b3e-4d21-8e6f-1234567890ab"


def test_ids_times_namespaces_and_the_bridges_keys_become_placeholders():
    bridge = {
        "execution": {
            "id": ENGINE_ID,
            "created_at": "2026-11-26 17:15:09",
            "params": {
                "env": {"st2bridge_execution_id": BRIDGE_ID},
                "namespace": "corpus_abc123_4",
                "notify": [{"headers": {"X-St2bridge-Secret": "s3cr3t"}}],
            },
        },
        "__execution": {"id": ENGINE_ID},
        "text": "task %s of corpus_abc123_4 failed at 2026-11-26T17:15:09.123" % ENGINE_ID,
        "echo": "X-St2bridge-Secret: 'abc'",
        "context": "{'__env': {'st2bridge_execution_id': '%s', 'a': 1}}" % BRIDGE_ID,
    }
    direct = {
        "execution": {
            "id": "11111111-2222-3333-4444-555555555555",
            "created_at": "2026-11-26 17:15:12",
            "params": {"namespace": "direct_abc123_4"},
        },
        "__execution": {"id": "other"},
        "text": "task 11111111-2222-3333-4444-555555555555 of direct_abc123_4 failed at "
        "2026-11-26T17:15:10.5",
        "echo": "X-St2bridge-Secret: 'xyz'",
        "context": "{'__env': {'a': 1}}",
    }
    direct_id = "11111111-2222-3333-4444-555555555555"
    assert normalize(bridge, {ENGINE_ID}) == normalize(direct, {direct_id})
    assert normalize(bridge, {ENGINE_ID})["text"] == "task <id> of <namespace> failed at <time>"


def test_a_uuid_that_is_not_the_runs_own_is_compared():
    # a workflow's uuid(): different in every run, so the case must say so in `compare:`
    assert normalize({"result": ENGINE_ID}, {BRIDGE_ID}) == {"result": ENGINE_ID}
    # but an action execution the engine names in an error text is the run's own
    error = "The action raised an exception [action=Fail action, action_ex_id=%s, msg='x']"
    assert normalize(error % ENGINE_ID) == normalize(error % BRIDGE_ID)
    action = "[action=<mistral.actions.std_actions.SleepAction object at %s>"
    assert normalize(action % "0x7f5b7c1ade10") == normalize(action % "0x7f0b81821b10")


def test_what_the_workflow_computed_is_kept():
    assert normalize({"env": {"region": "eu", "st2bridge_execution_id": BRIDGE_ID}}) == {
        "env": {"region": "eu"}
    }
    assert normalize({"result": [1, "two", None]}) == {"result": [1, "two", None]}
    assert normalize({"x": 1}) != normalize({"x": 2})


def test_tasks_are_listed_by_their_path_of_workflow_names():
    executions = [
        {"id": "root", "workflow_name": "wb.main", "task_execution_id": None},
        {"id": "sub", "workflow_name": "wb.child", "task_execution_id": "t1"},
    ]
    tasks = [
        {"id": "t1", "name": "call", "state": "SUCCESS", "workflow_execution_id": "root"},
        {"id": "t2", "name": "echo", "state": "ERROR", "workflow_execution_id": "sub"},
        {"id": "t3", "name": "echo", "state": "ERROR", "workflow_execution_id": "sub"},
    ]
    assert task_list(executions, tasks) == [
        ("wb.main", "call", "SUCCESS"),
        ("wb.main / wb.child", "echo", "ERROR"),
        ("wb.main / wb.child", "echo", "ERROR"),
    ]


def outcome(state="SUCCESS", output=None, tasks=(("wf", "t1", "SUCCESS"),)):
    return Outcome(state, output or {"x": 1}, sorted(tasks))


def test_a_difference_in_state_output_or_tasks_is_reported():
    assert differences(outcome(), outcome(), {}) == []
    assert "direct run ended ERROR" in differences(outcome(), outcome("ERROR"), {})[0]
    assert "output differs" in differences(outcome(), outcome(output={"x": 2}), {})[0]
    one_more = outcome(tasks=[("wf", "t1", "SUCCESS"), ("wf", "t1", "SUCCESS")])
    assert "tasks differ" in differences(outcome(), one_more, {})[0]


def test_compare_loosens_only_the_part_it_names():
    loose_output = {"output": "random"}
    assert differences(outcome(), outcome(output={"x": 2}), loose_output) == []
    assert differences(outcome(), outcome(output={"y": 1}), loose_output) != []
    other_state = outcome(tasks=[("wf", "t1", "ERROR"), ("wf", "t1", "ERROR")])
    assert differences(outcome(), other_state, {"tasks": "race"}) == []
    assert differences(outcome(), other_state, {"output": "random"}) != []


def test_the_manifest_names_only_known_parts_each_with_a_reason(tmp_path):
    (tmp_path / "manifest.yaml").write_text(
        "cases:\n- {name: a, file: f, workflow: w, expect: SUCCESS, compare: {timing: x}}\n"
    )
    with pytest.raises(ValueError, match="compare"):
        load_cases(tmp_path)
    assert all(isinstance(c.compare, dict) for c in load_cases())
