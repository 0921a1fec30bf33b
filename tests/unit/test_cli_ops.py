"""Operators' expectations of the CLI (issue 15 #5, #9, #10, #11): output
formats and columns, --debug everywhere, ids by prefix or engine id, secrets
masked, a quick one-line failure when the engine is down, no BrokenPipe
traceback, one status vocabulary, db-upgrade --dry-run beside live services."""

import json
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from st2bridge import errors
from st2bridge import status as st
from st2bridge.cli import output
from st2bridge.cli.main import build_parser
from st2bridge.cli.main import main as cli
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record

ROOT = Path(__file__).resolve().parents[2]
NOW = time.time()
SECRET = "Sup3r$ecret-value"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "bridge.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\nsecret_input_keys = pin\n"
        "[engine]\napi_url = http://127.0.0.1:%d/v2\ninteractive_retry_seconds = 1\n"
        % (tmp_path, closed_port())
    )
    with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
        for i, status in enumerate((st.SUCCEEDED, st.FAILED, st.RUNNING)):
            store.create_execution(
                new_execution_record(
                    id="%d%d%d%d0000-aaaa-bbbb-cccc-%012d" % (i, i, i, i, i),
                    workflow_name="wf_%s" % status,
                    engine_execution_id="e%d" % i + str(uuid.uuid4())[2:],
                    status=status,
                    engine_state={"succeeded": "SUCCESS", "failed": "ERROR"}.get(status, "RUNNING"),
                    input={"user": "bob", "password": SECRET, "pin": 123456},
                    output={"echo": "used %s" % SECRET} if status == st.SUCCEEDED else None,
                    created_at=NOW - 60 + i,
                    updated_at=NOW - 60 + i,
                    ended_at=NOW - 50 + i if status != st.RUNNING else None,
                    error="failed with %s" % SECRET if status == st.FAILED else None,
                )
            )
    return str(path)


