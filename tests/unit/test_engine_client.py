"""MistralClient against a real HTTP stub on 127.0.0.1 (ephemeral port).

The stub answers from a queue of canned responses and records every request.
Retry tests inject a fake sleep and clock, so nothing waits for real except the
read-timeout test (a fraction of a second).
"""

import json
import logging
import threading

import pytest

from st2bridge.engine import MistralClient
from st2bridge.errors import (
    EngineAuthError,
    EngineBadRequest,
    EngineClientError,
    EngineConflict,
    EngineMalformed,
    EngineNotFound,
    EngineServerError,
    EngineUnavailable,
)
from tests.support.engine_http_stub import closed_port, make_client

TOKEN = "tok-3f9c1b7e-secret"
EX_ID = "0c3f3a52-6d43-4b5e-9d57-2a0b1f1e6c11"


@pytest.fixture
def client(stub, fake_time):
    c = make_client(stub.url, fake_time, auth_token=TOKEN)
    yield c
    c.close()


def execution(**fields):
    ex = {
        "id": EX_ID,
        "workflow_name": "wf",
        "state": "RUNNING",
        "input": '{"x": 1}',
        "output": "{}",
        "params": '{"env": {"a": 1}}',
    }
    ex.update(fields)
    return ex


# -- error mapping --------------------------------------------------------------


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, EngineBadRequest),
        (401, EngineAuthError),
        (403, EngineAuthError),
        (404, EngineNotFound),
        (409, EngineConflict),
        (422, EngineClientError),
        (500, EngineServerError),
        (502, EngineServerError),
    ],
)
def test_http_errors_map_to_engine_errors(stub, fake_time, status, cls):
    client = make_client(stub.url, fake_time, stop_max_msec=0)
    stub.add(status, {"faultcode": "Client", "faultstring": "it went wrong", "debuginfo": None})
    with pytest.raises(cls) as info:
        client.get_execution(EX_ID)
    assert type(info.value) is cls
    assert info.value.status == status
    assert str(info.value) == ("get execution %s: it went wrong (HTTP %d)" % (EX_ID, status))


def test_multi_line_faultstring_is_trimmed_to_its_first_line(client, stub):
    stub.add(
        400,
        {
            "faultcode": "Client",
            "faultstring": "\nInvalid DSL: 'tasks' is a required property\n\n"
            "Failed validating 'required' in schema:\n    {'type': 'object'}",
        },
    )
    with pytest.raises(EngineBadRequest) as info:
        client.create_workflows("version: '2.0'\nwf: {}\n")
    assert str(info.value) == (
        "create workflows: Invalid DSL: 'tasks' is a required property (HTTP 400)"
    )


def test_long_faultstring_is_capped_and_tracebacks_reduced(client, stub):
    stub.add(400, {"faultstring": "x" * 5000})
    with pytest.raises(EngineBadRequest) as info:
        client.get_task("t1")
    assert len(str(info.value)) < 350 and "..." in str(info.value)
    stub.add(
        404,
        {
            "faultstring": "Traceback (most recent call last):\n"
            '  File "a.py", line 1\nDBEntityNotFoundError: '
            "Task execution not found [id=t1]"
        },
    )
    with pytest.raises(
        EngineNotFound,
        match=r"get task t1: DBEntityNotFound"
        r"Error: Task execution not found \[id=t1\] \(HTTP 404\)$",
    ):
        client.get_task("t1")


def test_error_bodies_without_faultstring(client, stub):
    stub.add(
        401,
        {
            "error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }
        },
    )
    with pytest.raises(EngineAuthError, match="requires authentication"):
        client.get_task("t1")
    stub.add(404, raw="<html><body><h1>404 Not Found</h1></body></html>")
    with pytest.raises(EngineNotFound) as info:
        client.get_task("t1")
    assert str(info.value) == "get task t1: Not Found (HTTP 404)"


def test_a_success_that_is_not_json_is_a_server_error(stub, fake_time):
    client = make_client(stub.url, fake_time, stop_max_msec=0)
    stub.add(200, raw="<html>proxy page</html>")
    with pytest.raises(EngineServerError, match="not JSON") as info:
        client.get_task("t1")
    assert info.value.status == 200
    stub.add(200, ["a", "list"])  # callers read fields of an object
    with pytest.raises(EngineServerError, match="JSON that is not an object"):
        client.get_task("t1")


# -- decoding and query strings ------------------------------------------------


