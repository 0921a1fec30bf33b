"""The bridge store's versions, end to end: the real daemon refuses an old or
newer store, `st2bridge db-upgrade --target bridge` migrates it, a live
heartbeat in the service registry stops the upgrade."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from st2bridge.dbupgrade import bridge_store
from st2bridge.store import migrations, open_store
from st2bridge.store.base import Store
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture
def bridge(tmp_path):
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = http://127.0.0.1:%d/v2\n"
        "[resultstracker]\nmode = poll\n" % (tmp_path, free_port())
    )
    return conf


def old_store(path, version=1, services=()):
    """A store as st2bridge wrote it at schema version 1, with one execution."""
    conn = sqlite3.connect(path)
    conn.executescript(migrations.SQLITE_V1)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    doc = {"id": "ex-1", "workflow_name": "wf", "status": "running", "tracked": False}
    conn.execute(
        "INSERT INTO executions (id, status, workflow_name, doc) VALUES (?,?,?,?)",
        ("ex-1", "running", "wf", json.dumps(doc)),
    )
    for svc in services:
        conn.execute(
            "INSERT INTO services VALUES (?,?,?,?)",
            (svc["id"], svc["name"], svc["host"], json.dumps(svc)),
        )
    conn.commit()
    conn.close()


def cli(conf, *args):
    env = dict(os.environ)
    env.pop("ST2BRIDGE_CONFIG_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "st2bridge.cli.main", "--config-file", str(conf)] + list(args),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
    )


def daemon(conf):
    return subprocess.Popen(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(ROOT),
    )


def test_old_store_refused_by_the_daemon_then_migrated(bridge, tmp_path):
    db = tmp_path / "bridge.db"
    old_store(db)
    proc = daemon(bridge)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    line = out.strip().splitlines()[-1]
    assert line.startswith("st2bridge-resultstracker: error: store")
    assert "schema version 1, this st2bridge needs %d" % Store.SCHEMA_VERSION in line
    assert "st2bridge db-upgrade" in line
    assert "ix_services_name_host" not in _indexes(db)  # the daemon changed nothing

    check = cli(bridge, "db-upgrade", "--target", "bridge", "--check")
    assert check.returncode == 13, check.stderr
    done = cli(bridge, "db-upgrade", "--target", "bridge", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["bridge"]
    assert (report["version"], report["version_after"]) == (1, Store.SCHEMA_VERSION)
    assert "ix_services_name_host" in _indexes(db)
    with open_store("sqlite:///%s" % db) as store:
        assert store.get_execution("ex-1")["workflow_name"] == "wf"
    again = cli(bridge, "db-upgrade", "--target", "bridge")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert cli(bridge, "db-upgrade", "--target", "bridge", "--check").returncode == 0

    proc = daemon(bridge)  # now it starts, and stops cleanly
    time.sleep(3)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def test_a_store_of_a_newer_version_is_refused(bridge, tmp_path):
    old_store(tmp_path / "bridge.db", version=Store.SCHEMA_VERSION + 1)
    proc = daemon(bridge)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "written by another st2bridge version" in out.strip().splitlines()[-1]
    up = cli(bridge, "db-upgrade", "--target", "bridge")
    assert up.returncode == 2 and "newer st2bridge" in up.stderr


def test_a_live_tracker_heartbeat_refuses_a_stale_one_does_not(bridge, tmp_path):
    host = socket.gethostname()
    live = {
        "id": "t1",
        "name": "st2bridge-resultstracker",
        "host": host,
        "pid": 4242,
        "heartbeat_at": time.time() - 5,
    }
    old_store(tmp_path / "bridge.db", services=[live])
    proc = cli(bridge, "db-upgrade", "--target", "bridge")
    assert proc.returncode == 8, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "heartbeat: st2bridge-resultstracker on %s pid 4242" % host in last
    assert bridge_store.read_version("sqlite:///%s" % (tmp_path / "bridge.db")) == 1

    conn = sqlite3.connect(tmp_path / "bridge.db")
    conn.execute("UPDATE services SET doc = ?", (json.dumps(dict(live, heartbeat_at=1.0)),))
    conn.commit()
    conn.close()
    proc = cli(bridge, "db-upgrade", "--target", "bridge")
    assert proc.returncode == 0, proc.stderr


def _indexes(path):
    conn = sqlite3.connect(path)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()
