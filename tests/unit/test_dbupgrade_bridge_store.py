"""The bridge store's migrations: a migrated store equals a new one."""

import sqlite3

import mongomock
import pytest

from st2bridge import errors
from st2bridge.dbupgrade import bridge_store
from st2bridge.store import migrations
from st2bridge.store.base import Store
from st2bridge.store.mongo import MongoStore
from st2bridge.store.sqlite import SqliteStore


def schema(path):
    conn = sqlite3.connect(path)
    try:
        return sorted(
            (t, n, " ".join((sql or "").replace("IF NOT EXISTS ", "").split()))
            for t, n, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name != 'sqlite_sequence'"
            )
        )
    finally:
        conn.close()


def v1_store(path):
    conn = sqlite3.connect(path)
    conn.executescript(migrations.SQLITE_V1)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.commit()
    conn.close()


def test_latest_is_the_stores_version():
    assert migrations.LATEST == Store.SCHEMA_VERSION
    assert set(migrations.SQLITE_STEPS) == set(range(2, migrations.LATEST + 1))
    assert set(migrations.MONGO_STEPS) == set(range(1, migrations.LATEST + 1))


def test_a_migrated_sqlite_store_equals_a_new_one(tmp_path):
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    v1_store(old)
    said = []
    before, after = bridge_store.migrate("sqlite:///%s" % old, lock_timeout=1, say=said.append)
    assert (before, after) == (1, migrations.LATEST)
    assert any("version 1 -> 2" in line for line in said)
    SqliteStore(new).close()
    assert schema(old) == schema(new)
    with SqliteStore(old) as store:  # the store class accepts it now
        assert store.schema_version() == Store.SCHEMA_VERSION


def test_migration_moves_each_records_tasks_to_the_task_table(tmp_path):
    import json

    path = tmp_path / "old.db"
    v1_store(path)
    tasks = [
        {"id": "t%d" % i, "name": "n%d" % i, "state": "SUCCESS", "result": [i]} for i in range(12)
    ]
    conn = sqlite3.connect(path)
    for rid, its_tasks in (("e1", tasks), ("e2", [])):
        doc = {
            "id": rid,
            "workflow_name": "w",
            "engine_execution_id": "g" + rid,
            "status": "running",
            "created_at": 1.0,
            "updated_at": 1.0,
            "tracked": True,
            "next_poll_at": 5.0,
            "output": {"x": 1},
            "tasks": its_tasks,
        }
        conn.execute(
            "INSERT INTO executions VALUES (?, ?, 'running', 'w', 1.0, 1, 5.0, NULL, NULL, ?)",
            (rid, "g" + rid, json.dumps(doc)),
        )
    conn.commit()
    conn.close()
    bridge_store.migrate("sqlite:///%s" % path, lock_timeout=1, say=lambda line: None)
    conn = sqlite3.connect(path)
    docs = [json.loads(d) for (d,) in conn.execute("SELECT doc FROM executions")]
    conn.close()
    assert all("tasks" not in d for d in docs)
    with SqliteStore(path) as store:
        assert store.get_execution("e1")["tasks"] == tasks
        assert store.get_execution("e2")["tasks"] == []
        assert store.get_execution("e1")["output"] == {"x": 1}
        # and the store goes on from there: one task changed, one appended
        assert store.update_task("e1", 3, dict(tasks[3], state="ERROR"))
        assert store.update_task("e1", None, {"id": "t12", "name": "n12"})
        after = store.get_execution("e1")["tasks"]
        assert after[3]["state"] == "ERROR" and after[12]["id"] == "t12" and len(after) == 13


def test_an_old_store_is_refused_by_the_store_class_and_left_alone(tmp_path):
    path = tmp_path / "old.db"
    v1_store(path)
    before = schema(path)
    with pytest.raises(errors.StoreVersionMismatch, match="db-upgrade"):
        SqliteStore(path)
    assert schema(path) == before


def test_a_new_store_is_created_at_the_latest_version(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "sub" / "b.db")
    assert bridge_store.read_version(url) is None
    assert bridge_store.migrate(url, lock_timeout=1, say=lambda s: None) == (
        None,
        Store.SCHEMA_VERSION,
    )
    assert bridge_store.read_version(url) == migrations.LATEST