def test_json_string_fields_are_decoded(client, stub):
    stub.add(200, execution(output='{"result": [1, 2]}'))
    ex = client.get_execution(EX_ID)
    assert ex["input"] == {"x": 1}
    assert ex["output"] == {"result": [1, 2]}
    assert ex["params"] == {"env": {"a": 1}}
    stub.add(
        200, {"id": "t1", "result": '"done"', "published": '{"k": null}', "state_info": "{not json"}
    )
    task = client.get_task("t1")
    assert task["result"] == "done" and task["published"] == {"k": None}
    assert task["state_info"] == "{not json"  # not a JSON field


def test_workflow_input_is_not_mistaken_for_json(client, stub):
    stub.add(200, {"name": "wf", "input": "a, b=1"})
    assert client.get_workflow("wf")["input"] == "a, b=1"
    assert stub.requests[0]["path"] == "/v2/workflows/wf"


def test_fields_become_a_comma_separated_query(client, stub):
    stub.add(200, {"id": EX_ID, "state": "SUCCESS"})
    client.get_execution(EX_ID, fields=["state", "state_info", "updated_at"])
    req = stub.requests[0]
    assert req["path"] == "/v2/executions/" + EX_ID
    assert req["query"] == {"fields": "state,state_info,updated_at"}


def test_list_executions_pages_with_marker_and_keeps_filters(client, stub):
    since = "gte:2026-11-21 12:00:00"
    stub.add(
        200,
        {
            "executions": [{"id": "a", "input": "{}"}, {"id": "b"}],
            "next": "http://127.0.0.1/v2/executions?marker=b",
        },
    )
    stub.add(200, {"executions": [{"id": "c", "output": '{"r": 1}'}]})
    got = list(
        client.list_executions(
            fields=["id", "state", "updated_at"],
            limit=2,
            updated_at=since,
            nulls="task_execution_id",
        )
    )
    assert [e["id"] for e in got] == ["a", "b", "c"]
    assert got[0]["input"] == {} and got[2]["output"] == {"r": 1}
    first, second = (r["query"] for r in stub.requests)
    assert first == {
        "fields": "id,state,updated_at",
        "limit": "2",
        "updated_at": since,
        "nulls": "task_execution_id",
    }
    assert second == dict(first, marker="b")


def test_list_tasks_pages_and_decodes(client, stub):
    stub.add(200, {"tasks": [{"id": "t1", "result": "[1]"}], "next": "x"})
    stub.add(200, {"tasks": []})
    assert client.list_tasks(EX_ID, fields=["state", "result"]) == [{"id": "t1", "result": [1]}]
    assert stub.requests[0]["path"] == "/v2/executions/%s/tasks" % EX_ID
    assert stub.requests[1]["query"]["marker"] == "t1"


@pytest.mark.parametrize(
    "body", [{}, {"executions": None}, {"executions": {"id": "a"}}, [1], "nothing"]
)
def test_a_listing_without_its_list_is_an_engine_error_not_an_empty_listing(client, stub, body):
    # `200 {}` from a broken engine or proxy would otherwise read as "nothing
    # changed" and move the tracker's change window forward.
    stub.add(200, body)
    with pytest.raises(EngineMalformed) as caught:
        list(client.list_executions(fields=["id", "state"]))
    assert "no 'executions' list" in str(caught.value)
    stub.add(200, {"tasks": [{"id": "t1"}, "x"], "next": "more"})
    with pytest.raises(EngineMalformed):
        client.list_tasks(EX_ID)


def test_report_state_change_and_rerun_requests(client, stub):
    stub.add(200, {"root_workflow_execution": {"id": EX_ID}})
    client.execution_report(EX_ID)
    stub.add(200, execution(state="CANCELLED"))
    assert client.update_execution_state(EX_ID, "CANCELLED", "by user")["state"] == "CANCELLED"
    stub.add(200, {"id": "t1", "state": "RUNNING"})
    client.rerun_task("t1", reset=False)
    report, put, rerun = stub.requests
    assert report["path"].endswith("/report")
    assert report["query"] == {"errors_only": "true"}
    assert (put["method"], json.loads(put["body"])) == (
        "PUT",
        {"state": "CANCELLED", "state_info": "by user"},
    )
    assert (rerun["method"], rerun["path"]) == ("PUT", "/v2/tasks/t1")
    assert json.loads(rerun["body"]) == {"id": "t1", "state": "RUNNING", "reset": False}


