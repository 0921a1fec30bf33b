"""st2bridge-api on a real Mistral, with a real tracker (hybrid: the engine's
callbacks end the executions), as processes.

- a start through the API whose answer is dropped is retried by the client
  with its idempotency key: one engine execution; followed on the stream;
  the signed webhook reaches a receiver of the test;
- the API and the tracker are killed (-9) between an execution's end and the
  delivery of its result: once they are back, it is delivered, once;
- a receiver that is down for a minute gets the result afterwards (short
  back-off in this config, so the test waits the minute and little more).
The tests share one bridge and run in file order (the minute overlaps them).
"""

import json
import signal
import threading
import time
import uuid

import pytest

from st2bridge.client import Client, verify_webhook
from tests.support.api_procs import create_key, start_api, wait_healthy
from tests.support.bridge import Bridge, start_listening_tracker, wait_for
from tests.support.dropping_proxy import DroppingProxy
from tests.support.net import free_port
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

SECRET = "integration-sink-secret"
DOWN_FOR = 60.0
QUICK = """version: '2.0'
{name}:
  input: [who]
  output:
    greeting: <% $.greeting %>
  tasks:
    greet:
      action: std.echo output="hi <% $.who %>"
      publish:
        greeting: <% task().result %>
"""
SLEEPY = """version: '2.0'
{name}:
  tasks:
    nap:
      action: std.sleep seconds=3
"""


class Env:
    """One bridge: a hybrid tracker, st2bridge-api, a key and a receiver."""

    def __init__(self, path, mistral):
        self.dir = path
        self.bridge = Bridge(path, mistral.api_url)
        self.callback_port = free_port()
        self.api_port = free_port()
        self.bridge.write(
            mode="hybrid", callback_port=self.callback_port, extra="stale_after = 60\n"
        )
        with open(self.bridge.conf, "a") as conf:
            conf.write(
                "[metrics]\nport = 0\n[web]\nport = 0\n[api]\nport = %d\n"
                "[notify]\nretry_first_seconds = 0.5\nretry_max_seconds = 2\n"
                "lease_seconds = 2\ndeadline_seconds = 600\n" % self.api_port
            )
        self.url = "http://127.0.0.1:%d" % self.api_port
        self.key = create_key(self.bridge.conf)
        self.client = Client(self.url, self.key)
        self.receiver = Receiver()
        self.tracker = self.api = None

    def start_tracker(self):
        self.tracker = start_listening_tracker(self.bridge, self.callback_port)

    def start_api(self):
        self.api = start_api(self.bridge.conf, self.dir / "api.log")
        wait_healthy(self.url, self.api)

    def sink(self, receiver=None, path="/hook"):
        url = (receiver or self.receiver).url.rsplit("/", 1)[0] + path
        return [{"url": url, "secret": SECRET}]

    def stop(self):
        for proc in (self.api, self.tracker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        self.receiver.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory, mistral):
    e = Env(tmp_path_factory.mktemp("api"), mistral)
    e.mistral = mistral
    e.start_tracker()
    e.start_api()
    yield e
    e.stop()


