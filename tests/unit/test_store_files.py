"""The SQLite store's files (issue 16 #8, #9; issue 15 #2, #4, #6): created
private and owned by the state directory's owner, checkpointed, watched for
being replaced under a running process, checked for corruption, and a store
that cannot be written refused at once."""

import os
import pathlib
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from st2bridge import errors
from st2bridge import status as st
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from st2bridge.store.sqlite import SqliteStore

NOW = 1_700_000_000.0


def rec(i, **kw):
    fields = dict(
        id="e%d" % i,
        engine_execution_id="m%d" % i,
        workflow_name="wf",
        status=st.RUNNING,
        created_at=NOW + i,
        updated_at=NOW + i,
    )
    fields.update(kw)
    return new_execution_record(**fields)


def test_a_new_store_is_private(tmp_path):
    path = tmp_path / "bridge.db"
    SqliteStore(str(path)).close()
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_log_files_are_private_and_the_service_users(shared_dir):
    import logging

    from st2bridge import logs

    logs_dir = shared_dir / "log"
    logs_dir.mkdir()
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() == 0:
        os.chown(logs_dir, nobody.pw_uid, nobody.pw_gid)
    handler = logs.PrivateFileHandler(str(logs_dir / "st2bridge.log"), encoding="utf-8")
    handler.emit(logging.makeLogRecord({"msg": "hello"}))
    handler.close()
    info = os.stat(logs_dir / "st2bridge.log")
    assert info.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)


def test_reads_never_create_a_store(tmp_path):
    path = tmp_path / "state" / "bridge.db"
    with pytest.raises(errors.StoreUnavailable, match="no SQLite store at .*nothing has been"):
        open_store("sqlite:///%s" % path, create=False)
    assert not path.exists() and not path.parent.exists()
    SqliteStore(str(path)).close()
    with open_store("sqlite:///%s" % path, create=False) as store:
        assert store.list_executions() == []


def test_an_empty_file_is_not_made_a_store_by_a_read(tmp_path):
    path = tmp_path / "bridge.db"
    path.write_bytes(b"")
    with pytest.raises(errors.StoreUnavailable, match="is empty"):
        SqliteStore(str(path), create=False)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_checkpoints_copy_the_log_into_the_store_file(tmp_path):
    """Before: a small store lived in its -wal file alone while the tracker ran."""
    path = tmp_path / "bridge.db"
    store = SqliteStore(str(path), checkpoint_interval=0.0, checkpoint_wal_mb=0.01)
    for i in range(40):
        store.create_execution(rec(i, input={"pad": "x" * 400}))
    assert store.checkpoints >= 1
    # A copy of the store file alone (no -wal) holds the records.
    shutil.copy(path, tmp_path / "copy.db")
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] >= 30
    store.close()


def test_checkpoint_by_time(tmp_path):
    clock = [0.0]
    store = SqliteStore(str(tmp_path / "b.db"), checkpoint_interval=60, checkpoint_wal_mb=0)
    store._checkpoints.clock = lambda: clock[0]
    store._checkpoints.last_at = 0.0
    store.create_execution(rec(1))
    assert store.checkpoints == 0
    clock[0] = 61.0
    store.create_execution(rec(2))
    assert store.checkpoints == 1
    store.close()


@pytest.mark.parametrize("how", ["delete wal and shm", "replace the file", "rename the file"])
def test_a_store_replaced_under_a_process_stops_it_writing(tmp_path, how):
    path = tmp_path / "bridge.db"
    store = SqliteStore(str(path))
    store.create_execution(rec(1))
    if how == "delete wal and shm":
        os.unlink(str(path) + "-wal")
        os.unlink(str(path) + "-shm")
    elif how == "replace the file":
        shutil.copy(path, tmp_path / "new.db")
        os.replace(tmp_path / "new.db", path)
    else:
        os.rename(path, tmp_path / "moved.db")
    with pytest.raises(errors.StoreLost, match="under this process; it stops writing"):
        store.create_execution(rec(2))
    # Sticky: nothing is written or read any more, and health says why.
    with pytest.raises(errors.StoreLost):
        store.get_execution("e1")
    ok, detail = store.health()
    assert not ok and "under this process" in detail
    assert errors.StoreLost.exit_code == errors.EXIT_STORE_UNAVAILABLE
    store.close()