def run(capsys, *argv):
    code = cli(["--config-file"] + list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- formats (#9) -------------------------------------------------------------------


def test_list_formats_and_columns(conf, capsys):
    code, out, _ = run(capsys, conf, "execution", "list", "-f", "json")
    assert code == 0 and [r["status"] for r in json.loads(out)] == [
        "running",
        "failed",
        "succeeded",
    ]
    _, out, _ = run(capsys, conf, "execution", "list", "--json")  # the alias stays
    assert len(json.loads(out)) == 3
    _, out, _ = run(capsys, conf, "execution", "list", "-f", "yaml", "-c", "id", "-c", "STATUS")
    assert yaml.safe_load(out)[0] == {
        "id": "22220000-aaaa-bbbb-cccc-000000000002",
        "status": "running",
    }
    _, out, _ = run(
        capsys, conf, "execution", "list", "-f", "value", "-c", "status", "-c", "workflow"
    )
    assert out.splitlines() == [
        "running wf_running",
        "failed wf_failed",
        "succeeded wf_succeeded",
    ]
    _, out, _ = run(capsys, conf, "execution", "list", "-c", "status")
    assert out.splitlines() == ["STATUS", "running", "failed", "succeeded"]
    code, _, err = run(capsys, conf, "execution", "list", "-c", "bogus")
    assert code == 2 and err.startswith("st2bridge: error: unknown column 'bogus'")


def test_get_formats(conf, capsys):
    code, out, _ = run(capsys, conf, "execution", "get", "0000", "-f", "value", "-c", "status")
    assert code == 0 and out == "succeeded\n"
    _, out, _ = run(capsys, conf, "execution", "get", "0000", "-f", "yaml")
    assert yaml.safe_load(out)["workflow_name"] == "wf_succeeded"
    _, out, _ = run(capsys, conf, "execution", "get", "0000", "-c", "status", "-c", "engine_state")
    assert out.split() == ["FIELD", "VALUE", "status", "succeeded", "engine_state", "SUCCESS"]


def test_debug_is_accepted_before_and_after_any_command():
    parser = build_parser()
    output.add_debug_everywhere(parser)
    for argv in (
        ["--debug", "execution", "list"],
        ["execution", "list", "--debug"],
        ["services", "--debug"],
        ["db-upgrade", "--check", "--debug"],
        ["task", "rerun", "t1", "--debug"],
        ["run", "wf.yaml", "--debug"],
    ):
        assert parser.parse_args(argv).debug is True
    assert parser.parse_args(["execution", "list"]).debug is False


def test_debug_shows_the_traceback_of_an_error(conf, capsys):
    code, _, err = run(capsys, conf, "execution", "get", "nope", "--debug")
    assert code == errors.EXIT_NOT_FOUND
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("st2bridge: error:")


def test_long_tables_fit_the_terminal():
    rows = [{"id": str(uuid.uuid4()), "workflow": "w" * 80, "status": "running"}]
    text = output.table(rows, ["id", "workflow", "status"], width=70)
    assert max(len(line) for line in text.splitlines()) <= 70
    assert rows[0]["id"] in text and "…" in text  # the id is kept whole while it can be
    assert output.table(rows, ["id", "workflow", "status"]).count("w" * 80) == 1


# -- ids (#9) --------------------------------------------------------------------------


def test_ids_by_prefix_and_by_engine_id(conf, capsys, tmp_path):
    with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
        engine_id = store.get_execution("11110000-aaaa-bbbb-cccc-000000000001")[
            "engine_execution_id"
        ]
    for name in ("1111", engine_id, engine_id[:6]):
        code, out, err = run(capsys, conf, "execution", "get", name, "-f", "value", "-c", "id")
        assert (code, out) == (0, "11110000-aaaa-bbbb-cccc-000000000001\n"), err
    code, _, err = run(capsys, conf, "execution", "get", "e")  # every engine id starts so
    assert code == 2 and "is the start of 3 execution ids" in err
    code, _, err = run(capsys, conf, "execution", "get", "9999")
    assert code == 5 and "no execution 9999" in err


# -- secrets (#10) ---------------------------------------------------------------------


def test_secret_input_is_masked_unless_asked_for(conf, capsys):
    for fmt in ("table", "json", "yaml"):
        code, out, _ = run(capsys, conf, "execution", "get", "0000", "-f", fmt)
        assert code == 0 and SECRET not in out and "123456" not in out, fmt
        assert "***" in out and "bob" in out
    _, out, _ = run(capsys, conf, "execution", "get", "0000", "--show-secrets", "-f", "json")
    view = json.loads(out)
    assert view["input"]["password"] == SECRET and view["output"]["echo"] == "used " + SECRET
    assert view["input"]["pin"] == 123456


def test_collect_logs_masks_secret_input(conf, capsys, tmp_path):
    target = tmp_path / "report.tar.gz"
    code, out, err = run(capsys, conf, "collect-logs", "-o", str(target))
    assert code == 0, err
    with tarfile.open(target) as tar:
        texts = {
            m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()
            for m in tar.getmembers()
            if m.isfile()
        }
    assert SECRET not in "".join(texts.values())
    failed = json.loads(texts["failed-executions.json"])
    assert failed[0]["input"]["password"] == "***" and "***" in failed[0]["error"]
    # Without log_dir nor journal nor a tracker, nothing is claimed.
    assert not any(name.startswith("logs/") for name in texts)
    assert "no tracker output was found" in texts["README.txt"]


@pytest.mark.process
def test_collect_logs_takes_the_output_of_a_running_tracker(conf, capsys, tmp_path):
    """Without log_dir: the file a tracker's stderr goes to (the quick start's)."""
    log = tmp_path / "resultstracker.log"
    log.write_text("2026-11-26 INFO tracker started\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stderr=open(log, "a"),
    )
    try:
        with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
            store.register_service(
                {
                    "id": "t1",
                    "name": "st2bridge-resultstracker",
                    "host": socket.gethostname(),
                    "pid": holder.pid,
                    "heartbeat_at": time.time(),
                }
            )
        target = tmp_path / "report.tar.gz"
        assert run(capsys, conf, "collect-logs", "-o", str(target))[0] == 0
        with tarfile.open(target) as tar:
            names = [m.name.split("/", 1)[1] for m in tar.getmembers()]
            member = [m for m in tar.getmembers() if "logs/st2bridge-resultstracker-" in m.name]
            assert member, names
            assert b"tracker started" in tar.extractfile(member[0]).read()
    finally:
        holder.kill()
        holder.wait()


# -- the engine down (#5) -------------------------------------------------------------


@pytest.mark.process
def test_interactive_commands_fail_fast_with_one_line(conf, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text("version: '2.0'\nwf:\n  tasks:\n    a:\n      action: std.noop\n")
    running = "22220000-aaaa-bbbb-cccc-000000000002"
    for argv in (
        ["run", str(wf)],
        ["execution", "tasks", running],
        ["execution", "cancel", running],
        ["execution", "watch", running],
        ["task", "rerun", "t-1"],
    ):
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "st2bridge.cli.main", "--config-file", conf] + argv,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(ROOT),
        )
        took = time.monotonic() - started
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == errors.EXIT_ENGINE_UNAVAILABLE, proc.stderr
        assert len(lines) == 1 and "cannot reach the engine at http://127.0.0.1:" in lines[0]
        assert "connection refused" in lines[0]
        # interactive_retry_seconds = 1: the retries stop after that (plus start-up).
        assert took < 15, (argv, took)
    # The store still answers.
    proc = subprocess.run(
        [sys.executable, "-m", "st2bridge.cli.main", "--config-file", conf, "execution", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0 and "wf_running" in proc.stdout


# -- consistency (#11) -------------------------------------------------------------------


@pytest.mark.process
def test_a_closed_pipe_is_not_a_traceback(conf, tmp_path):
    with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
        for i in range(3000):
            store.create_execution(
                new_execution_record(
                    id=str(uuid.uuid4()),
                    workflow_name="many",
                    engine_execution_id=str(uuid.uuid4()),
                    status=st.SUCCEEDED,
                    created_at=NOW + i,
                    updated_at=NOW + i,
                )
            )
    proc = subprocess.run(
        "%s -m st2bridge.cli.main --config-file %s execution list --limit 3000 | head -n 2"
        % (sys.executable, conf),
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""


def test_scheduled_is_gone():
    assert "scheduled" not in st.ALL
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["execution"].format_help()
    assert "scheduled" not in help_text


def test_db_upgrade_dry_run_beside_a_live_tracker(conf, capsys, tmp_path):
    conf_path = Path(conf)
    conf_path.write_text(
        conf_path.read_text() + "[db_upgrade]\ncheck_systemd = false\ncheck_processes = false\n"
    )
    with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
        store.register_service(
            {
                "id": "t1",
                "name": "st2bridge-resultstracker",
                "host": "h",
                "heartbeat_at": time.time(),
            }
        )
    code, _, err = run(capsys, conf, "db-upgrade", "--target", "bridge", "--dry-run")
    assert code == 0, err
    assert "the real run refuses until it is stopped" in err
    code, _, err = run(capsys, conf, "db-upgrade", "--target", "bridge", "--yes")
    assert code == errors.EXIT_SERVICES_RUNNING
