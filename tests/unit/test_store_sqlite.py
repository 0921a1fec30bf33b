"""SqliteStore beyond the contract: files, locks and several real processes."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from st2bridge import status as st
from st2bridge.errors import StoreError, StoreUnavailable, StoreVersionMismatch
from st2bridge.store.base import Store, new_execution_record
from st2bridge.store.sqlite import SqliteStore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = 1_700_000_000.0

# Run by each worker process: open the store, say so, wait for "go", work,
# then write what it won as JSON.
WORKER = (
    r"""
import json, os, random, sys, time
from st2bridge.store.sqlite import SqliteStore
mode, path, owner, rundir = sys.argv[1:5]
NOW = %r
store = SqliteStore(path, busy_timeout=30)
open(os.path.join(rundir, owner + ".ready"), "w").close()
while not os.path.exists(os.path.join(rundir, "go")):
    time.sleep(0.001)
won = []
if mode == "claim":
    while True:
        batch = store.claim_due(owner, NOW, 300, 5)
        if not batch:
            break
        time.sleep(0.002)  # the polls themselves: lets the others interleave
        for record in batch:
            won.append(record["id"])
            # what a tracker does after a poll; only the lease holder may write
            assert store.update_execution(record["id"], {"next_poll_at": NOW + 1000},
                                          if_lease_owner=owner)
elif mode == "finish":
    ids = json.load(open(os.path.join(rundir, "ids.json")))
    random.Random(owner).shuffle(ids)
    for id_ in ids:
        if store.update_execution(id_, {"status": "succeeded", "finished_by": owner}):
            won.append(id_)
elif mode == "create":
    for n in range(50):
        store.create_execution({"id": "%%s-%%d" %% (owner, n), "workflow_name": owner})
        won.append(n)
store.close()
with open(os.path.join(rundir, owner + ".json"), "w") as out:
    json.dump(won, out)
"""
    % NOW
)


def run_workers(mode, path, rundir, count=4, timeout=120):
    """Start `count` processes, release them together, return {owner: won}."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    owners = ["w%d" % n for n in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, mode, str(path), owner, str(rundir)],
            env=env,
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for owner in owners
    ]
    try:
        deadline = time.monotonic() + timeout
        while not all((rundir / (o + ".ready")).exists() for o in owners):
            assert time.monotonic() < deadline, "workers did not start"
            if any(p.poll() is not None for p in procs):
                for proc in procs:  # the others wait for "go": stop them to read what was said
                    proc.kill()
                raise AssertionError([p.communicate()[1].decode() for p in procs])
            time.sleep(0.01)
        (rundir / "go").touch()
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {o: json.loads((rundir / (o + ".json")).read_text()) for o in owners}


def rec(id_, **fields):
    fields.setdefault("created_at", NOW)
    fields.setdefault("status", st.RUNNING)
    return new_execution_record(id=id_, workflow_name="wf", **fields)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "db" / "st2bridge.db"


def test_persists_across_reopen_in_wal_mode(db):
    with SqliteStore(str(db)) as store:
        record = rec(
            "e1", input={"π": 3.14159, "list": [None, 1.5]}, tracked=True, next_poll_at=NOW
        )
        store.create_execution(record)
        store.register_service({"id": "s1", "name": "tracker", "host": "h"})
    assert db.exists()  # parent directory created
    with SqliteStore(db) as store:
        assert store.get_execution("e1") == record
        assert [s["id"] for s in store.list_services()] == ["s1"]
        assert store.schema_version() == Store.SCHEMA_VERSION
    conn = sqlite3.connect(str(db))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_claims_and_lists_use_the_indexes(db):
    with SqliteStore(str(db)) as store:
        conn = store._conn
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {
            "ix_executions_status",
            "ix_executions_created_at",
            "ix_executions_workflow_name",
            "ix_executions_tracked_next_poll_at",
            "ix_executions_engine_execution_id",
        } <= names
        plan = " ".join(
            str(row)
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT doc FROM executions WHERE tracked = 1 AND "
                "next_poll_at <= 1 ORDER BY next_poll_at, id LIMIT 5"
            )
        )
        assert "ix_executions_tracked_next_poll_at" in plan


def test_a_different_schema_version_is_refused_and_left_alone(db):
    SqliteStore(str(db)).close()
    conn = sqlite3.connect(str(db))
    with conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(StoreVersionMismatch, match="st2bridge db-upgrade"):
        SqliteStore(str(db))
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == "0"
    conn.close()


