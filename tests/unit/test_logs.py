"""Logging: a file per component (logrotate-friendly), secrets masked, the
level re-read on SIGHUP -- in-process and in a real tracker process."""

import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from st2bridge import config, errors, logs
from st2bridge import status as st
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from tests.support import engine_sim

# Starts processes or real listeners: deselect with -m 'not process' for the fast loop.
pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-" + "9f8e7d6c5b4a" * 3
DB_PASSWORD = "pg-Secret-4711"


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def load(tmp_path, text):
    path = tmp_path / "bridge.conf"
    path.write_text(text)
    return config.load(["--config-file", str(path)]), path


def test_stderr_when_log_dir_is_unset(tmp_path, capsys):
    conf, _ = load(tmp_path, "[DEFAULT]\nlog_level = INFO\n")
    assert logs.setup(conf, logs.TRACKER) is None
    logging.getLogger("st2bridge.x").info("to stderr")
    assert "INFO st2bridge.x" in capsys.readouterr().err


def test_one_file_per_component_reopened_after_logrotate(tmp_path, capsys):
    conf, _ = load(tmp_path, "[DEFAULT]\nlog_dir = %s/log\n" % tmp_path)
    path = logs.setup(conf, logs.TRACKER)
    assert path == str(tmp_path / "log" / "st2bridge-resultstracker.log")
    log = logging.getLogger("st2bridge.test")
    log.info("before rotation")
    os.rename(path, path + ".1")  # what logrotate does (no copytruncate)
    log.info("after rotation")
    assert "before rotation" in Path(path + ".1").read_text()
    assert "after rotation" in Path(path).read_text()
    assert "before rotation" not in Path(path).read_text()
    assert capsys.readouterr().err == ""  # a daemon with a log file: the file only


def test_command_logs_to_its_file_and_keeps_stderr_quiet(tmp_path, capsys):
    conf, _ = load(tmp_path, "[DEFAULT]\nlog_dir = %s\n" % tmp_path)
    assert logs.command_component("db-upgrade") == "st2bridge-db-upgrade"
    assert logs.command_component("run") == "st2bridge"
    logs.setup(conf, logs.command_component("run"), quiet=True, strict=False)
    logging.getLogger("st2bridge.cli").info("detail")
    logging.getLogger("st2bridge.cli").warning("problem")
    text = (tmp_path / "st2bridge.log").read_text()
    assert "detail" in text and "problem" in text
    err = capsys.readouterr().err
    assert "problem" in err and "detail" not in err


def test_unwritable_log_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    conf, _ = load(tmp_path, "[DEFAULT]\nlog_dir = %s/sub\n" % blocker)
    with pytest.raises(
        errors.ConfigError, match="cannot write log file .*sub/st2bridge-resultstracker.log"
    ):
        logs.setup(conf, logs.TRACKER)
    assert logs.setup(conf, logs.CLI, quiet=True, strict=False) is None  # a command goes on
    assert "logging to stderr only" in capsys.readouterr().err


def test_secrets_are_masked_in_every_line_and_traceback(tmp_path):
    conf, _ = load(
        tmp_path,
        "[DEFAULT]\nlog_dir = %s\n[engine]\nauth_token = %s\n"
        "[db_upgrade]\nengine_connection = postgresql://mistral:%s@db/m\n"
        % (tmp_path, TOKEN, DB_PASSWORD),
    )
    logs.setup(conf, logs.TRACKER)
    log = logging.getLogger("st2bridge.test")
    log.info("token %s and url mysql://root:%s@h/db", TOKEN, DB_PASSWORD)
    try:
        raise RuntimeError("failed with X-Auth-Token: %s" % TOKEN)
    except RuntimeError:
        log.exception("boom")
    text = (tmp_path / "st2bridge-resultstracker.log").read_text()
    assert "boom" in text and "Traceback" in text and "mysql://root:***@h/db" in text
    assert TOKEN not in text and DB_PASSWORD not in text


def test_reload_level(tmp_path):
    conf, path = load(tmp_path, "[DEFAULT]\nlog_dir = %s\nlog_level = INFO\n" % tmp_path)
    logs.setup(conf, logs.TRACKER)
    log = logging.getLogger("st2bridge.test")
    log.debug("hidden")
    path.write_text("[DEFAULT]\nlog_dir = %s\nlog_level = DEBUG\n" % tmp_path)
    assert logs.reload_level(conf) == "DEBUG"
    log.debug("shown")
    path.write_text("[DEFAULT]\nlog_level = LOUD\n")  # a broken edit changes nothing
    assert logs.reload_level(conf) == "DEBUG"
    path.write_text("[DEFAULT]\nlog_dir = %s\nlog_level = WARNING\n" % tmp_path)
    assert logs.reload_level(conf) == "WARNING"
    log.info("hidden again")
    text = (tmp_path / "st2bridge-resultstracker.log").read_text()
    assert "hidden" not in text.replace("hidden again", "") and "hidden again" not in text
    assert "shown" in text
    assert "SIGHUP: log level changed from INFO to DEBUG" in text
    assert "SIGHUP: configuration not re-read: invalid value for [DEFAULT] log_level" in text
    assert "SIGHUP: log level changed from DEBUG to WARNING" in text


# -- a real tracker process ---------------------------------------------------


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("timed out waiting for %s" % what)


def test_tracker_at_debug_never_logs_the_token_and_sighup_changes_level(tmp_path):
    sim = engine_sim.start_in_thread(duration=1)
    try:
        ids = requests.post(
            sim.base + "/_sim/executions", json={"count": 3, "duration": 1}, timeout=5
        ).json()["ids"]
        now = time.time()
        with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
            for eid in ids:
                store.create_execution(
                    new_execution_record(
                        id=str(uuid.uuid4()),
                        workflow_name="sim.wf",
                        engine_execution_id=eid,
                        status=st.RUNNING,
                        created_at=now,
                        updated_at=now,
                        tracked=True,
                        next_poll_at=now,
                    )
                )
        conf = tmp_path / "bridge.conf"
        text = (
            "[DEFAULT]\nstate_path = %s\nlog_dir = %s/log\nlog_level = %%s\n"
            "[engine]\napi_url = %s\nauth_token = %s\n"
            "[resultstracker]\nmode = poll\nquery_interval = 0.2\nheartbeat_interval = 0.5\n"
            "[metrics]\nport = 0\n" % (tmp_path, tmp_path, sim.url, TOKEN)
        )
        conf.write_text(text % "DEBUG")
        proc = subprocess.Popen(
            [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        log = tmp_path / "log" / "st2bridge-resultstracker.log"
        try:
            wait_for(
                lambda: log.exists() and log.read_text().count("(finished by poll)") == 3,
                what="three executions finished",
            )
            conf.write_text(text % "WARNING")
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: "SIGHUP: log level changed from DEBUG to WARNING" in log.read_text(),
                what="the level change",
            )
            size = log.stat().st_size
            time.sleep(1.0)  # heartbeats and idle passes: nothing at WARNING
            assert log.stat().st_size == size
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        text = log.read_text()
        assert re.search(r"DEBUG st2bridge.engine.client \[\d+\] engine GET /executions", text)
        assert TOKEN not in text and TOKEN.encode() not in out
        assert out == b""  # with log_dir, nothing on stderr
    finally:
        sim.stop()
