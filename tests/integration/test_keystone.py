"""The bridge in front of a Mistral that runs behind a real Keystone.

Keystone 30 (tools/keystone_local.py: SQLite, Fernet tokens living 120 s)
and a Mistral 23 of this module's own with `[pecan] auth_enable = True`
(keystonemiddleware). The bridge uses `[engine] auth_type = keystone`.
Workflows that outlast the token are started, tracked by callback and by
poll (trackers as real processes), waited on, cancelled and re-run after
every token they started with has expired, and no 401 reaches the user: the
prior art's long workflows failed once their token expired (StackStorm
#3666, #4012) and its callbacks were lost on 401 (#4416). The callbacks
carry the per-execution secret, not a Keystone token: they are checked to
arrive after the token has expired.

About three and a half minutes (two token lifetimes would be longer): deselect
with `-m 'not keystone'`.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.engine.auth import KeystoneTokens
from tests.integration.conftest import engine_database
from tests.support.bridge import ROOT, Bridge, start_listening_tracker, wait_for, write_workflow
from tests.support.net import free_port
from tools.keystone_local import PrivateKeystone
from tools.mistral_local import PrivateMistral

pytestmark = [pytest.mark.integration, pytest.mark.keystone]

TOKEN_LIFETIME = 120  # Keystone's [token] expiration, seconds
SLEEP = 140  # the long workflows outlast the token

SLEEPER = """version: '2.0'
{name}:
  input: [seconds]
  output:
    slept: <% $.seconds %>
  tasks:
    nap:
      action: std.sleep seconds=<% $.seconds %>
"""

# Its only task fails the first time (the service answers 503), then works.
FLAKY = """version: '2.0'
{name}:
  input: [url]
  output:
    body: <% $.body %>
  tasks:
    fetch:
      action: std.http url=<% $.url %>
      publish:
        body: <% task().result.content %>
