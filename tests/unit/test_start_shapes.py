"""Every shape of workflow Mistral runs, started through Runner.start_request
(the CLI's and an API's way in), against the engine stand-in and a real
SQLite store: workbooks, reverse workflows, env, namespaces, run by name,
idempotency keys, the definition kept, and what is refused before anything
is recorded or sent."""

import sqlite3

import pytest

from st2bridge import errors, results
from st2bridge import status as st
from st2bridge.callbacks import secrets, webhook
from st2bridge.engine.stub import StubEngine
from st2bridge.runner import Runner, StartRequest
from st2bridge.store import open_store

WORKBOOK = """version: '2.0'
name: wb
actions:
  greet:
    base: std.echo
    base-input: {output: "hi <% $.who %>"}
    input: [who]
workflows:
  main:
    input: [who]
    tasks:
      t: {action: greet who=<% $.who %>}
  other:
    type: reverse
    tasks:
      a: {action: std.noop}
      b: {action: std.noop, requires: [a]}
"""

WF = """version: '2.0'
wf:
  input: [x]
  tasks:
    t1:
      action: std.echo output=<% $.x %>
"""


@pytest.fixture
def store(tmp_path):
    s = open_store("sqlite:///%s" % (tmp_path / "b.db"), busy_timeout=0.2)
    yield s
    s.close()


@pytest.fixture
def engine():
    return StubEngine()


def runner_for(engine, store, **options):
    ticks = iter(range(1000, 100000)).__next__
    return Runner(engine, store, query_interval=5, clock=lambda: float(ticks()), **options)


def started(engine, record):
    return engine.executions[record["engine_execution_id"]]


def nothing_happened(engine, store):
    assert store.count_executions() == 0
    assert not [c for c in engine.calls if c[0] not in ("get_workflow", "get_workbook")]


# -- workbooks -----------------------------------------------------------------


def test_a_workbook_is_registered_whole_and_its_main_started(engine, store):
    runner = runner_for(engine, store)
    result = runner.start_request(StartRequest(definition=WORKBOOK, input={"who": "x"}))
    record = result.record
    assert (record["workflow_name"], record["workbook"]) == ("wb.main", "wb")
    assert engine.count("create_workbook") == 1 and engine.count("create_workflows") == 0
    assert started(engine, record)["workflow_name"] == "wb.main"
    # Unchanged the second time (compared as parsed YAML), updated when changed.
    runner.start_request(StartRequest(definition=WORKBOOK + "\n# a comment\n", input={"who": "y"}))
    assert engine.count("update_workbook") == 0
    changed = WORKBOOK.replace("hi <%", "hello <%")
    runner.start_request(StartRequest(definition=changed, input={"who": "z"}))
    assert engine.count("update_workbook") == 1


def test_a_workbook_with_several_workflows_and_no_main_is_refused(engine, store):
    text = WORKBOOK.replace("  main:", "  first:")
    with pytest.raises(errors.InputError, match="none named main: choose one with --workflow"):
        runner_for(engine, store).start_request(StartRequest(definition=text))
    nothing_happened(engine, store)


# -- reverse workflows ---------------------------------------------------------


def test_a_reverse_workflow_without_a_task_is_refused_before_anything(engine, store):
    request = StartRequest(definition=WORKBOOK, workflow="other")
    with pytest.raises(errors.InputError, match=r"--task \(its tasks: a, b\)"):
        runner_for(engine, store).start_request(request)
    nothing_happened(engine, store)


def test_a_reverse_workflows_task_goes_to_params_task_name(engine, store):
    request = StartRequest(definition=WORKBOOK, workflow="wb.other", task="b")
    record = runner_for(engine, store).start_request(request).record
    assert started(engine, record)["params"]["task_name"] == "b"
    assert store.get_execution(record["id"])["task_name"] == "b"


# -- environment -----------------------------------------------------------------


def test_env_values_merge_with_the_bridges_key_and_the_users_win(engine, store):
    runner = runner_for(engine, store)
    record = runner.start_request(
        StartRequest(definition=WF, input={"x": 1}, env={"region": "eu", "n": 2})
    ).record
    assert started(engine, record)["params"]["env"] == {
        "st2bridge_execution_id": record["id"],
        "region": "eu",
        "n": 2,
    }
    mine = runner.start_request(
        StartRequest(definition=WF, input={"x": 1}, env={"st2bridge_execution_id": "mine"})
    ).record
    assert started(engine, mine)["params"]["env"] == {"st2bridge_execution_id": "mine"}


