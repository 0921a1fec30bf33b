"""MongoStore while the server refuses connections (tests/faults/mongo_fault_hook.py over
mongomock):
every operation fails with StoreUnavailable, a claim whose outcome was not seen does not leave a
lease that the tracker's heartbeat renews for ever, and a callback that arrives meanwhile gets
a 503 and the poller finishes the execution once the store is back."""

import calendar
import io
import json

import mongomock
import pytest
from pymongo import errors as mongo_errors

from st2bridge import status as st
from st2bridge import workflow
from st2bridge.callbacks import webhook
from st2bridge.callbacks.app import make_app
from st2bridge.callbacks.handler import CallbackHandler
from st2bridge.concurrency import InlineExecutor
from st2bridge.engine.stub import StubEngine
from st2bridge.errors import StoreUnavailable
from st2bridge.runner import Runner
from st2bridge.store.base import new_execution_record
from st2bridge.store.mongo import MongoStore
from st2bridge.tracker.poller import Poller
from tests.faults.mongo_fault_hook import FaultyClient, Outage

T0 = float(calendar.timegm((2026, 11, 21, 12, 0, 0)))
WF = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n"


class Env:
    """Two views of one mongomock database: `direct` (never fails) and `store`
    (through the hook)."""

    def __init__(self, **outage):
        self.now = T0
        self.client = mongomock.MongoClient()
        self.outage = Outage(**dict(dict(select_timeout=0, cut_writes=0, refused=1.0), **outage))
        self.direct = MongoStore(client=self.client, database="db")
        self.store = MongoStore(client=FaultyClient(self.client, self.outage), database="db")

    def add(self, rid, **fields):
        self.direct.create_execution(
            new_execution_record(
                id=rid,
                workflow_name="wf",
                engine_execution_id="e-" + rid,
                status=st.RUNNING,
                created_at=self.now,
                tracked=True,
                next_poll_at=self.now,
                **fields,
            )
        )

    def close(self):
        self.store.close()
        self.direct.close()


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


@pytest.mark.parametrize("refused", [1.0, 0.0], ids=["AutoReconnect", "ServerSelectionTimeout"])
def test_every_operation_fails_as_store_unavailable(refused):
    env = Env(refused=refused)
    env.add("a")
    env.outage.start(60)
    calls = [
        lambda: env.store.get_execution("a"),
        lambda: env.store.list_executions(),
        lambda: env.store.update_execution("a", {"poll_failures": 1}),
        lambda: env.store.update_many([("a", {"poll_failures": 1})]),
        lambda: env.store.update_task("a", None, {"name": "t"}),
        lambda: env.store.claim_due("t1", env.now, 6, 10),
        lambda: env.store.renew_leases("t1", env.now + 6),
        lambda: env.store.release_leases("t1"),
        lambda: env.store.next_due_at(),
        lambda: env.store.count_executions(),
        lambda: env.store.heartbeat_service("s", env.now),
        lambda: env.store.list_services(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            call()
    env.outage.stop()
    assert env.store.get_execution("a")["poll_failures"] == 0  # nothing was written
    env.close()


def test_a_claim_whose_answer_was_lost_is_not_renewed_for_ever(env):
    # The server applies the claim, the connection is cut before its answer arrives: the
    # tracker never checks that execution. Its heartbeat must not keep the lease alive.
    env.add("a")
    env.outage.cut_writes = 1
    env.outage.start(60)
    with pytest.raises(StoreUnavailable):
        env.store.claim_due("t1", env.now, 6, 10)
    env.outage.stop()
    assert env.direct.get_execution("a")["lease_owner"] == "t1"  # applied, unseen
    for k in range(1, 10):  # heartbeats, 1 s apart
        env.store.renew_leases("t1", env.now + k + 6)
    later = env.now + 8
    assert [r["id"] for r in env.store.claim_due("t1", later, 6, 10)] == ["a"]


def test_a_claim_cut_half_way_leaves_no_lease_behind(env):
    # The first record is leased, the second find_one_and_update fails: the call raises, so the
    # tracker checks neither; the first one's lease must not outlive the next heartbeat.
    env.add("a")
    env.add("b")
    real = env.store._executions.find_one_and_update
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise mongo_errors.AutoReconnect("connection closed")
        return real(*args, **kwargs)

    env.store._executions.find_one_and_update = second_fails
    with pytest.raises(StoreUnavailable):
        env.store.claim_due("t1", env.now, 6, 10)
    env.store._executions.find_one_and_update = real
    env.store.renew_leases("t1", env.now + 7)
    assert sorted(r["id"] for r in env.store.claim_due("t1", env.now + 1, 6, 10)) == ["a", "b"]


def test_leases_handed_out_are_still_renewed_after_an_uncertain_claim(env):
    env.add("a")
    (held,) = env.store.claim_due("t1", env.now, 6, 10)  # being checked by t1
    env.add("b")
    env.outage.cut_writes = 1
    env.outage.start(60)
    with pytest.raises(StoreUnavailable):
        env.store.claim_due("t1", env.now + 1, 6, 10)  # b: applied, answer lost
    env.outage.stop()
    env.store.renew_leases("t1", env.now + 20)
    assert env.direct.get_execution("a")["lease_expires_at"] == env.now + 20
    assert env.direct.get_execution("b")["lease_owner"] is None


def test_callback_while_the_store_is_down_gets_503_and_the_poller_finishes_later(env):
    engine = StubEngine(clock=lambda: env.now)
    runner = Runner(
        engine,
        env.direct,
        mode="hybrid",
        callback_url="http://127.0.0.1:9101",
        stale_after=30,
        clock=lambda: env.now,
    )
    handler = CallbackHandler(
        env.store, engine, mode="hybrid", stale_after=30, clock=lambda: env.now
    )
    record = runner.start(workflow.parse(WF), "wf", {})
    (notify,) = engine.executions[record["engine_execution_id"]]["params"]["notify"]
    engine.set_state(record["engine_execution_id"], "SUCCESS", output={"x": 1})
    body = json.dumps(
        {
            "event": "WORKFLOW_SUCCEEDED",
            "id": record["engine_execution_id"],
            "state": "SUCCESS",
            "updated_at": "2026-11-21 12:00:01",
        }
    ).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/callbacks/mistral/" + record["id"],
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_X_ST2BRIDGE_SECRET": notify["headers"][webhook.SECRET_HEADER],
    }
    seen = {}
    env.outage.start(60)
    answer = b"".join(make_app(handler)(environ, lambda status, headers: seen.update(s=status)))
    env.outage.stop()
    assert seen["s"].startswith("503") and json.loads(answer) == {"error": "store unavailable"}
    assert env.direct.get_execution(record["id"])["status"] == st.RUNNING
    poller = Poller(
        engine, env.store, InlineExecutor(10), owner="t1", query_interval=5.0, clock=lambda: env.now
    )
    env.now += 31  # silent for stale_after: polled
    poller.tick(env.now)
    final = env.direct.get_execution(record["id"])
    assert (final["status"], final["output"], final["finished_by"]) == (
        st.SUCCEEDED,
        {"x": 1},
        "poll",
    )
