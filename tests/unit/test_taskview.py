"""The task view (st2bridge.taskview), the engine answer checks, the due-next
schedule and the two clocks: the rules each part of the bridge relies on."""

import pytest

from st2bridge import errors, errortree, results, taskview
from st2bridge.cli import output
from st2bridge.engine import answers
from st2bridge.schedule import Schedule
from tests.support.fake_engine import FakeEngine


def row(state, updated_at="2026-11-21 12:00:01", **extra):
    return dict({"id": "t", "name": "t", "state": state, "updated_at": updated_at}, **extra)


# -- which of two views of a task is later -------------------------------------------


@pytest.mark.parametrize(
    "known, new, expected",
    [
        (row("RUNNING", "2026-11-21 12:00:01"), row("SUCCESS", "2026-11-21 12:00:02"), "new"),
        (row("SUCCESS", "2026-11-21 12:00:02"), row("RUNNING", "2026-11-21 12:00:01"), "known"),
        # A re-run: running again, a second later.
        (row("ERROR", "2026-11-21 12:00:01"), row("RUNNING", "2026-11-21 12:00:02"), "new"),
        # Same second: final beats non-final, whichever arrives first.
        (row("SUCCESS"), row("RUNNING"), "known"),
        (row("RUNNING"), row("SUCCESS"), "new"),
        # Same second: a task that succeeded fails when its publish fails.
        (row("SUCCESS"), row("ERROR"), "new"),
        (row("ERROR"), row("SUCCESS"), "known"),
        # Same second and nothing tells: pause-before sets RUNNING -> IDLE.
        (row("IDLE"), row("RUNNING"), None),
        (row("RUNNING"), row("IDLE"), None),
        (row("SUCCESS"), row("CANCELLED"), None),
        (row("SUCCESS"), row("SUCCESS"), "same"),
    ],
)
def test_later_orders_views_of_one_task(known, new, expected):
    assert taskview.later(known, new) == expected


def test_merge_keeps_later_recorded_states_and_rows_the_read_did_not_see():
    fresh = [
        dict(row("RUNNING", "2026-11-21 12:00:01"), id="a", label="a"),
        dict(row("RUNNING", "2026-11-21 12:00:01"), id="b", label="b"),
        dict(row("RUNNING", "2026-11-21 12:00:01"), id="c", label="c"),
    ]
    recorded = [
        dict(row("SUCCESS", "2026-11-21 12:00:02"), id="a"),  # a callback after the read
        dict(row("IDLE", "2026-11-21 12:00:01"), id="b"),  # undecided: re-read
        dict(row("RUNNING", "2026-11-21 12:00:03"), id="d"),  # created after the read
    ]
    reread = {"b": dict(row("IDLE", "2026-11-21 12:00:01"), id="b", status="running")}
    merged = taskview.merge(recorded, fresh, reread.get)
    assert [(r["id"], r["state"], r.get("label")) for r in merged] == [
        ("a", "SUCCESS", "a"),
        ("b", "IDLE", "b"),
        ("c", "RUNNING", "c"),
        ("d", "RUNNING", None),
    ]


# -- reading the engine's tree --------------------------------------------------------


def with_items_tree(engine, hosts=("web1", "web2", "web3"), sub_state="ERROR"):
    """A root with a with-items task running a sub-workflow per host, each with a
    failing `migrate`, and a plain task; returns the root id."""
    engine.create_workflows("version: '2.0'\nmain:\n  tasks:\n    t:\n      action: std.noop\n")
    root = engine.start_execution("main", execution_id="root")["id"]
    deploy = engine.add_task(root, "deploy", "ERROR", type="WORKFLOW", with_items=len(hosts))
    engine.add_task(root, "other", "SUCCESS")
    for index, host in enumerate(hosts):
        sub = engine.add_sub(deploy["id"], "per_host", index, {"host": host}, state=sub_state)
        engine.add_task(sub, "prep", "SUCCESS")
        engine.add_task(sub, "migrate", "ERROR")
    return root


