"""The API's bad-input catalogue: each case is a 4xx with one line, its
answer is one the OpenAPI document describes, and nothing changed (no
record, no change-log entry, no engine execution)."""

import json

import pytest

from tests.support import engine_sim
from tests.support.api_app import ApiHarness

OK = {"workflow": "wf_bad"}
SECRET = "s" * 16

# (label, method, path, body or raw bytes, headers, key, status, text in the error)
CASES = [
    ("not json", "POST", "/v1/executions", b"{oops", {}, "rw", 400, "not valid JSON"),
    ("an array", "POST", "/v1/executions", b"[1, 2]", {}, "rw", 400, "JSON object"),
    ("NaN", "POST", "/v1/executions", b'{"workflow": NaN}', {}, "rw", 400, "NaN"),
    ("Infinity", "POST", "/v1/executions", b'{"timeout": Infinity}', {}, "rw", 400, "Infinity"),
    ("deep", "POST", "/v1/executions", b"[" * 100000, {}, "rw", 400, "JSON"),
    ("not utf-8", "POST", "/v1/executions", b'{"workflow": "\xff"}', {}, "rw", 400, "UTF-8"),
    ("empty body", "POST", "/v1/executions", b"", {}, "rw", 400, "JSON object"),
    ("nothing to run", "POST", "/v1/executions", {}, {}, "rw", 400, '"workflow"'),
    ("unknown field", "POST", "/v1/executions", dict(OK, bogus=1), {}, "rw", 400, "bogus"),
    ("workflow type", "POST", "/v1/executions", {"workflow": 5}, {}, "rw", 400, "string"),
    ("workflow empty", "POST", "/v1/executions", {"workflow": ""}, {}, "rw", 400, "workflow"),
    ("input type", "POST", "/v1/executions", dict(OK, input=[]), {}, "rw", 400, "object"),
    ("env type", "POST", "/v1/executions", dict(OK, env="x"), {}, "rw", 400, "object"),
    ("timeout bool", "POST", "/v1/executions", dict(OK, timeout=True), {}, "rw", 400, "number"),
    ("timeout < 0", "POST", "/v1/executions", dict(OK, timeout=-1), {}, "rw", 400, "positive"),
    ("task empty", "POST", "/v1/executions", dict(OK, task=""), {}, "rw", 400, "task"),
    ("label key", "POST", "/v1/executions", dict(OK, labels={"a b": "v"}), {}, "rw", 400, "key"),
    ("label value", "POST", "/v1/executions", dict(OK, labels={"k": 1}), {}, "rw", 400, "value"),
    ("labels type", "POST", "/v1/executions", dict(OK, labels=[]), {}, "rw", 400, "labels"),
    (
        "sink scheme",
        "POST",
        "/v1/executions",
        dict(OK, notify=[{"url": "ftp://x/y", "secret": SECRET}]),
        {},
        "rw",
        400,
        "http(s)",
    ),
    (
        "sink secret",
        "POST",
        "/v1/executions",
        dict(OK, notify=[{"url": "http://x/y", "secret": "short"}]),
        {},
        "rw",
        400,
        "secret",
    ),
    (
        "sink field",
        "POST",
        "/v1/executions",
        dict(OK, notify=[{"url": "http://x/y", "secret": SECRET, "token": 1}]),
        {},
        "rw",
        400,
        "token",
    ),
    ("sink type", "POST", "/v1/executions", dict(OK, notify=["x"]), {}, "rw", 400, "object"),
    (
        "many sinks",
        "POST",
        "/v1/executions",
        dict(OK, notify=[{"url": "http://x/%d" % i, "secret": SECRET} for i in range(11)]),
        {},
        "rw",
        400,
        "at most",
    ),
    ("namespace", "POST", "/v1/executions", dict(OK, namespace=5), {}, "rw", 400, "namespace"),
    ("bad yaml", "POST", "/v1/executions", {"definition": "a: [b"}, {}, "rw", 400, "YAML"),
    (
        "no version",
        "POST",
        "/v1/executions",
        {"definition": "wf: {tasks: {}}"},
        {},
        "rw",
        400,
        "version",
    ),
    ("too big", "POST", "/v1/executions", b" " * 1048577, {}, "rw", 413, "over"),
    (
        "chunked",
        "POST",
        "/v1/executions",
        None,
        {"Transfer-Encoding": "chunked"},
        "rw",
        411,
        "Content-Length",
    ),
    (
        "idempotency key",
        "POST",
        "/v1/executions",
        OK,
        {"Idempotency-Key": "has space"},
        "rw",
        400,
        "Idempotency-Key",
    ),
    ("no key", "POST", "/v1/executions", OK, {}, None, 401, "API key"),
    ("wrong key", "POST", "/v1/executions", OK, {}, "st2b_wrong", 401, "unknown"),
    ("read-only key", "POST", "/v1/executions", OK, {}, "ro", 403, "read-only"),
    ("limit 0", "GET", "/v1/executions?limit=0", None, {}, "rw", 400, "limit"),
    ("limit text", "GET", "/v1/executions?limit=ten", None, {}, "rw", 400, "limit"),
    ("status", "GET", "/v1/executions?status=done", None, {}, "rw", 400, "unknown status"),
    ("param", "GET", "/v1/executions?sort=asc", None, {}, "rw", 400, "unknown query"),
    ("twice", "GET", "/v1/executions?workflow=a&workflow=b", None, {}, "rw", 400, "more than"),
    ("label filter", "GET", "/v1/executions?label=novalue", None, {}, "rw", 400, "KEY=VALUE"),
    ("marker", "GET", "/v1/executions?marker=nope", None, {}, "rw", 400, "marker"),
    ("since", "GET", "/v1/executions?since=yesterday", None, {}, "rw", 400, "yesterday"),
    ("unknown id", "GET", "/v1/executions/nope-nope", None, {}, "rw", 404, "no execution"),
    ("control body", "POST", "/v1/executions/abcd/cancel", b"[1]", {}, "rw", 404, "abcd"),
    ("rerun reset", "POST", "/v1/tasks/t1/rerun", {"reset": "yes"}, {}, "rw", 400, "reset"),
    ("rerun field", "POST", "/v1/tasks/t1/rerun", {"force": 1}, {}, "rw", 400, "force"),
    ("stream param", "GET", "/v1/stream?from=1", None, {}, "rw", 400, "unknown query"),
    ("stream id", "GET", "/v1/stream", None, {"Last-Event-ID": "x1"}, "rw", 400, "Last-Event-ID"),
]