def name(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def deliveries(receiver, execution_id):
    return [
        (headers, body)
        for _, headers, body in receiver.requests
        if json.loads(body)["execution"]["id"] == execution_id
    ]


# The receiver that is down for a minute: a port nobody listens on yet.
DOWN = {}


def test_a_receiver_down_for_a_minute_first_misses_the_result(env):
    DOWN["port"] = free_port()
    sink = [{"url": "http://127.0.0.1:%d/late" % DOWN["port"], "secret": SECRET}]
    wf = name("api_down")
    record = env.client.start(wf, definition=QUICK.format(name=wf), input={"who": "x"}, notify=sink)
    DOWN["id"] = record["id"]
    assert env.client.wait(record["id"], timeout=60)["status"] == "succeeded"

    def failed_once():
        listed = env.bridge.cli("notification", "list", "--execution", record["id"], "--json")
        rows = json.loads(listed.stdout or "[]")
        return rows and rows[0]["attempts"] >= 1 and rows[0]["status"] == "pending" and rows

    rows = wait_for("a failed delivery to the receiver that is down", failed_once, timeout=30)
    assert "ConnectionError" in rows[0]["last_error"]
    DOWN["since"] = time.monotonic()


def test_start_retried_after_a_dropped_answer_one_execution_stream_and_webhook(env):
    proxy = DroppingProxy(env.url, drop_method="POST", drop_path="/v1/executions", drops=1)
    try:
        through = Client(proxy.url, env.key, timeout=60)
        wf = name("api_drop")
        seen = []

        def follow():
            for event in env.client.stream(idle=60):
                if event.data.get("workflow_name") == wf:
                    seen.append(event)
                    if event.event == "end":
                        return

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        time.sleep(0.5)  # the stream is open before the start
        record = through.start(
            wf,
            definition=QUICK.format(name=wf),
            input={"who": "platform"},
            notify=env.sink(),
            labels={"test": "drop"},
            idempotency_key="drop-" + wf,
        )
        assert proxy.count("POST", "/v1/executions") == 2  # the first answer was dropped
    finally:
        proxy.close()
    assert len(env.mistral.executions(wf)) == 1
    done = env.client.wait(record["id"], timeout=60)
    assert done["status"] == "succeeded" and done["output"] == {"greeting": "hi platform"}
    assert done["finished_by"] == "callback" and done["started_by"] == "ci"
    follower.join(20)
    assert [e.event for e in seen][0] == "created" and seen[-1].event == "end"
    assert [e.id for e in seen] == sorted(e.id for e in seen)
    wait_for("the webhook", lambda: deliveries(env.receiver, record["id"]), timeout=20)
    [(headers, body)] = deliveries(env.receiver, record["id"])
    assert verify_webhook(SECRET, headers, body)
    sent = json.loads(body)
    assert sent["event"] == "end" and sent["execution"]["output"] == {"greeting": "hi platform"}
    listed = env.client.list(labels={"test": "drop"})[0]
    assert [r["id"] for r in listed] == [record["id"]]
    # the workflow is registered now: a start by its name alone
    again = env.client.start(wf, input={"who": "by name"}, env={"origin": "test"})
    done = env.client.wait(again["id"], timeout=60)
    assert done["status"] == "succeeded" and done["output"] == {"greeting": "hi by name"}
    engine_side = env.mistral.get("/executions/" + done["engine_execution_id"])
    assert json.loads(engine_side["params"])["env"]["origin"] == "test"
    # and in a namespace of its own
    ns = env.client.start(
        wf, definition=QUICK.format(name=wf), input={"who": "ns"}, namespace="api-" + wf
    )
    done = env.client.wait(ns["id"], timeout=60)
    assert done["status"] == "succeeded" and done["namespace"] == "api-" + wf
    engine_side = env.mistral.get("/executions/" + done["engine_execution_id"])
    assert engine_side["workflow_namespace"] == "api-" + wf


def test_kill_9_of_tracker_and_api_between_the_end_and_its_delivery(env):
    wf = name("api_kill")
    record = env.client.start(wf, definition=SLEEPY.format(name=wf), notify=env.sink(path="/k"))
    env.api.send_signal(signal.SIGKILL)
    env.api.wait()

    def ended():
        return [r for r in env.bridge.records() if r["id"] == record["id"]][0]["status"] == (
            "succeeded"
        )

    wait_for("the end recorded by the tracker", ended, timeout=60)
    env.tracker.send_signal(signal.SIGKILL)
    env.tracker.wait()
    assert not deliveries(env.receiver, record["id"])  # nobody was there to send it
    env.start_tracker()
    env.start_api()
    wait_for("the webhook after the restart", lambda: deliveries(env.receiver, record["id"]), 30)
    time.sleep(3)  # a second delivery would come within a lease
    assert len(deliveries(env.receiver, record["id"])) == 1


def test_the_receiver_that_was_down_gets_the_result_afterwards(env):
    wait = DOWN_FOR - (time.monotonic() - DOWN["since"])
    if wait > 0:
        time.sleep(wait)
    late = Receiver(port=DOWN["port"])
    try:
        wait_for("the late delivery", lambda: deliveries(late, DOWN["id"]), timeout=15)
        [(headers, body)] = deliveries(late, DOWN["id"])
        assert verify_webhook(SECRET, headers, body)
        assert json.loads(body)["execution"]["status"] == "succeeded"
    finally:
        late.close()
    listed = env.bridge.cli("notification", "list", "--execution", DOWN["id"], "--json")
    [row] = json.loads(listed.stdout)
    assert row["status"] == "delivered" and row["attempts"] > 3
