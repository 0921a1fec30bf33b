import uuid

import pytest

from st2bridge import errors
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from st2bridge.store.group_commit import GroupCommit


@pytest.fixture
def store(tmp_path, request):
    # After `backend` when a test asks for both: the store's lock is the backend's.
    if "backend" in request.fixturenames:
        request.getfixturevalue("backend")
    s = open_store("sqlite:///%s" % (tmp_path / "b.db"))
    yield s
    s.close()


def make(store, n):
    ids = []
    for _ in range(n):
        r = new_execution_record(
            id=str(uuid.uuid4()),
            workflow_name="w",
            status="running",
            engine_execution_id=str(uuid.uuid4()),
            created_at=1.0,
        )
        store.create_execution(r)
        ids.append(r["id"])
    return ids


def test_concurrent_writes_share_transactions_and_all_land(backend, store):
    """Under each backend: 40 writers released at once through its pool, its
    lock, its events and its yield."""
    ids = make(store, 40)
    group = GroupCommit(store, backend)
    pool = backend.executor(40)
    start = backend.event()
    results = {}

    def writer(i, execution_id):
        start.wait()
        results[i] = group.run(lambda: store.update_task(execution_id, None, {"id": "t%d" % i}))

    for i, x in enumerate(ids):
        pool.submit(writer, i, x)
    start.set()
    assert pool.wait(10)
    assert results == {i: True for i in range(40)}
    assert all(store.get_execution(x)["tasks"] == [{"id": "t%d" % i}] for i, x in enumerate(ids))
    assert group.writes == 40 and group.batches < 40


def test_each_writer_gets_its_own_error_and_the_others_commit(store):
    (good,) = make(store, 1)
    group = GroupCommit(store)
    with pytest.raises(errors.NotFound):
        group.run(lambda: store.update_task("missing", None, {"id": "x"}))
    assert group.run(lambda: store.update_task(good, None, {"id": "y"})) is True
    assert store.get_execution(good)["tasks"] == [{"id": "y"}]


def test_a_failed_commit_fails_every_write_in_it(store, tmp_path):
    (good,) = make(store, 1)

    class Failing:
        def transaction(self):
            raise errors.StoreUnavailable("locked")

    group = GroupCommit(Failing())
    with pytest.raises(errors.StoreUnavailable):
        group.run(lambda: store.update_task(good, None, {"id": "y"}))


def test_writes_in_one_transaction_are_one_commit(store):
    ids = make(store, 3)
    with store.transaction():
        for x in ids:
            store.update_task(x, None, {"id": "a"})
        # Readers in the same thread see the writes before the commit.
        assert store.get_execution(ids[0])["tasks"] == [{"id": "a"}]
    assert all(store.get_execution(x)["tasks"] == [{"id": "a"}] for x in ids)


def test_group_commit_under_eventlet_monkey_patched(tmp_path):
    """As in the daemon under eventlet: the backend chosen by init (patched
    threading and time), writers in a green pool."""
    import subprocess
    import sys

    code = (
        r"""
from st2bridge import concurrency
concurrency.init("eventlet")
import eventlet, uuid
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record
from st2bridge.store.group_commit import GroupCommit
store = open_store("sqlite:///%s/g.db")
ids = []
for _ in range(50):
    r = new_execution_record(id=str(uuid.uuid4()), workflow_name="w", status="running",
                             engine_execution_id=str(uuid.uuid4()), created_at=1.0)
    store.create_execution(r); ids.append(r["id"])
group = GroupCommit(store)
pool = eventlet.GreenPool(50)
res = list(pool.imap(lambda x: group.run(lambda: store.update_task(x, None, {"id": "t"})), ids))
assert res == [True] * 50, res
assert all(store.get_execution(x)["tasks"] == [{"id": "t"}] for x in ids)
print(group.batches, group.writes)
"""
        % tmp_path
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    batches, writes = map(int, out.stdout.split())
    assert writes == 50 and batches < 50
