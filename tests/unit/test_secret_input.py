"""Secret workflow input (issue 15 #10): masked on the web view, in the
engine's texts that repeat it, and kept out of the tracker's logs."""

import logging
import time

import pytest

from st2bridge import config, logs, redact
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from st2bridge.web.app import make_app
from tests.unit.test_web import FakeEngine, call

SECRET = "hunter2-Secret"


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_secret_keys():
    for key in ("password", "db_password", "api_key", "authToken", "SSH-PRIVATE-KEY", "secrets"):
        assert redact.is_secret_key(key), key
    for key in ("keystone_url", "monkey", "bypass", "name", "passes"):
        assert not redact.is_secret_key(key), key
    assert redact.is_secret_key("pin", extra={"pin"})


def test_the_web_view_masks_secret_input(tmp_path):
    class Echo(FakeEngine):
        def list_tasks(self, execution_id, fields=None):
            return [{"id": "t1", "name": "login", "state": "ERROR", "state_info": "bad " + SECRET}]

    with open_store("sqlite:///%s" % (tmp_path / "b.db")) as store:
        now = time.time()
        store.create_execution(
            new_execution_record(
                id="x1",
                workflow_name="main",
                engine_execution_id="e-x1",
                status="failed",
                created_at=now - 3,
                ended_at=now - 1,
                input={"user": "bob", "password": SECRET},
                error="login failed for %s" % SECRET,
            )
        )
        app = make_app(store, Echo())
        for path in ("/executions/x1", "/api/executions/x1", "/executions", "/api/executions"):
            status, _, body = call(app, path)
            assert status == 200, path
            text = body.decode() if isinstance(body, bytes) else body
            assert SECRET not in text, path
        status, _, body = call(app, "/executions/x1")
        assert "***" in (body.decode() if isinstance(body, bytes) else body)


def test_the_tracker_log_never_holds_secret_input(tmp_path, capsys):
    """Log lines carry ids and states, never input; the net under it: the
    formatter masks the configuration's secrets (test_logs.py)."""
    path = tmp_path / "bridge.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\nlog_level = DEBUG\n" % tmp_path)
    conf = config.load(["--config-file", str(path)])
    logs.setup(conf, logs.TRACKER)
    from st2bridge import workflow
    from st2bridge.engine.stub import StubEngine as Engine
    from st2bridge.runner import Runner

    with open_store("sqlite:///%s" % (tmp_path / "b.db")) as store:
        wf = workflow.parse(
            "version: '2.0'\nwf:\n  input: [password]\n  tasks: {a: {action: std.noop}}\n"
        )
        Runner(Engine(), store).start(wf, "wf", {"password": SECRET})
    logging.getLogger().handlers[0].flush()
    assert SECRET not in capsys.readouterr().err