def test_a_stored_environment_goes_by_name(engine, store):
    engine.environments["prod"] = {"region": "eu"}
    request = StartRequest(definition=WF, input={"x": 1}, env_name="prod")
    record = runner_for(engine, store).start_request(request).record
    # Sent by name: the engine put in the stored values (the bridge never read them).
    assert started(engine, record)["params"]["env"] == {"region": "eu"}
    assert store.get_execution(record["id"])["env_name"] == "prod"


def test_an_unknown_environment_name_is_refused_before_anything(engine, store):
    request = StartRequest(definition=WF, input={"x": 1}, env_name="nope")
    with pytest.raises(errors.InputError, match="the engine has no environment 'nope'"):
        runner_for(engine, store).start_request(request)
    assert store.count_executions() == 0 and engine.count("start_execution") == 0
    assert engine.count("create_workflows") == 0


def test_env_name_and_env_values_together_are_refused(engine, store):
    request = StartRequest(definition=WF, input={"x": 1}, env_name="prod", env={"a": 1})
    with pytest.raises(errors.InputError, match="give either it or --env/--env-file"):
        runner_for(engine, store).start_request(request)
    nothing_happened(engine, store)


# -- namespaces ------------------------------------------------------------------


def test_a_namespace_never_touches_the_same_name_elsewhere(engine, store):
    runner = runner_for(engine, store, namespace="team")  # [engine] namespace
    default = runner.start_request(StartRequest(definition=WF, input={"x": 1}, namespace=""))
    in_team = runner.start_request(
        StartRequest(definition=WF.replace("<% $.x %>", "<% $.x + 1 %>"), input={"x": 1})
    )
    assert engine.workflows[("", "wf")]["definition"] == WF  # not overwritten
    assert "$.x + 1" in engine.workflows[("team", "wf")]["definition"]
    assert started(engine, default.record)["workflow_namespace"] == ""
    assert started(engine, in_team.record)["workflow_namespace"] == "team"
    assert store.get_execution(in_team.record["id"])["namespace"] == "team"


# -- run by name -------------------------------------------------------------------


def test_run_by_name_checks_input_against_the_engines_definition(engine, store):
    engine.create_workflows(WF, namespace="ns")
    runner = runner_for(engine, store)
    with pytest.raises(errors.InputError, match=r"unknown input 'y' for workflow wf"):
        runner.start_request(StartRequest(workflow="wf", namespace="ns", input={"y": 1}))
    assert store.count_executions() == 0 and engine.count("start_execution") == 0
    record = runner.start_request(
        StartRequest(workflow="wf", namespace="ns", input={"x": 1})
    ).record
    assert started(engine, record)["workflow_namespace"] == "ns"
    # Only the test's own create: a run by name registers nothing.
    assert engine.count("create_workflows") == 1 and engine.count("update_workflows") == 0
    with pytest.raises(errors.InputError, match="the engine has no workflow or workbook 'wf'"):
        runner.start_request(StartRequest(workflow="wf", input={"x": 1}))  # other namespace


def test_run_by_name_of_a_workbook_runs_its_main(engine, store):
    engine.create_workbook(WORKBOOK)
    runner = runner_for(engine, store)
    record = runner.start_request(StartRequest(workflow="wb", input={"who": "a"})).record
    assert (record["workflow_name"], record["workbook"]) == ("wb.main", "wb")
    with pytest.raises(errors.InputError, match="choose the task to run with --task"):
        runner.start_request(StartRequest(workflow="wb.other"))


# -- the definition an execution started with ----------------------------------------


def test_the_definition_is_kept_once_per_distinct_content(engine, store):
    runner = runner_for(engine, store)
    a = runner.start_request(StartRequest(definition=WF, input={"x": 1})).record
    b = runner.start_request(StartRequest(definition=WF + "\n", input={"x": 2})).record
    assert a["definition_id"] == b["definition_id"]
    kept = store.get_definition(a["definition_id"])
    assert kept["text"] == WF and kept["workflows"] == ["wf"]


# -- idempotency keys ----------------------------------------------------------------


