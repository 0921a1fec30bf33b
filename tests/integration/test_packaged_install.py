"""From the package to production (issue 15 #1-#4): build the archive, install
it into a scratch root as an operator would (install.sh as root, a service
user of its own, dependencies from the package index only), follow the
"Next" steps, run the unit's ExecStartPre and ExecStart as the service user,
run a workflow on the real Mistral through it, and check the result, the
files' owners and modes, and the units with systemd-analyze.

Needs root (a service user, files owned by it) and /usr/bin/python3 with
venv (the service user cannot use the test's own interpreter)."""

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.bridge import QUICK, wait_for
from tests.support.net import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def unit_commands(unit_text):
    """{key: command line} of the unit's Exec* lines."""
    found = {}
    for line in unit_text.splitlines():
        match = re.match(r"^(ExecStartPre|ExecStart)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


class Install:
    def __init__(self, root, user, output):
        self.root = root
        self.user = user
        self.output = output
        self.bin = root / "usr" / "bin"
        self.conf = root / "etc" / "st2bridge" / "bridge.conf"
        self.state = root / "var" / "lib" / "st2bridge"
        self.logs = root / "var" / "log" / "st2bridge"
        self.unit = root / "etc" / "systemd" / "system" / "st2bridge-resultstracker.service"
        self.pw = pwd.getpwnam(user)

    def env(self):
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.state)}

    def as_user(self, argv, **kw):
        """Run a command as the service user (its own uid, gid and groups only)."""
        return dict(
            args=argv,
            user=self.pw.pw_uid,
            group=self.pw.pw_gid,
            extra_groups=[],
            env=self.env(),
            cwd="/",
            **kw,
        )

    def cli(self, *args, user=False, timeout=120):
        argv = [str(self.bin / "st2bridge"), "--config-file", str(self.conf)] + list(args)
        kw = dict(capture_output=True, text=True, timeout=timeout)
        if user:
            return subprocess.run(**self.as_user(argv, **kw))
        return subprocess.run(argv, env=self.env(), cwd="/", **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("installing for a service user needs root")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no %s for the service user's virtualenv" % SYSTEM_PYTHON)
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build.sh"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    archive = Path(build.stdout.splitlines()[-1])
    # A scratch root that the service user can reach (tmp_path's parents are private).
    scratch = Path(tempfile.mkdtemp(prefix="st2bridge-install-", dir="/tmp"))
    os.chmod(scratch, 0o755)
    user = "st2b%s" % uuid.uuid4().hex[:8]
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch / "unpacked")
        (top,) = (scratch / "unpacked").iterdir()
        root = scratch / "root"
        proc = subprocess.run(
            [
                "bash",
                str(top / "install.sh"),
                "--root",
                str(root),
                "--user",
                user,
                "--python",
                SYSTEM_PYTHON,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield Install(root, user, proc.stdout)
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def configure(install, api_url):
    """Step 1 of "Next": point the installed config at the test's engine."""
    callback, metrics, web = free_port(), free_port(), free_port()
    text = install.conf.read_text()
    text = text.replace("api_url = http://127.0.0.1:8989/v2", "api_url = %s" % api_url)
    text += (
        "retry_exp_msec = 200\nretry_exp_max_msec = 1000\n"
        "[resultstracker]\nmode = hybrid\nstale_after = 60\nquery_interval = 1\n"
        "[callback]\nport = %d\n[metrics]\nport = %d\n[web]\nport = %d\n"
        # Other trackers may run on this machine with configs the service
        # user cannot read: db-upgrade would count them as "may use it".
        "[db_upgrade]\ncheck_processes = false\n" % (callback, metrics, web)
    )
    install.conf.write_text(text)
    return "http://127.0.0.1:%d" % callback


def test_install_start_as_the_service_user_and_run_a_workflow(installed, mistral, tmp_path):
    install = installed
    # What install.sh left: the engine extra, private config, the user's directories.
    assert "extras: engine" in install.output
    assert (install.root / "opt/st2bridge/venv/bin/python").exists()
    info = os.stat(install.conf)
    assert info.st_mode & 0o777 == 0o640 and info.st_gid == install.pw.pw_gid
    for directory in (install.state, install.logs):
        assert os.stat(directory).st_uid == install.pw.pw_uid
    unit_text = install.unit.read_text()
    assert "User=%s" % install.user in unit_text and str(install.bin) in unit_text
    callback = configure(install, mistral.api_url)

    # "Next" 2 as printed (runuser); before it, the mistake the issue saw:
    # the same command as root. Either way the store is the service user's.
    assert install.cli("db-upgrade", "--target", "bridge", "--yes").returncode == 0
    (step,) = [line for line in install.output.splitlines() if line.strip().startswith("2. ")]
    printed = subprocess.run(
        shlex.split(step.strip()[3:]), capture_output=True, text=True, timeout=120
    )
    assert printed.returncode == 0, printed.stderr
    store = install.state / "bridge.db"
    info = os.stat(store)
    assert (info.st_uid, info.st_mode & 0o777) == (install.pw.pw_uid, 0o640)

    # The unit's ExecStartPre and ExecStart, as the service user.
    commands = unit_commands(unit_text)
    pre = subprocess.run(
        **install.as_user(
            shlex.split(commands["ExecStartPre"]), capture_output=True, text=True, timeout=120
        )
    )
    assert pre.returncode == 0, pre.stdout + pre.stderr
    log = open(tmp_path / "tracker.out", "w")
    tracker = subprocess.Popen(
        **install.as_user(shlex.split(commands["ExecStart"]), stdout=log, stderr=log)
    )
    try:
        wait_for("the tracker's listener", lambda: _health(callback), timeout=60)
        # A workflow through it, started by an operator (root) with the same config.
        wf = tmp_path / "quick.yaml"
        wf.write_text(QUICK.format(name="packaged_quick"))
        os.chmod(tmp_path, 0o755)
        os.chmod(wf, 0o644)
        run = install.cli("run", str(wf), "-i", "who=packaged")
        assert run.returncode == 0, run.stderr
        execution_id = run.stdout.strip()

        def finished():
            proc = install.cli("execution", "get", execution_id, "-f", "json")
            assert proc.returncode == 0, proc.stderr
            record = json.loads(proc.stdout)
            return record if record["status"] not in ("requested", "running") else None

        record = wait_for("the execution to end", finished, timeout=90)
        assert record["status"] == "succeeded", record
        assert record["output"] == {"greeting": "hi packaged"}
        assert record["finished_by"] == "callback"
        services = install.cli("services")
        assert services.returncode == 0 and re.search(r"store\s+sqlite\s+up", services.stdout)
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=60) == 0
    finally:
        if tracker.poll() is None:
            tracker.kill()
            tracker.wait()
        log.close()
    # Every file the processes made is the service user's and private.
    for path in [store] + sorted(install.logs.iterdir()):
        info = os.stat(path)
        assert info.st_uid == install.pw.pw_uid, path
        assert info.st_mode & 0o027 == 0, (path, oct(info.st_mode))
    tracker_log = (install.logs / "st2bridge-resultstracker.log").read_text()
    assert "finished by callback" in tracker_log


def test_the_installed_units_verify(installed):
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze on this machine")
    install = installed
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(install.unit)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The engine's drop-in, on a stand-in engine unit.
    units = install.root / "verify"
    (units / "mistral-api.service.d").mkdir(parents=True)
    (units / "mistral-api.service").write_text("[Service]\nExecStart=/bin/true\n")
    shutil.copy(
        install.root / "etc/st2bridge/systemd/mistral-db-check.d/10-st2bridge-db-check.conf",
        units / "mistral-api.service.d",
    )
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(units / "mistral-api.service")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(install.unit)],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert match, security.stdout + security.stderr
    print("systemd-analyze security: %s" % match.group(1))
    assert float(match.group(1)) < 2.0


def _health(url):
    try:
        return requests.get(url + "/v1/health", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