def test_a_foreign_or_broken_file_is_refused(tmp_path):
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(str(foreign))
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    with pytest.raises(StoreVersionMismatch, match="not an st2bridge store"):
        SqliteStore(str(foreign))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError):
        SqliteStore(str(garbage))


def test_an_unopenable_path_is_unavailable(tmp_path):
    with pytest.raises(StoreUnavailable, match="cannot"):
        SqliteStore(str(tmp_path))  # a directory
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot"):
        SqliteStore(str(tmp_path / "afile" / "st2bridge.db"))


def test_a_locked_database_is_unavailable_and_loses_nothing(db):
    store = SqliteStore(str(db), busy_timeout=0.2)
    store.create_execution(rec("e1", tracked=True, next_poll_at=NOW))
    locker = sqlite3.connect(str(db), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute(
        "INSERT INTO services (id, name, host, doc) VALUES ('s9', 'x', 'h', ?)",
        (
            json.dumps(
                {
                    "id": "s9",
                    "name": "x",
                    "host": "h",
                    "pid": None,
                    "version": None,
                    "started_at": None,
                    "heartbeat_at": None,
                    "info": None,
                }
            ),
        ),
    )
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            store.create_execution(rec("e2"))
        assert time.monotonic() - started >= 0.15  # it waited busy_timeout first
        with pytest.raises(StoreUnavailable):
            store.update_execution("e1", {"status": st.FAILED})
        with pytest.raises(StoreUnavailable):
            store.claim_due("t1", NOW, 30, 10)
        # WAL: readers are not blocked by a writer.
        assert store.get_execution("e1")["status"] == st.RUNNING
        # A second process can still open the (existing) store.
        SqliteStore(str(db), busy_timeout=0.2).close()
    finally:
        locker.execute("COMMIT")
        locker.close()
    assert store.get_execution("e1") == rec("e1", tracked=True, next_poll_at=NOW)
    assert [s["id"] for s in store.list_services()] == ["s9"]
    store.create_execution(rec("e2"))
    assert store.update_execution("e1", {"status": st.FAILED})
    assert [r["id"] for r in store.claim_due("t1", NOW, 30, 10)] == []
    assert store.count_executions() == 2
    store.close()


def test_creating_a_store_on_a_locked_new_file_is_unavailable(db):
    db.parent.mkdir()
    locker = sqlite3.connect(str(db), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable):
            SqliteStore(str(db), busy_timeout=0.2)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    with SqliteStore(str(db)) as store:
        assert store.schema_version() == Store.SCHEMA_VERSION


def test_one_store_shared_by_threads(db):
    store = SqliteStore(str(db))
    errors = []

    def work(n):
        try:
            for i in range(25):
                store.create_execution(rec("t%d-%d" % (n, i), tracked=True, next_poll_at=NOW))
                store.claim_due("owner%d" % n, NOW, 30, 3)
                store.next_due_at()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_executions() == 200
    store.close()


def test_processes_claim_each_record_exactly_once(db, tmp_path):
    with SqliteStore(str(db)) as store:
        for n in range(300):
            store.create_execution(rec("e%03d" % n, tracked=True, next_poll_at=NOW - n))
        store.create_execution(rec("later", tracked=True, next_poll_at=NOW + 1))
    won = run_workers("claim", db, tmp_path)
    claimed = [id_ for ids in won.values() for id_ in ids]
    assert sorted(claimed) == ["e%03d" % n for n in range(300)]  # all, none twice
    assert sum(1 for ids in won.values() if ids) >= 2  # they really competed
    with SqliteStore(str(db)) as store:
        for owner, ids in won.items():
            for id_ in ids:
                assert store.get_execution(id_)["lease_owner"] == owner
        assert store.get_execution("later")["lease_owner"] is None


def test_processes_write_each_terminal_status_exactly_once(db, tmp_path):
    ids = ["e%03d" % n for n in range(200)]
    with SqliteStore(str(db)) as store:
        for id_ in ids:
            store.create_execution(rec(id_))
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    won = run_workers("finish", db, tmp_path)
    assert sorted(i for w in won.values() for i in w) == ids
    with SqliteStore(str(db)) as store:
        for owner, mine in won.items():
            for id_ in mine:
                got = store.get_execution(id_)
                assert (got["status"], got["finished_by"]) == (st.SUCCEEDED, owner)


def test_processes_can_create_the_store_together(db, tmp_path):
    won = run_workers("create", db, tmp_path)
    with SqliteStore(str(db)) as store:
        assert store.schema_version() == Store.SCHEMA_VERSION
        assert store.count_executions() == 200
        for owner in won:
            assert len(store.list_executions(workflow_name=owner, limit=None)) == 50
