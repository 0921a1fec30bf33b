"""st2bridge-api as a process: its config, its first key, waiting for it."""

import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def create_key(conf, name="ci", read_only=False):
    """`st2bridge apikey create` run as a person would; the key (its last line)."""
    argv = [sys.executable, "-m", "st2bridge.cli.main", "--config-file", str(conf)]
    argv += ["apikey", "create", name] + (["--read-only"] if read_only else [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def start_api(conf, log_path):
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "st2bridge.api.daemon", "--config-file", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def wait_healthy(url, proc=None, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("st2bridge-api exited with %s" % proc.returncode)
        try:
            if requests.get(url + "/v1/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("st2bridge-api did not answer at %s" % url)