def test_read_tree_labels_with_items_instances_and_orders_them():
    engine = FakeEngine()
    root = with_items_tree(engine)
    rows = taskview.read_tree(engine, root)
    assert [r["label"] for r in rows] == [
        "deploy",
        "deploy[0 host=web1] > prep",
        "deploy[0 host=web1] > migrate",
        "deploy[1 host=web2] > prep",
        "deploy[1 host=web2] > migrate",
        "deploy[2 host=web3] > prep",
        "deploy[2 host=web3] > migrate",
        "other",
    ]
    migrate = [r for r in rows if r["name"] == "migrate"]
    assert [(r["index"], r["item"]) for r in migrate] == [
        (0, "host=web1"),
        (1, "host=web2"),
        (2, "host=web3"),
    ]
    assert {r["parent_task_id"] for r in migrate} == {"root-deploy"}
    assert rows[0]["items"] == 3 and rows[0]["parent_task_id"] is None
    # Nothing of the sub-workflows' params (the webhook's secret) is kept.
    assert "secret" not in repr(rows)


def test_read_tree_three_deep_and_plain_sub_workflows():
    engine = FakeEngine()
    engine.create_workflows("version: '2.0'\na:\n  tasks:\n    t:\n      action: std.noop\n")
    root = engine.start_execution("a", execution_id="r")["id"]
    call_b = engine.add_task(root, "call_b", "RUNNING", type="WORKFLOW")
    b = engine.add_sub(call_b["id"], "b")
    call_c = engine.add_task(b, "call_c", "RUNNING", type="WORKFLOW")
    c = engine.add_sub(call_c["id"], "c")
    engine.add_task(c, "leaf", "RUNNING")
    rows = taskview.read_tree(engine, root)
    assert [r["label"] for r in rows] == ["call_b", "call_b > call_c", "call_b > call_c > leaf"]
    assert [r["index"] for r in rows] == [None, None, None]  # not with-items


def test_read_tree_does_not_list_finished_sub_workflows_again():
    engine = FakeEngine()
    root = with_items_tree(engine)
    first = taskview.read_tree(engine, root)
    engine.calls.clear()
    again = taskview.read_tree(engine, root, previous=first)
    assert again == first
    assert [c[1] for c in engine.calls if c[0] == "list_tasks"] == [root]


def test_read_tree_without_sub_workflows_costs_one_request():
    engine = FakeEngine()
    engine.create_workflows("version: '2.0'\nw:\n  tasks:\n    t:\n      action: std.noop\n")
    root = engine.start_execution("w", execution_id="x")["id"]
    engine.add_task(root, "one", "SUCCESS")
    engine.calls.clear()
    assert [r["label"] for r in taskview.read_tree(engine, root)] == ["one"]
    assert [c[0] for c in engine.calls] == ["list_tasks"]


# -- engine answers are checked -----------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {},
        [],
        {"id": "e", "updated_at": "2026-11-21 12:00:01", "state_info": None},
        {"id": "e", "state": "", "updated_at": "2026-11-21 12:00:01", "state_info": None},
        {"id": "e", "state": "RUNNING", "updated_at": None, "state_info": None},
        {"id": "x", "state": "RUNNING", "updated_at": "2026-11-21 12:00:01", "state_info": None},
    ],
)
def test_a_malformed_execution_answer_is_an_engine_error(answer):
    with pytest.raises(errors.EngineMalformed) as caught:
        answers.execution(answer, "e", results.LIGHT_FIELDS)
    assert isinstance(caught.value, errors.EngineError) and caught.value.retryable


def test_task_listing_checks():
    good = {"id": "t", "name": "n", "state": "RUNNING", "updated_at": "2026-11-21 12:00:01"}
    assert answers.tasks([good], "e", ["id", "name", "state"]) == [good]
    for bad in ({}, dict(good, state=None), dict(good, name=3), dict(good, updated_at="x")):
        with pytest.raises(errors.EngineMalformed):
            answers.tasks([bad], "e", ["id", "name", "state"])


# -- time: the two clocks ---------------------------------------------------------------------


def test_terminal_record_keeps_both_clocks_apart():
    execution = {
        "id": "e",
        "state": "SUCCESS",
        "state_info": None,
        "created_at": "2026-11-21 12:00:00",
        "updated_at": "2026-11-21 12:00:00",
        "output": {},
    }
    # The engine's end time (one-second resolution) is earlier than the
    # bridge's created_at: the record's ended_at is still the bridge's own.
    now = 1795780800.7  # 2026-11-21 12:00:00.7 UTC
    changes = results.terminal_changes(execution, None, now, "poll")
    assert changes["ended_at"] == now
    assert changes["engine_created_at"] == changes["engine_updated_at"] == "2026-11-21 12:00:00"