def test_a_false_boolean_is_left_out_of_the_query(client, stub):
    # Mistral's API (WSME) reads any value of a boolean argument as true,
    # "false" included: the whole report must not be asked for with it.
    stub.add(200, {"root_workflow_execution": {"id": EX_ID}})
    client.execution_report(EX_ID, errors_only=False, max_depth=0)
    assert stub.requests[0]["query"] == {"max_depth": "0"}


def test_path_segments_are_quoted(client, stub):
    stub.add(200, {"name": "ns/my wf"})
    client.get_workflow("ns/my wf")
    assert stub.requests[0]["path"] == "/v2/workflows/ns%2Fmy%20wf"


def test_create_workflows_posts_yaml_as_text(client, stub):
    stub.add(201, {"workflows": [{"name": "wf", "id": "w1"}]})
    assert client.create_workflows("version: '2.0'\n") == [{"name": "wf", "id": "w1"}]
    req = stub.requests[0]
    assert req["method"] == "POST" and req["body"] == "version: '2.0'\n"
    assert req["headers"]["Content-Type"] == "text/plain"
    # Mistral answers 406 to "Accept: application/json" on this endpoint.
    assert "application/json" not in req["headers"].get("Accept", "")


def test_start_execution_sends_the_id_and_json_strings(client, stub):
    stub.add(201, execution())
    ex = client.start_execution(
        "wf", {"x": 1}, execution_id=EX_ID, params={"env": {"a": 1}}, description="d"
    )
    assert ex["id"] == EX_ID and ex["input"] == {"x": 1}
    assert json.loads(stub.requests[0]["body"]) == {
        "id": EX_ID,
        "workflow_name": "wf",
        "input": '{"x": 1}',
        "params": '{"env": {"a": 1}}',
        "description": "d",
    }


def test_start_execution_refuses_an_id_taken_by_another_workflow(client, stub):
    stub.add(201, execution(workflow_name="other", workflow_id="w9"))
    with pytest.raises(EngineConflict, match="belongs to an execution of workflow other"):
        client.start_execution("wf", execution_id=EX_ID)


# -- auth -----------------------------------------------------------------------


