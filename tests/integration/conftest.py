"""Fixtures that start real parts: a Mistral 23 engine of the test session's
own (own home, port and RabbitMQ vhost), and bridge configs pointing at it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mistral_local import PrivateMistral

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mistral(tmp_path_factory):
    """A running Mistral engine of this test session's own."""
    instance = PrivateMistral(tmp_path_factory.mktemp("mistral"), prefix="st2bridge-test")
    started = time.monotonic()
    if not instance.up(capture=True):
        pytest.fail("could not start Mistral:\n%s" % instance.output[-6000:])
    print("Mistral up on port %d in %.1f s" % (instance.port, time.monotonic() - started))
    yield Engine(instance.api_url, instance.home)
    instance.stop()


class Engine:
    """The test's own view of Mistral, straight over HTTP (not via the bridge)."""

    def __init__(self, api_url, home):
        self.api_url = api_url
        self.home = home

    def get(self, path, **params):
        response = requests.get(self.api_url + path, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def executions(self, workflow_name):
        return [
            e
            for e in self.get("/executions", limit=1000)["executions"]
            if e["workflow_name"] == workflow_name
        ]


class Bridge:
    """A bridge config in a temp dir, and its CLI run as a person would."""

    def __init__(self, path, api_url):
        self.dir = path
        self.conf = path / "bridge.conf"
        self.api_url = api_url
        self.write()

    def write(
        self,
        api_url=None,
        extra="",
        mode="poll",
        callback_port=None,
        callback_url=None,
        callback_extra="",
    ):
        """`extra` lines go into [resultstracker], `callback_extra` ones into [callback]."""
        callback = ""
        if callback_port:
            callback = "[callback]\nport = %d\n%s" % (callback_port, callback_extra)
            if callback_url:
                callback += "url = %s\n" % callback_url
        self.conf.write_text(
            "[DEFAULT]\nstate_path = %s\nlog_level = INFO\n"
            "[engine]\napi_url = %s\nretry_exp_msec = 100\nretry_exp_max_msec = 500\n"
            "retry_stop_max_msec = 3000\n%s"
            "[resultstracker]\nmode = %s\nquery_interval = 0.5\n%s"
            % (self.dir, api_url or self.api_url, callback, mode, extra)
        )

    def env(self):
        env = dict(os.environ, ST2BRIDGE_CONFIG_FILE=str(self.conf))
        env.pop("PYTHONPATH", None)
        return env

    def cli(self, *args, timeout=120):
        return subprocess.run(
            [sys.executable, "-m", "st2bridge.cli.main"] + [str(a) for a in args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=str(ROOT),
        )

    def get(self, execution_id):
        proc = self.cli("execution", "get", execution_id, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def records(self):
        """Every execution record in this bridge's store."""
        from st2bridge.store import open_store

        with open_store("sqlite:///%s" % (self.dir / "bridge.db")) as store:
            return store.list_executions(limit=10000)

    def start_tracker(self, *extra):
        log = open(self.dir / ("tracker-%d.log" % time.monotonic_ns()), "w")
        return subprocess.Popen(
            [sys.executable, "-m", "st2bridge.tracker.daemon", "--config-file", str(self.conf)]
            + list(extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=str(ROOT),
        )


@pytest.fixture
def bridge(tmp_path, mistral):
    return Bridge(tmp_path, mistral.api_url)


@pytest.fixture
def hybrid(bridge):
    """The bridge with a tracker in hybrid mode; with stale_after at 60 s,
    only callbacks can act within a test. `bridge.callback` is its URL."""
    port = free_port()
    bridge.write(mode="hybrid", callback_port=port, extra="stale_after = 60\n")
    tracker = start_listening_tracker(bridge, port)
    yield bridge
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0


def start_listening_tracker(bridge, port):
    """Start a tracker whose config listens on `port`; return it once its
    listener answers (bridge.callback is then the listener's URL)."""
    tracker = bridge.start_tracker()
    bridge.callback = "http://127.0.0.1:%d" % port
    wait_for("the callback listener", lambda: _answers(bridge.callback + "/v1/health"), timeout=15)
    return tracker


def _answers(url):
    try:
        requests.get(url, timeout=1)
        return True
    except requests.ConnectionError:
        return False


def wait_for(what, check, timeout=30, interval=0.2):
    """check()'s first true value, polled until `timeout`; fail otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for %s" % what)
        time.sleep(interval)


FINAL = ("succeeded", "failed", "canceled", "timeout", "abandoned")


def wait_status(bridge, execution_id, wanted=FINAL, timeout=30):
    """The execution's record once its status is one of `wanted`."""

    def reached():
        record = bridge.get(execution_id)
        return record if record["status"] in wanted else None

    return wait_for("%s to be %s" % (execution_id, wanted), reached, timeout)


# A quick two-task workflow with an input and a published output.
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
      on-success: [done]
    done:
      action: std.noop
"""


def write_workflow(tmp_path, text, name="wf.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path
