"""The quick start on a fresh clone (issue 15 #7): it waits for the tracker's
listener before the example (so the example is finished by its callback,
not by a poll 10 s later), leaves the tracker and its web view running,
prints the web URL and a line that puts `st2bridge` on PATH with the config,
installs no test extras, keeps pip quiet, and `quickstart.sh stop` stops
what it started. Free ports, not the defaults: others work on this machine."""

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.net import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_leaves_a_working_system(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    ports = {
        "MISTRAL_PORT": free_port(),
        "CALLBACK_PORT": free_port(),
        "METRICS_PORT": free_port(),
        "WEB_PORT": free_port(),
    }
    env = dict(os.environ, **{k: str(v) for k, v in ports.items()})
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(
            ["bash", "tools/quickstart.sh"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        out = proc.stdout
        assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
        local = clone / ".local"
        # The example finished by callback: the listener was up before it ran.
        assert re.search(r"status:\s+succeeded \(finished by callback\)", out), out[-3000:]
        # pip said nothing; no test extras (pytest is not in the bridge's venv).
        assert "Collecting" not in out and "Successfully installed" not in out
        assert not list((local / "venv").glob("lib/python*/site-packages/pytest"))
        # The tracker outlives the script; the web view answers.
        pid = int((local / "resultstracker.pid").read_text())
        os.kill(pid, 0)
        web = "http://127.0.0.1:%d/executions" % ports["WEB_PORT"]
        assert web in out
        assert requests.get(web, timeout=10).status_code == 200
        # The ready-to-paste line works as printed.
        (line,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("commands:")]
        export = line[len("commands:") :].strip()
        assert export.startswith("export PATH=")
        listed = subprocess.run(
            ["bash", "-c", export + " && st2bridge execution list -f value -c status"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
        )
        assert listed.stdout.split() == ["succeeded"], listed.stderr
        assert _vhost(clone)  # what the clean-up below deletes
        # Stop as printed.
        assert "stop both: bash tools/quickstart.sh stop" in out
        stop = subprocess.run(
            shlex.split("bash tools/quickstart.sh stop"),
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stop.returncode == 0, stop.stdout + stop.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        assert not _alive(pid)
        with pytest.raises(requests.ConnectionError):
            requests.get(web, timeout=2)
    finally:
        subprocess.run(["bash", "tools/quickstart.sh", "stop"], cwd=clone, env=env, timeout=120)
        vhost = _vhost(clone)
        if vhost and shutil.which("rabbitmqctl"):
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of an exited child counts as gone.
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _vhost(clone):
    proc = subprocess.run(
        ["python3", "tools/mistral_local.py", "env", "--home", str(clone / ".local" / "mistral")],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"ST2BRIDGE_MISTRAL_TRANSPORT_URL=\S+/([^/\s'\"]+)", proc.stdout)
    return match.group(1) if match else None
