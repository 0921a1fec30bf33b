"""Store.find_ids and Store.health on every backend (the contract's
backends): ids by prefix of the bridge id or the engine execution id."""

from st2bridge import status as st
from st2bridge.store.base import new_execution_record
from tests.unit.test_store_contract import backend  # noqa: F401 (the fixture)


def rec(bridge_id, engine_id):
    return new_execution_record(
        id=bridge_id,
        engine_execution_id=engine_id,
        workflow_name="wf",
        status=st.RUNNING,
        created_at=1.0,
        updated_at=1.0,
    )


def test_find_ids_by_prefix_of_either_id(backend):  # noqa: F811
    store = backend.open()
    store.create_execution(rec("aa11-x", "ee01-m"))
    store.create_execution(rec("aa22-y", "ff02-n"))
    store.create_execution(rec("bb33-z", "aa99-o"))
    assert sorted(store.find_ids("aa1")) == [("aa11-x", "ee01-m")]
    assert sorted(store.find_ids("ff")) == [("aa22-y", "ff02-n")]
    assert sorted(store.find_ids("aa", limit=10)) == [
        ("aa11-x", "ee01-m"),
        ("aa22-y", "ff02-n"),
        ("bb33-z", "aa99-o"),
    ]
    assert len(store.find_ids("aa", limit=2)) == 2
    assert store.find_ids("zz") == []
    assert store.find_ids("a.") == []  # no pattern characters
    assert store.health()[0] is True