def test_auth_token_is_sent_but_never_logged(stub, fake_time, caplog):
    client = make_client(stub.url, fake_time, auth_token=TOKEN)
    stub.add(503, {"faultstring": "busy"})
    stub.add(200, execution())
    with caplog.at_level(logging.DEBUG):
        client.get_execution(EX_ID)
        stub.add(401, {"faultstring": "Token expired"})
        with pytest.raises(EngineAuthError) as info:
            client.get_execution(EX_ID)
    assert all(r["headers"]["X-Auth-Token"] == TOKEN for r in stub.requests)
    assert any("retrying in" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text and TOKEN not in str(info.value)
    assert TOKEN not in repr(client)


def test_no_token_no_header(stub, fake_time):
    client = make_client(stub.url, fake_time)
    client.get_execution(EX_ID)
    assert "X-Auth-Token" not in stub.requests[0]["headers"]


# -- retries ----------------------------------------------------------------------


def test_get_is_retried_on_503_then_succeeds(client, stub, fake_time):
    stub.add(503, {"faultstring": "Service Unavailable"})
    stub.add(200, execution(state="SUCCESS"))
    assert client.get_execution(EX_ID)["state"] == "SUCCESS"
    assert client.request_count == 2
    assert fake_time.slept == [1.0]


@pytest.mark.parametrize(
    "status, cls", [(400, EngineBadRequest), (404, EngineNotFound), (409, EngineConflict)]
)
def test_client_errors_are_not_retried(client, stub, fake_time, status, cls):
    stub.add(status, {"faultstring": "no"})
    with pytest.raises(cls):
        client.update_execution_state(EX_ID, "PAUSED")
    assert client.request_count == 1 and fake_time.slept == []


def test_start_execution_is_retried_after_a_dropped_response(client, stub, fake_time):
    stub.add(drop=True)
    stub.add(201, execution())
    assert client.start_execution("wf", {"x": 1}, execution_id=EX_ID)["id"] == EX_ID
    first, second = stub.requests
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert json.loads(second["body"])["id"] == EX_ID
    assert client.request_count == 2 and fake_time.slept == [1.0]


def test_create_workflows_is_not_retried_on_500(client, stub, fake_time):
    stub.add(500, {"faultstring": "DB error"})
    with pytest.raises(EngineServerError, match="create workflows: DB error"):
        client.create_workflows("version: '2.0'\n")
    assert client.request_count == 1 and fake_time.slept == []


@pytest.mark.parametrize(
    "call", [lambda c: c.create_workflows("version: '2.0'\n"), lambda c: c.rerun_task("t1")]
)
def test_unsafe_requests_are_not_retried_once_sent(client, stub, fake_time, call):
    stub.add(drop=True)
    with pytest.raises(EngineUnavailable, match="closed without an answer") as info:
        call(client)
    assert info.value.request_sent is True
    assert client.request_count == 1 and fake_time.slept == []


def test_connection_refused_gives_up_with_a_clear_message(fake_time, caplog):
    url = "http://127.0.0.1:%d/v2" % closed_port()
    client = make_client(url, fake_time, auth_token=TOKEN)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(EngineUnavailable) as info:
            client.get_execution(EX_ID)
    assert str(info.value) == (
        "get execution %s: cannot reach the engine at %s: connection refused" % (EX_ID, url)
    )
    assert info.value.status is None and info.value.request_sent is False
    assert fake_time.slept == [1.0, 2.0, 4.0]  # the whole 10 s budget
    assert client.request_count == 4
    assert "giving up after 4 attempt(s)" in caplog.text
    assert TOKEN not in caplog.text


def test_create_workflows_is_retried_while_the_connection_is_refused(fake_time):
    client = make_client("http://127.0.0.1:%d/v2" % closed_port(), fake_time)
    with pytest.raises(EngineUnavailable, match="connection refused"):
        client.create_workflows("version: '2.0'\n")
    assert client.request_count == 4  # nothing was ever sent


def test_read_timeout_is_engine_unavailable(stub, fake_time):
    client = make_client(stub.url, fake_time, stop_max_msec=0, read_timeout=0.2)
    stub.add(200, {}, delay=1.0)
    with pytest.raises(
        EngineUnavailable,
        match=r"no answer within 0.2 s "
        r"\(read timeout\)$",
    ) as info:
        client.get_task("t1")
    assert info.value.retryable and info.value.request_sent


def test_ping_is_one_cheap_request_without_retry(client, stub, fake_time):
    stub.add(200, {"workflows": []})
    assert client.ping() is True
    assert stub.requests[0]["query"]["limit"] == "1"
    stub.add(503, {"faultstring": "busy"})
    with pytest.raises(EngineServerError):
        client.ping()
    assert client.request_count == 2 and fake_time.slept == []


def test_connections_are_pooled_and_counted(client, stub):
    for _ in range(5):
        client.get_task("t1")
    assert client.request_count == 5
    assert len({r["client_port"] for r in stub.requests}) == 1  # keep-alive
    assert client._transport._pool.pool.maxsize == 20
    small = MistralClient(stub.url, pool_size=3)
    assert small._transport._pool.pool.maxsize == 3 and not small._transport._pool.block


def test_bad_api_url_is_rejected():
    with pytest.raises(ValueError, match="http"):
        MistralClient("127.0.0.1:8989/v2")


def test_state_change_is_retried_after_a_dropped_response(client, stub):
    stub.add(drop=True)
    stub.add(200, execution(state="PAUSED"))
    assert client.update_execution_state(EX_ID, "PAUSED")["state"] == "PAUSED"
    assert [r["method"] for r in stub.requests] == ["PUT", "PUT"]


def test_concurrent_callers_share_the_pool(client, stub):
    def work():
        for _ in range(10):
            client.get_task("t1")

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.request_count == 200 == len(stub.requests)
    assert len({r["client_port"] for r in stub.requests}) <= 20


@pytest.mark.parametrize("token", [" s3cr3t", "s3cr3t\n", "s3cr3t\r\nX-Evil: 1"])
def test_tokens_that_would_break_the_header_are_refused(token):
    with pytest.raises(ValueError) as info:
        MistralClient("http://127.0.0.1:1/v2", auth_token=token)
    assert token.strip() not in str(info.value)


def test_start_execution_passes_json_text_through(client, stub):
    stub.add(201, execution())
    client.start_execution("wf", '{"x": 1}', execution_id=EX_ID)
    body = json.loads(stub.requests[0]["body"])
    assert (body["input"], body["params"]) == ('{"x": 1}', "{}")