def test_a_newer_or_foreign_store_is_refused(tmp_path):
    with pytest.raises(errors.StoreVersionMismatch, match="newer st2bridge"):
        migrations.pending(migrations.LATEST + 1)
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(errors.StoreVersionMismatch, match="not an st2bridge store"):
        bridge_store.read_version("sqlite:///%s" % path)


def test_a_locked_sqlite_store_is_reported(tmp_path):
    path = tmp_path / "old.db"
    v1_store(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(errors.UpgradeLocked):
            bridge_store.migrate("sqlite:///%s" % path, lock_timeout=0.2, say=lambda s: None)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert bridge_store.read_version("sqlite:///%s" % path) == 1


def test_mongo_store_migrated_from_version_1():
    client = mongomock.MongoClient()
    url = "mongodb://localhost/st2b"
    db = client["st2b"]
    db["meta"].insert_one({"_id": "schema_version", "value": 1})
    db["services"].insert_one(
        {
            "_id": "s1",
            "name": "st2bridge-resultstracker",
            "host": "h",
            "pid": 1,
            "heartbeat_at": 5.0,
        }
    )
    assert bridge_store.read_version(url, client=client) == 1
    assert bridge_store.migrate(url, lock_timeout=1, say=lambda s: None, client=client) == (
        1,
        migrations.LATEST,
    )
    assert "ix_name_host" in db["services"].index_information()
    assert "ix_idempotency_key" in db["executions"].index_information()
    assert db["meta"].find_one({"_id": "db_upgrade_lock"}) is None
    assert MongoStore(client=client, database="st2b").schema_version() == Store.SCHEMA_VERSION
    assert bridge_store.read_services(url, client=client)[0]["heartbeat_at"] == 5.0


def test_finished_records_leave_the_due_index_on_migration(tmp_path):
    import json

    path = tmp_path / "old.db"
    v1_store(path)
    conn = sqlite3.connect(path)
    for rid, status in (("done", "succeeded"), ("live", "running")):
        doc = {
            "id": rid,
            "engine_execution_id": "g" + rid,
            "status": status,
            "tracked": True,
            "next_poll_at": 5.0,
            "created_at": 1.0,
        }
        conn.execute(
            "INSERT INTO executions VALUES (?, ?, ?, 'w', 1.0, 1, 5.0, NULL, NULL, ?)",
            (rid, "g" + rid, status, json.dumps(doc)),
        )
    conn.commit()
    conn.close()
    bridge_store.migrate("sqlite:///%s" % path, lock_timeout=1, say=lambda line: None)
    with SqliteStore(path) as store:
        assert store.get_execution("done")["next_poll_at"] is None
        assert store.get_execution("live")["next_poll_at"] == 5.0
    client = mongomock.MongoClient()
    db = client["st2b"]
    db["meta"].insert_one({"_id": "schema_version", "value": 3})
    db["executions"].insert_many(
        [
            {"_id": "done", "status": "failed", "next_poll_at": 5.0},
            {"_id": "live", "status": "running", "next_poll_at": 5.0},
        ]
    )
    bridge_store.migrate(
        "mongodb://localhost/st2b", lock_timeout=1, say=lambda s: None, client=client
    )
    assert db["executions"].find_one({"_id": "done"})["next_poll_at"] is None
    assert db["executions"].find_one({"_id": "live"})["next_poll_at"] == 5.0


def test_a_held_mongo_lock_refuses():
    client = mongomock.MongoClient()
    db = client["st2b"]
    db["meta"].insert_one({"_id": "schema_version", "value": 1})
    db["meta"].insert_one({"_id": "db_upgrade_lock", "owner": "x", "expires_at": 4e9})
    with pytest.raises(errors.UpgradeLocked):
        bridge_store.migrate("mongodb://localhost/st2b", lock_timeout=0, say=print, client=client)
    assert db["meta"].find_one({"_id": "schema_version"})["value"] == 1


def test_same_store():
    assert bridge_store.same_store("sqlite:////a/b/../c.db", "sqlite:////a/c.db")
    assert not bridge_store.same_store("sqlite:////a/c.db", "sqlite:////a/d.db")
    assert bridge_store.same_store("mongodb://u:p@h1:27017/x", "mongodb://h1:27017/x")
    assert not bridge_store.same_store("mongodb://h1/x", "sqlite:////x")
    assert bridge_store.where("mongodb://u:secret@h1/x") == "h1/x"