@pytest.mark.parametrize(
    "record, expected, took",
    [
        ({"created_at": 10.0, "ended_at": 10.25, "status": "succeeded"}, 0.25, "(took 250 ms)"),
        # An old record whose end came from the engine's clock: no figure at all.
        ({"created_at": 10.0, "ended_at": 9.0, "status": "succeeded"}, None, None),
        ({"created_at": 10.0, "ended_at": None, "status": "running"}, 5.0, None),
        ({"created_at": 10.0, "ended_at": None, "status": "failed"}, None, None),
    ],
)
def test_durations_are_never_negative_or_false(record, expected, took):
    assert results.duration(record, now=15.0) == expected
    text = output.execution_text(
        dict(record, id="i", workflow_name="w", engine_execution_id="e", tasks=[])
    )
    ended = next(line for line in text.splitlines() if line.startswith("ended:"))
    if took:
        assert ended.endswith(took)
    else:
        assert "took" not in ended


def test_json_view_has_labels_and_the_engine_clock():
    record = {
        "id": "i",
        "status": "failed",
        "workflow_name": "main",
        "engine_execution_id": "root",
        "created_at": 10.0,
        "submitted_at": 10.1,
        "ended_at": 11.0,
        "engine_created_at": "2026-11-21 12:00:00",
        "engine_updated_at": "2026-11-21 12:00:01",
        "tasks": [
            {
                "id": "t1",
                "name": "migrate",
                "label": "deploy[1 host=web2] > migrate",
                "workflow_execution_id": "sub1",
                "workflow_name": "per_host",
                "parent_task_id": "d",
                "index": 1,
                "item": "host=web2",
            },
            {"id": "t2", "name": "late", "workflow_execution_id": "sub2", "workflow_name": "x"},
        ],
    }
    view = output.execution_view(record)
    assert view["engine_created_at"] == "2026-11-21 12:00:00"
    assert view["submitted_at"].startswith("1970-01-01T00:00:10.100")
    assert view["tasks"][0]["label"] == "deploy[1 host=web2] > migrate"
    assert view["tasks"][0]["index"] == 1 and view["tasks"][0]["item"] == "host=web2"
    # Seen only in callbacks so far: its workflow and short id tell it apart.
    assert view["tasks"][1]["label"] == "x(sub2) > late"
    assert "deploy[1 host=web2] > migrate" in output.execution_text(record)


def test_error_tree_names_with_items_instances():
    engine = FakeEngine()
    root = with_items_tree(engine)
    rows = taskview.read_tree(engine, root)
    migrate = {r["index"]: r["id"] for r in rows if r["name"] == "migrate"}
    report = {
        "root_workflow_execution": {
            "id": root,
            "name": "main",
            "state": "ERROR",
            "task_executions": [
                {
                    "id": "root-deploy",
                    "name": "deploy",
                    "state": "ERROR",
                    "workflow_executions": [
                        {
                            "id": "sub%d" % i,
                            "name": "per_host",
                            "state": "ERROR",
                            "task_executions": [
                                {"id": migrate[i], "name": "migrate", "state": "ERROR"}
                            ],
                        }
                        for i in (2, 0, 1)  # the report's order is not the instances'
                    ],
                }
            ],
        }
    }
    tree = errortree.from_report(report, rows)
    leaves = [task["label"] for task, _ in errortree.failed_leaves(tree)]
    assert leaves == [
        "deploy[0 host=web1] > migrate",
        "deploy[1 host=web2] > migrate",
        "deploy[2 host=web3] > migrate",
    ]
    assert any("deploy[2 host=web3] > migrate" in line for line in errortree.render(tree))


# -- when an execution is due next -------------------------------------------------------------


def test_schedule_per_mode():
    poll = Schedule("poll", query_interval=5, stale_after=30, jitter_interval=0)
    hybrid = Schedule("hybrid", query_interval=5, stale_after=30, jitter_interval=0)
    callback = Schedule("callback", query_interval=5, stale_after=30, jitter_interval=0)
    assert (poll.first(100), hybrid.first(100), callback.first(100)) == (105, 130, 130)
    assert poll.after_callback(100) is None and hybrid.after_callback(100) == 130
    assert hybrid.after_check(100, due=100) == 105
    assert callback.after_check(100, due=100) == 130  # the safety net, not routine polling
    assert poll.at_once(100) == 100
    with pytest.raises(ValueError):
        Schedule("sometimes")


def test_a_404_is_checked_again_after_the_same_back_off_as_a_failure():
    schedule = Schedule("poll", backoff_base=2.0, backoff_max=60.0, rng=lambda: 1.0)
    assert schedule.after_not_found(100, 1) == 102.0 == schedule.after_failure(100, 1)
    assert schedule.after_not_found(100, 3) == 108.0
