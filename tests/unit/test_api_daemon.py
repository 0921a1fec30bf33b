"""st2bridge-api as a real process with a real tracker, against the engine
simulator: the client starts and waits, the stream shows the end, the
webhook arrives signed, the CLI lists it, SIGTERM exits 0."""

import json
import signal
import subprocess
import sys
import threading

import pytest

from st2bridge.client import Client, Conflict, NotFound, Unauthorized, verify_webhook
from tests.support import engine_sim
from tests.support.api_procs import ROOT, create_key, start_api, wait_healthy
from tests.support.net import free_port
from tests.support.receiver import Receiver

pytestmark = pytest.mark.process

SECRET = "sink-secret-0123456789"
WF = "version: '2.0'\nquick:\n  input: [x]\n  tasks:\n    t:\n      action: std.noop\n"


@pytest.fixture
def setup(tmp_path, backend_name):
    sim = engine_sim.start_in_thread(duration=0.3)
    receiver = Receiver()
    port = free_port()
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nconcurrency = %s\nstate_path = %s\n[engine]\napi_url = %s\n"
        "[resultstracker]\nmode = poll\nquery_interval = 0.2\nheartbeat_interval = 0.5\n"
        "[metrics]\nport = 0\n[web]\nport = 0\n[api]\nport = %d\n"
        "[notify]\nurls = %s\nsecret = %s\n"
        % (backend_name, tmp_path, sim.url, port, receiver.url, SECRET)
    )
    key = create_key(conf)
    api = start_api(conf, tmp_path / "api.log")
    tracker = subprocess.Popen(
        [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(conf)],
        stdout=open(tmp_path / "tracker.log", "wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = "http://127.0.0.1:%d" % port
    try:
        wait_healthy(url, api)
        yield {"conf": conf, "key": key, "url": url, "api": api, "receiver": receiver}
    finally:
        for proc in (api, tracker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        receiver.close()
        sim.stop()


def cli(conf, *args):
    return subprocess.run(
        [sys.executable, "-m", "st2bridge.cli.main", "--config-file", str(conf)] + list(args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_start_wait_stream_webhook_and_stop(setup):
    client = Client(setup["url"], setup["key"])
    events = []
    follower = threading.Thread(
        target=lambda: events.extend(
            e for e in _until_end(client.stream(), "quick") if e.event != "reset"
        ),
        daemon=True,
    )
    follower.start()
    record = client.start("quick", definition=WF, input={"x": 1}, labels={"via": "client"})
    done = client.wait(record["id"], timeout=30)
    assert done["status"] == "succeeded" and done["labels"] == {"via": "client"}
    follower.join(10)
    assert [e.event for e in events if e.data["execution_id"] == record["id"]][-1] == "end"
    [(_, headers, body)] = setup["receiver"].wait_for(1)
    assert verify_webhook(SECRET, headers, body)
    assert json.loads(body)["execution"]["id"] == record["id"]
    listed = json.loads(cli(setup["conf"], "notification", "list", "--json").stdout)
    assert [(n["execution_id"], n["status"]) for n in listed] == [(record["id"], "delivered")]
    assert SECRET not in json.dumps(listed)
    services = cli(setup["conf"], "services").stdout
    assert "st2bridge-api" in services and "notifications" in services
    with pytest.raises(NotFound):
        client.get("no-such-execution")
    with pytest.raises(Conflict):
        client.resume(record["id"])
    with pytest.raises(Unauthorized):
        Client(setup["url"], "st2b_wrong").get(record["id"])
    assert cli(setup["conf"], "notification", "resend", "nope").returncode == 5
    setup["api"].send_signal(signal.SIGTERM)
    assert setup["api"].wait(30) == 0


def _until_end(stream, workflow):
    for event in stream:
        yield event
        if event.event == "end" and event.data["workflow_name"] == workflow:
            return


def test_a_taken_port_or_a_bad_config_is_one_line_and_an_exit_code(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        conf = tmp_path / "bridge.conf"
        conf.write_text(
            "[DEFAULT]\nstate_path = %s\n[api]\nport = %d\n" % (tmp_path, taken.getsockname()[1])
        )
        proc = subprocess.run(
            [sys.executable, "-m", "st2bridge.api.daemon", "--config-file", str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("st2bridge-api: error: cannot listen")
    conf.write_text("[DEFAULT]\nstate_path = %s\n[notify]\nurls = http://x/hook\n" % tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "st2bridge.api.daemon", "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "st2bridge-api: error: [notify] secret is required when [notify] urls is set"
    )


def test_sighup_reloads_and_sigterm_stops(setup):
    setup["api"].send_signal(signal.SIGHUP)
    client = Client(setup["url"], setup["key"])
    assert client.health()["status"] == "ok"
    setup["api"].send_signal(signal.SIGTERM)
    assert setup["api"].wait(30) == 0
