"""st2bridge.client against a real st2bridge-api process (the simulator as
engine, no tracker): errors map to the client's classes, paging, idle
streams, wait() with a timeout, and an end written while wait() listens."""

import threading
import time

import pytest

from st2bridge import status as st
from st2bridge.client import BadRequest, Client, Forbidden, NotFound, WaitTimeout
from st2bridge.store.sqlite import SqliteStore
from tests.support import engine_sim
from tests.support.api_procs import create_key, start_api, wait_healthy
from tests.support.net import free_port

pytestmark = pytest.mark.process

WF = "version: '2.0'\nclient_wf:\n  tasks:\n    t:\n      action: std.noop\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    sim = engine_sim.start_in_thread(duration=600)
    port = free_port()
    conf = tmp / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = %s\n[resultstracker]\nmode = poll\n"
        "[api]\nport = %d\nstream_keepalive = 0.5\n" % (tmp, sim.url, port)
    )
    keys = create_key(conf, "rw"), create_key(conf, "ro", read_only=True)
    proc = start_api(conf, tmp / "api.log")
    url = "http://127.0.0.1:%d" % port
    try:
        wait_healthy(url, proc)
        yield {"url": url, "keys": keys, "db": str(tmp / "bridge.db")}
    finally:
        proc.terminate()
        proc.wait(30)
        sim.stop()


def test_errors_are_the_clients_classes(api):
    rw, ro = (Client(api["url"], k) for k in api["keys"])
    with pytest.raises(BadRequest) as bad:
        rw.start("client_wf", definition=WF, input={"nope": 1})
    assert bad.value.status == 400 and bad.value.exit_code == 2
    assert "unknown input" in bad.value.message
    with pytest.raises(Forbidden):
        ro.start("client_wf", definition=WF)
    with pytest.raises(NotFound):
        ro.get("no-such-id")


def test_pages_and_iter(api):
    client = Client(api["url"], api["keys"][0])
    ids = {client.start("client_wf", definition=WF, labels={"batch": "p"})["id"] for _ in range(5)}
    page, marker = client.list(labels={"batch": "p"}, limit=2)
    assert len(page) == 2 and marker == page[-1]["id"]
    assert {r["id"] for r in client.iter(labels={"batch": "p"}, limit=2)} == ids


def test_wait_times_out_and_sees_an_end_written_meanwhile(api):
    client = Client(api["url"], api["keys"][0])
    record = client.start("client_wf", definition=WF)
    with pytest.raises(WaitTimeout):
        client.wait(record["id"], timeout=1.0, poll=0.3)

    def finish():
        time.sleep(1.0)
        with SqliteStore(api["db"]) as store:  # as a tracker would
            store.update_execution(record["id"], {"status": st.SUCCEEDED, "output": {"ok": 1}})

    threading.Thread(target=finish).start()
    started = time.monotonic()
    done = client.wait(record["id"][:8], timeout=20, poll=30)  # the stream, not polling
    assert done["status"] == st.SUCCEEDED and done["output"] == {"ok": 1}
    assert time.monotonic() - started < 10


def test_an_idle_stream_ends_after_idle_seconds(api):
    client = Client(api["url"], api["keys"][1])
    started = time.monotonic()
    assert [e for e in client.stream(idle=1.0) if e.event == "end"] == []
    assert time.monotonic() - started < 10
