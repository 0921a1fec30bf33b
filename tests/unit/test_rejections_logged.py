"""Callback rejections other than 403 are logged, a line a minute per status
at most (issue 15 #11), with st2bridge.logs.RateLimitedLog (shared with the
listeners' other floods)."""

import logging

import pytest

from st2bridge import logs
from st2bridge.callbacks import app as callback_app
from tests.unit.test_callbacks import Env


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limited_log_counts_and_summarises(caplog):
    clock = Clock()
    limited = logs.RateLimitedLog(logging.getLogger("t"), interval=60, clock=clock)
    caplog.set_level(logging.INFO, logger="t")
    assert limited.log(logging.WARNING, "k", "rejected %s", "a") is True
    for _ in range(5):
        clock.now += 1
        assert limited.log(logging.WARNING, "k", "rejected %s", "b") is False
    assert limited.log(logging.WARNING, "other", "other kind") is True
    clock.now += 60
    assert limited.log(logging.WARNING, "k", "rejected %s", "c") is True
    assert [r.getMessage() for r in caplog.records] == [
        "rejected a",
        "other kind",
        "rejected c (and 5 more like it in the last 65 s)",
    ]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setattr(callback_app, "REJECTED", logs.RateLimitedLog(callback_app.LOG))
    e = Env(tmp_path)
    yield e
    e.store.close()


def test_callback_rejections_are_logged(env, caplog):
    caplog.set_level(logging.INFO, logger="st2bridge.callbacks")
    record, notify = env.start()
    assert env.post("nope", {"event": "WORKFLOW_SUCCEEDED"}, secret="x")[0] == 404
    assert env.post(record["id"], {"event": "WORKFLOW_SUCCEEDED"})[0] == 401
    assert (
        env.post(record["id"], b"{oops", secret=notify["headers"]["X-St2bridge-Secret"])[0] == 400
    )
    assert env.post(record["id"], {}, method="GET")[0] == 405
    for _ in range(50):  # a flood of one kind: one line
        env.post("nope", {"event": "WORKFLOW_SUCCEEDED"}, secret="x")
    lines = [r.getMessage() for r in caplog.records if r.name == "st2bridge.callbacks"]
    assert [line.split(" rejected with ")[1][:3] for line in lines] == ["404", "401", "400", "405"]
    assert lines[0].startswith("callback POST /v1/callbacks/mistral/nope from ? rejected with 404")
