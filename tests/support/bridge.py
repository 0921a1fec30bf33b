"""Helpers of the integration tests: the test's own view of the engine, a
bridge config with its CLI and tracker run as processes, waiting helpers and
the quick workflow."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


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

    def __init__(self, path, api_url, concurrency="eventlet"):
        self.dir = path
        self.conf = path / "bridge.conf"
        self.api_url = api_url
        self.concurrency = concurrency  # [DEFAULT] concurrency of its tracker
        self.write()

    def write(
        self,
        api_url=None,
        extra="",
        mode="poll",
        callback_port=None,
        callback_url=None,
        callback_extra="",
        engine_extra="",
    ):
        """`extra` lines go into [resultstracker], `callback_extra` ones into
        [callback], `engine_extra` ones into [engine]."""
        callback = ""
        if callback_port:
            callback = "[callback]\nport = %d\n%s" % (callback_port, callback_extra)
            if callback_url:
                callback += "url = %s\n" % callback_url
        self.conf.write_text(
            "[DEFAULT]\nconcurrency = %s\nstate_path = %s\nlog_level = INFO\n"
            "[engine]\napi_url = %s\nretry_exp_msec = 100\nretry_exp_max_msec = 500\n"
            "retry_stop_max_msec = 3000\n%s%s"
            "[resultstracker]\nmode = %s\nquery_interval = 0.5\n%s"
            % (
                self.concurrency,
                self.dir,
                api_url or self.api_url,
                engine_extra,
                callback,
                mode,
                extra,
            )
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