"""


class Cloud:
    def __init__(self, keystone, mistral):
        self.keystone, self.mistral = keystone, mistral
        self.auth_url, self.api_url = keystone.url, mistral.api_url

    def token(self, user="st2bridge"):
        """A fresh token of a Keystone user, for the test's own look at the engine."""
        account = self.keystone.user(user)
        domain = {"id": "default"}
        identity = {"name": user, "domain": domain, "password": account["password"]}
        body = {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": identity}},
                "scope": {"project": {"name": account["project"], "domain": domain}},
            }
        }
        answer = requests.post(self.auth_url + "/auth/tokens", json=body, timeout=30)
        answer.raise_for_status()
        return answer.headers["X-Subject-Token"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """Keystone, then a Mistral that checks every request's token with it."""
    if sys.version_info < (3, 11) and not os.environ.get("CI"):
        pytest.skip("Keystone 30 needs Python 3.11 or newer")
    mistral = PrivateMistral(
        tmp_path_factory.mktemp("mistral-auth"),
        db=engine_database(),  # as the session's engine: SQLite loses writes under load
        prefix="st2bridge-test-ks",
        keystone_home=tmp_path_factory.mktemp("keystone"),
    )
    keystone = PrivateKeystone(
        mistral.keystone_home, token_expiration=TOKEN_LIFETIME, mistral_url=mistral.api_url
    )
    started = time.monotonic()
    try:
        if not keystone.up(capture=True):
            pytest.fail("could not start Keystone:\n%s" % keystone.output[-6000:])
        print("Keystone up on port %d in %.1f s" % (keystone.port, time.monotonic() - started))
        if not mistral.up(capture=True):
            pytest.fail("could not start Mistral with Keystone:\n%s" % mistral.output[-6000:])
        print("Mistral (auth, %s) up in %.1f s in all" % (mistral.db, time.monotonic() - started))
        yield Cloud(keystone, mistral)
    finally:
        mistral.stop()
        keystone.stop()


class KeystoneBridge(Bridge):
    """A bridge config whose engine requests carry the `st2bridge` user's tokens."""

    def __init__(self, path, cloud):
        self.cloud = cloud
        path.mkdir()
        super().__init__(path, cloud.api_url)

    def write(self, *args, **kwargs):
        super().write(*args, **kwargs)
        account = self.cloud.keystone.user("st2bridge")
        auth = (
            "[engine]\nauth_type = keystone\nauth_url = %s\nusername = st2bridge\n"
            "password = %s\nproject_name = %s\n"
            % (self.cloud.auth_url, account["password"], account["project"])
        )
        self.conf.write_text(self.conf.read_text().replace("[engine]\n", auth, 1))
        self.conf.chmod(0o600)

    def record(self, execution_id):
        """The execution's record, straight from the store (no CLI, no Keystone)."""
        return next(r for r in self.records() if r["id"] == execution_id)


def wait_record(bridge, execution_id, wanted, timeout):
    def reached():
        record = bridge.record(execution_id)
        return record if record["status"] in wanted else None

    return wait_for("%s to be %s" % (execution_id, wanted), reached, timeout, interval=1)


def cli_ok(bridge, *args):
    proc = bridge.cli(*args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert "HTTP 401" not in proc.stderr, proc.stderr
    return proc.stdout


def start_cli(bridge, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "st2bridge.cli.main"] + [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bridge.env(),
        cwd=str(ROOT),
    )


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (proc.args, out, err)
    assert "HTTP 401" not in err, err
    return out


class Flaky(BaseHTTPRequestHandler):
    """503 on the first request, 200 on every later one."""

    calls = 0

    def do_GET(self):
        type(self).calls += 1
        ok = type(self).calls > 1
        body = json.dumps({"ok": ok}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/status" % server.server_port
    server.shutdown()


def stop(tracker):
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0


def test_mistral_demands_a_token_and_a_wrong_password_fails_in_one_line(cloud, tmp_path):
    answer = requests.get(cloud.api_url + "/workflows", timeout=30)
    assert answer.status_code == 401
    answer = requests.get(
        cloud.api_url + "/workflows", headers={"X-Auth-Token": cloud.token()}, timeout=30
    )
    assert answer.status_code == 200

    bridge = KeystoneBridge(tmp_path / "bridge", cloud)
    bridge.conf.write_text(
        bridge.conf.read_text().replace(
            "password = %s" % cloud.keystone.user("st2bridge")["password"], "password = wrong"
        )
    )
    name = "sleeper_%s" % uuid.uuid4().hex[:8]
    path = write_workflow(tmp_path, SLEEPER.format(name=name))
    proc = bridge.cli("run", path, "-i", "seconds=0")
    assert proc.returncode == 6, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        "st2bridge: error: Keystone at %s refused the credentials of user st2bridge (HTTP 401)"
        % cloud.auth_url
    ]


def test_workflows_outlive_their_tokens(cloud, tmp_path, flaky_url):
    calls = KeystoneBridge(tmp_path / "callback", cloud)
    port = free_port()
    # stale_after: only callbacks finish its executions within the test.
    calls.write(mode="hybrid", callback_port=port, extra="stale_after = 600\n")
    polls = KeystoneBridge(tmp_path / "poll", cloud)
    polls.write(mode="poll")
    name = "sleeper_%s" % uuid.uuid4().hex[:8]
    sleeper = write_workflow(tmp_path, SLEEPER.format(name=name), "sleeper.yaml")
    flaky = write_workflow(tmp_path, FLAKY.format(name="flaky_" + name[8:]), "flaky.yaml")
    # A token provider whose clock is behind Keystone's: only a 401 makes it renew.
    lagging = KeystoneTokens(
        cloud.auth_url,
        "st2bridge",
        cloud.keystone.user("st2bridge")["password"],
        "st2bridge",
        clock=lambda: time.time() - 3600,
    )
    lagging_engine = MistralClient(
        cloud.api_url, retry=RetryPolicy(stop_max_msec=0), token_provider=lagging
    )
    assert lagging_engine.ping()  # keystonemiddleware has validated (and cached) its token
    trackers, waiting = [], None
    try:
        trackers.append(start_listening_tracker(calls, port))
        trackers.append(polls.start_tracker())
        seconds = "seconds=%d" % SLEEP
        by_callback = cli_ok(calls, "run", sleeper, "-i", seconds).strip()  # registers it
        started = time.time()  # every token issued so far expires before started + 120
        # The others at once (a command costs seconds on a busy machine).
        waiting = start_cli(polls, "run", sleeper, "-i", seconds, "--wait", "--json")
        by_poll, to_cancel, to_rerun = [
            finish(proc).strip()
            for proc in [
                start_cli(polls, "run", sleeper, "-i", seconds),
                start_cli(calls, "run", sleeper, "-i", "seconds=600"),
                start_cli(calls, "run", flaky, "-i", "url=" + flaky_url),
            ]
        ]
        failed = wait_record(calls, to_rerun, ["failed"], timeout=60)
        assert failed["finished_by"] == "callback"

        time.sleep(max(0.0, started + TOKEN_LIFETIME + 3 - time.time()))
        # Every token the first commands and the trackers started with has expired.
        stale = {"X-Auth-Token": lagging.get_token()}  # its clock says: still valid
        answer = requests.get(cloud.api_url + "/workflows", headers=stale, timeout=30)
        assert answer.status_code == 401
        # A bridge whose clock is behind Keystone's sends the expired token:
        # the engine's 401 gets it a new one, and the request goes through.
        assert lagging_engine.ping() and lagging.issued == 2
        assert lagging_engine.request_count == 3 and lagging_engine.error_counts == {}

        answer = json.loads(cli_ok(calls, "execution", "cancel", to_cancel, "--json"))
        assert (answer["status"], answer["engine_state"]) == ("canceling", "CANCELLED")
        fix = cli_ok(calls, "execution", "get", to_rerun).rstrip().splitlines()[-1].split()
        assert fix[:3] == ["st2bridge", "task", "rerun"]
        assert json.loads(cli_ok(calls, *fix[1:], "--json"))["reopened"] is True
        assert "nap" in cli_ok(calls, "execution", "tasks", by_callback)

        canceled = wait_record(calls, to_cancel, ["canceled"], timeout=60)
        assert canceled["finished_by"] == "callback"
        # A re-run execution is polled at once as well: either may finish it.
        rerun = wait_record(calls, to_rerun, ["succeeded", "failed"], timeout=60)
        assert (rerun["status"], rerun["finished_by"]) in {
            ("succeeded", "callback"),
            ("succeeded", "poll"),
        }
        assert rerun["output"] == {"body": {"ok": True}} and Flaky.calls == 2

        # The long ones end well after their first token, and are recorded.
        wait_left = started + SLEEP + 60 - time.time()
        record = wait_record(calls, by_callback, ["succeeded", "failed"], timeout=wait_left)
        assert (record["status"], record["finished_by"]) == ("succeeded", "callback")
        assert record["output"] == {"slept": SLEEP}
        # The engine ended it (and then sent the callback) after the token had expired.
        assert record["ended_at"] > started + TOKEN_LIFETIME, (record["ended_at"], started)
        record = wait_record(polls, by_poll, ["succeeded", "failed"], timeout=60)
        assert (record["status"], record["finished_by"]) == ("succeeded", "poll")
        assert json.loads(finish(waiting))["status"] == "succeeded"
    finally:
        for tracker in trackers:
            stop(tracker)
        if waiting is not None and waiting.poll() is None:
            waiting.kill()

    # The trackers renewed their tokens before they expired: no 401 at all.
    # (The callback tracker got its first token for the failed run's callback,
    # early; the last callbacks came well past that token's renewal time.)
    for bridge in (calls, polls):
        log = "".join(p.read_text() for p in bridge.dir.glob("tracker-*.log"))
        assert log.count("got a Keystone token") >= 2, log[-3000:]
        assert "HTTP 401" not in log, log[-3000:]
