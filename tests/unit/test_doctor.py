"""`st2bridge doctor` against the engine simulator and a real store: each
check's verdict, its fix, and the exit code. The callback self-test on a real
Mistral: tests/integration/test_doctor_real.py."""

import json
import time

import pytest

from st2bridge import registry
from st2bridge.cli import main as cli
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from tests.support import engine_sim
from tests.support.net import free_port

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def sim():
    server = engine_sim.start_in_thread(duration=1)
    yield server
    server.stop()


def write(tmp_path, api_url, extra=""):
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = %s\nconnect_timeout = 2\n"
        "[resultstracker]\nmode = poll\n%s" % (tmp_path, api_url, extra)
    )
    return conf


def doctor(conf, capsys, *extra):
    code = cli.main(["--config-file", str(conf), "doctor", "--json", *extra])
    out = capsys.readouterr().out
    result = json.loads(out)
    return code, {row["check"]: row for row in result["checks"]}, result["ok"]


def alive_tracker(tmp_path):
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        store.register_service(
            registry.service_record("st2bridge-resultstracker", "t1", time.time())
        )


def test_all_well(tmp_path, sim, capsys):
    conf = write(tmp_path, sim.url)
    alive_tracker(tmp_path)
    code, rows, ok = doctor(conf, capsys)
    assert (code, ok) == (0, True), rows
    assert rows["config"]["state"] == "ok" and str(conf) in rows["config"]["detail"]
    assert rows["store"]["detail"].startswith("sqlite store reachable, writable, schema version")
    assert rows["engine"]["state"] == "ok"
    assert rows["callbacks"]["state"] == "skipped"  # poll mode uses none
    assert rows["trackers"]["detail"] == "1 alive"
    assert rows["stuck"]["state"] == "ok"


def test_problems_each_with_a_fix_and_exit_1(tmp_path, sim, capsys):
    conf = write(tmp_path, sim.url)
    with open_store("sqlite:///%s" % (tmp_path / "bridge.db")) as store:
        store.create_execution(
            new_execution_record(
                id="x1",
                workflow_name="wf",
                engine_execution_id="e1",
                status="running",
                created_at=1.0,
                stuck={"signature": "lost_action", "since": 1.0},
            )
        )
    code, rows, ok = doctor(conf, capsys)
    assert (code, ok) == (1, False)
    assert rows["trackers"]["state"] == "FAIL"
    assert "st2bridge-resultstracker" in rows["trackers"]["fix"]
    assert rows["stuck"]["detail"] == "flagged stuck: 1 lost_action"
    assert "execution list --stuck" in rows["stuck"]["fix"]
    # The text form ends with the fixes.
    cli.main(["--config-file", str(conf), "doctor"])
    text = capsys.readouterr().out
    assert "to fix:" in text and "problems found" in text


def test_engine_down_fails_fast_with_a_fix(tmp_path, capsys):
    conf = write(tmp_path, "http://127.0.0.1:%d/v2" % free_port())
    alive_tracker(tmp_path)
    started = time.monotonic()
    code, rows, ok = doctor(conf, capsys)
    assert time.monotonic() - started < 10
    assert code == 1 and rows["engine"]["state"] == "FAIL"
    assert "api_url" in rows["engine"]["fix"]
    assert "clock" not in rows and "callbacks" not in rows  # they need the engine


def test_a_bad_config_is_the_first_finding(tmp_path, capsys):
    conf = tmp_path / "bridge.conf"
    conf.write_text("[resultstracker]\nquery_interval = soon\n")
    code, rows, ok = doctor(conf, capsys)
    assert code == 1 and list(rows) == ["config"]
    assert "query_interval" in rows["config"]["detail"]


def test_a_store_of_another_version_points_at_db_upgrade(tmp_path, sim, capsys):
    import sqlite3

    conf = write(tmp_path, sim.url)
    open_store("sqlite:///%s" % (tmp_path / "bridge.db")).close()
    db = sqlite3.connect(tmp_path / "bridge.db")
    with db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    code, rows, ok = doctor(conf, capsys)
    assert code == 1 and rows["store"]["state"] == "FAIL"
    assert "db-upgrade" in rows["store"]["fix"]