def test_the_same_key_returns_the_first_execution(engine, store):
    runner = runner_for(engine, store)
    first = runner.start_request(StartRequest(definition=WF, input={"x": 1}, idempotency_key="k"))
    again = runner.start_request(StartRequest(definition=WF, input={"x": 1}, idempotency_key="k"))
    assert again.reused and again.record["id"] == first.record["id"]
    assert engine.count("start_execution") == 1 and store.count_executions() == 1
    with pytest.raises(errors.Conflict, match="was used for a different request"):
        runner.start_request(StartRequest(definition=WF, input={"x": 2}, idempotency_key="k"))
    assert store.get_execution_by_idempotency_key("k")["id"] == first.record["id"]


def test_a_key_taken_between_the_check_and_the_insert_returns_that_execution(engine, store):
    runner = runner_for(engine, store)
    first = runner.start_request(StartRequest(definition=WF, input={"x": 1}, idempotency_key="k"))
    real_lookup = store.get_execution_by_idempotency_key
    calls = []

    def racing_lookup(key):  # the first look finds nothing: the other request was not there yet
        calls.append(key)
        if len(calls) == 1:
            raise errors.NotFound("not yet")
        return real_lookup(key)

    store.get_execution_by_idempotency_key = racing_lookup
    again = runner.start_request(StartRequest(definition=WF, input={"x": 1}, idempotency_key="k"))
    assert again.reused and again.record["id"] == first.record["id"]
    assert store.count_executions() == 1 and engine.count("start_execution") == 1


# -- the store fails after the engine accepted it (issue 16, 5) -----------------------


class LockingEngine(StubEngine):
    """Another connection takes the SQLite write lock as the submit arrives."""

    def __init__(self, path):
        super().__init__()
        self.path, self.holder = path, None

    def start_execution(self, *args, **kwargs):
        self.holder = sqlite3.connect(self.path, isolation_level=None)
        self.holder.execute("BEGIN IMMEDIATE")
        return super().start_execution(*args, **kwargs)

    def release(self):
        self.holder.execute("ROLLBACK")
        self.holder.close()


def test_a_store_locked_after_the_submit_is_a_warning_not_a_failure(tmp_path):
    path = tmp_path / "b.db"
    store = open_store("sqlite:///%s" % path, busy_timeout=0.2)
    engine = LockingEngine(path)
    seen = []
    result = runner_for(engine, store).start_request(
        StartRequest(definition=WF, input={"x": 1}), on_recorded=lambda r: seen.append(r["id"])
    )
    engine.release()
    assert seen == [result.record["id"]]  # the id was known before the engine was asked
    assert result.record["status"] == st.RUNNING and engine.count("start_execution") == 1
    assert len(result.warnings) == 1 and "the record catches up" in result.warnings[0]
    assert store.get_execution(result.record["id"])["status"] == st.REQUESTED  # for the tracker
    store.close()


def test_wait_reports_the_engines_end_when_the_store_cannot_take_it(engine, tmp_path):
    path = tmp_path / "b.db"
    store = open_store("sqlite:///%s" % path, busy_timeout=0.2)
    runner = runner_for(engine, store)
    record = runner.start_request(StartRequest(definition=WF, input={"x": 1})).record
    engine.set_state(record["engine_execution_id"], "SUCCESS", output={"r": 1})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    warnings = []
    try:
        ended = runner.wait(record["id"], sleep=lambda s: None, warnings=warnings)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ended["status"] == st.SUCCEEDED and ended["output"] == {"r": 1}
    assert "could not record it" in warnings[0]
    assert store.get_execution(record["id"])["status"] == st.RUNNING  # the tracker finishes it
    store.close()


# -- a re-submit carries the same notify (issue 16, 7) --------------------------------


def hybrid(engine, store):
    return runner_for(engine, store, mode="hybrid", callback_url="http://127.0.0.1:9")


def test_a_resubmit_carries_the_webhook_with_a_new_secret(engine, store, tmp_path):
    engine.fail_next = [None, None, errors.EngineUnavailable("down")]  # get, create, then submit
    runner = hybrid(engine, store)
    with pytest.raises(errors.EngineUnavailable):
        runner.start_request(StartRequest(definition=WF, input={"x": 1}))
    (record,) = store.list_executions()
    assert (
        record["status"] == st.REQUESTED
        and record["notify"][0]["headers"][webhook.SECRET_HEADER] is None
    )
    runner.submit(record)  # what the tracker does on a 404 for a requested record
    entry = started(engine, record)["params"]["notify"][0]
    assert entry["url"] == "http://127.0.0.1:9/v1/callbacks/mistral/" + record["id"]
    secret = entry["headers"][webhook.SECRET_HEADER]
    assert secrets.matches(secret, store.get_execution(record["id"])["callback_secret_hash"])
    store.close()
    assert secret.encode() not in (tmp_path / "b.db").read_bytes()  # never stored in clear