@pytest.mark.process
def test_the_records_of_others_survive_a_lost_process(tmp_path):
    """Before: after the -wal/-shm were deleted, the tracker's last close
    copied its old log over the store and erased what others wrote."""
    path = tmp_path / "bridge.db"
    script = (
        "import os, sys\n"
        "from st2bridge.store.sqlite import SqliteStore\n"
        "from st2bridge.store.base import new_execution_record as r\n"
        "from st2bridge import errors\n"
        "s = SqliteStore(sys.argv[1], checkpoint_interval=0, checkpoint_wal_mb=0)\n"
        "s.create_execution(r(id='old', engine_execution_id='m-old', status='running'))\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    s.update_execution('old', {'status': 'failed'})\n"
        "except errors.StoreLost as exc:\n"
        "    print('lost', flush=True)\n"
        "s.close()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.unlink(str(path) + "-wal")
        os.unlink(str(path) + "-shm")
        with SqliteStore(str(path)) as other:
            other.create_execution(rec(7))
            other.create_execution(rec(8))
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "lost"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with SqliteStore(str(path)) as store:
        assert {r["id"] for r in store.list_executions()} >= {"e7", "e8"}


def test_a_corrupted_store_is_unhealthy(tmp_path):
    path = tmp_path / "bridge.db"
    with SqliteStore(str(path)) as store:
        for i in range(200):
            store.create_execution(rec(i, input={"pad": "y" * 500}))
        assert store.health() == (True, "integrity ok")
    size = os.path.getsize(path)
    page = 4096
    with open(path, "r+b") as f:  # scribble over the headers of pages past the schema's
        for offset in range(size // 2 // page * page, size, page):
            f.seek(offset)
            f.write(b"\xff" * 64)
    with SqliteStore(str(path), create=False) as store:
        ok, detail = store.health()
    assert not ok and detail


@pytest.fixture
def shared_dir():
    """A directory other users can reach (tmp_path's parents are private)."""
    path = tempfile.mkdtemp(prefix="st2bridge-test-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_root_creates_the_store_for_the_owner_of_the_state_directory(shared_dir):
    """issue 15 #2: `st2bridge db-upgrade` run as root left a root-owned store
    that the service user could not write."""
    nobody = pwd.getpwnam("nobody")
    state = shared_dir / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    SqliteStore(str(state / "bridge.db")).close()
    for name in os.listdir(state):
        info = os.stat(state / name)
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid), name


@pytest.mark.process
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_store_the_process_cannot_write_is_one_line_at_open(shared_dir):
    """issue 16 #9: a read-only store failed only at the first write, after
    the daemon's listeners were up."""
    path = shared_dir / "bridge.db"
    SqliteStore(str(path)).close()
    os.chmod(shared_dir, 0o777)  # -wal and -shm can be made: only the store is read-only
    os.chmod(path, 0o644)
    script = (
        "import sys\nfrom st2bridge.store.sqlite import SqliteStore\n"
        "from st2bridge import errors\n"
        "try:\n    SqliteStore(sys.argv[1])\nexcept errors.StoreError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    proc = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(
            os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        ),
    )
    assert proc.stdout.startswith("StoreUnavailable SQLite store %s " % path), proc.stderr
    assert "user nobody cannot write it (owner root" in proc.stdout or "read-only" in proc.stdout


def test_health_endpoint_and_services_show_a_broken_store_down(tmp_path, monkeypatch):
    import io
    import json

    from st2bridge import config
    from st2bridge.callbacks.app import make_app
    from st2bridge.callbacks.handler import CallbackHandler
    from st2bridge.cli import services

    store = SqliteStore(str(tmp_path / "bridge.db"))
    app = make_app(CallbackHandler(store, engine=None))

    def health():
        seen = {}
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/health", "wsgi.input": io.BytesIO()}
        body = b"".join(app(environ, lambda status, headers: seen.update(status=status)))
        return int(seen["status"].split()[0]), json.loads(body)

    assert health()[0] == 200
    broken = (False, "database disk image is malformed")
    monkeypatch.setattr(SqliteStore, "health", lambda self: broken)
    status, answer = health()
    assert status == 503 and answer["status"] == "down" and answer["store"] == broken[1]
    path = tmp_path / "bridge.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = http://127.0.0.1:9/v2\n"
        "connect_timeout = 0.2\ninteractive_retry_seconds = 0\n[resultstracker]\nmode = poll\n"
        % tmp_path
    )
    rows = services.collect(config.load(["--config-file", str(path)]))
    (row,) = [r for r in rows if r["name"] == "store"]
    assert row["state"] == "down" and row["detail"] == broken[1]
    store.close()