@pytest.fixture(scope="module")
def sim():
    handle = engine_sim.start_in_thread(duration=600)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory, sim):
    harness = ApiHarness(tmp_path_factory.mktemp("bad"), sim)
    harness.register("wf_bad")
    yield harness
    harness.close()


def state(api, sim):
    return (
        api.store.count_executions(),
        api.store.last_change_seq(),
        len(sim.sim.execs),
        len(api.store.list_api_keys()),
    )


@pytest.mark.parametrize(
    "method, path, body, headers, key, status, text",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_is_one_line_4xx_and_changes_nothing(
    api, sim, method, path, body, headers, key, status, text
):
    before = state(api, sim)
    raw = body if isinstance(body, bytes) else None
    answer = api.call(method, path, None if raw is not None else body, headers, key, raw=raw)
    assert answer.status == status, answer
    error = answer.body["error"]
    assert text in error, error
    assert "\n" not in error and "Traceback" not in error and len(error) < 400
    assert answer.body["exit_code"] in (2, 5, 7)
    assert state(api, sim) == before


def test_a_good_request_after_the_catalogue_still_works(api, sim):
    answer = api.call("POST", "/v1/executions", dict(OK, input={"x": 1}))
    assert answer.status == 201, answer
    assert json.dumps(answer.body)