def test_the_tracker_resubmits_with_a_submitter_alone_no_runner(engine, store):
    from st2bridge.submit import Submitter

    engine.fail_next = [None, None, errors.EngineUnavailable("down")]  # get, create, then submit
    with pytest.raises(errors.EngineUnavailable):
        hybrid(engine, store).start_request(StartRequest(definition=WF, input={"x": 1}))
    (record,) = store.list_executions()
    # What the tracker holds: the engine and the store, no start-up configuration.
    Submitter(engine, store).submit(record)
    entry = started(engine, record)["params"]["notify"][0]
    stored = store.get_execution(record["id"])
    assert stored["status"] == st.RUNNING
    assert secrets.matches(entry["headers"][webhook.SECRET_HEADER], stored["callback_secret_hash"])


def test_a_resubmit_adopts_the_secret_of_a_first_submit_that_got_through(engine, store):
    runner = hybrid(engine, store)
    record = runner.start_request(StartRequest(definition=WF, input={"x": 1})).record
    first = started(engine, record)["params"]["notify"][0]["headers"][webhook.SECRET_HEADER]
    stored = store.get_execution(record["id"])
    runner.submit(stored)  # the engine answers with the execution the first submit made
    assert secrets.matches(first, store.get_execution(record["id"])["callback_secret_hash"])


# -- the bridge's own params stay out of recorded output ---------------------------------


def test_the_callback_secret_is_masked_in_recorded_output():
    execution = {
        "state": "SUCCESS",
        "output": {
            "ex": {"params": {"notify": [{"headers": {webhook.SECRET_HEADER: "s3cr3t-value"}}]}},
            "text": "{'%s': 's3cr3t-value'}" % webhook.SECRET_HEADER,
        },
    }
    changes = results.terminal_changes(execution, [], 1.0, "poll")
    assert "s3cr3t-value" not in repr(changes)
    assert changes["output"]["ex"]["params"]["notify"][0]["headers"][webhook.SECRET_HEADER] == "***"


def test_a_spurious_parse_error_of_concurrent_registrations_is_asked_again(engine, store):
    """Mistral 23 answers some concurrent registrations of valid definitions
    with 400 "Parse error"; a real syntax error still counts after two retries."""
    runner = runner_for(engine, store)
    runner.registrar.sleep = lambda s: None
    spurious = errors.EngineBadRequest("create workflows: Parse error: unexpected end (HTTP 400)")
    engine.fail_next = [None, spurious]  # the GET, then the create
    assert runner.start_request(StartRequest(definition=WF, input={"x": 1})).record
    engine.fail_next = [spurious] * 3
    with pytest.raises(errors.InputError, match="rejected by the engine: .*Parse error"):
        runner.start_request(StartRequest(definition=WF.replace("wf:", "wf2:"), input={"x": 1}))


def test_wait_ends_with_timeout_when_the_engine_never_ends(engine, store):
    runner = runner_for(engine, store)
    record = runner.start_request(StartRequest(definition=WF, input={"x": 1}, timeout=30)).record
    ended = runner.wait(record["id"], sleep=lambda s: None)  # each tick of the clock is 1 s
    assert ended["status"] == st.TIMEOUT and ended["finished_by"] == "wait"
    assert "tracking timed out after 30 s" in ended["error"]
    # issue 15 #8: by default a timeout cancels the engine execution...
    assert engine.executions[record["engine_execution_id"]]["state"] == "CANCELLED"
    # ...and --on-timeout leave leaves it running.
    request = StartRequest(definition=WF, input={"x": 2}, timeout=30, on_timeout="leave")
    record = runner.start_request(request).record
    ended = runner.wait(record["id"], sleep=lambda s: None)
    assert ended["status"] == st.TIMEOUT and "left running" in ended["error"]
    assert engine.executions[record["engine_execution_id"]]["state"] == "RUNNING"
