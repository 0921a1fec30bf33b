"""db-upgrade's parts that need no database server: history parsing, command
rendering, redaction, URL identity, service detection, the bridge guard."""

import subprocess
import sys
import textwrap
import time

import pytest

from st2bridge import config, errors
from st2bridge.cli import main as cli_main
from st2bridge.dbupgrade import engine_schema, migrate, services
from st2bridge.dbupgrade.guard import Guard
from st2bridge.redact import Redactor, database_url
from st2bridge.store import migrations

HISTORY = """\
044 -> 045 (head), Add indexes to scheduled_jobs_v2.
043 -> 044, recreate mistral metrics table
001 -> 043, many
<base> -> 001, Kilo release
"""


def test_parse_history_orders_base_to_head():
    assert migrate.parse_history(HISTORY) == ["001", "043", "044", "045"]
    with pytest.raises(ValueError, match="one head"):
        migrate.parse_history(HISTORY + "044 -> 046 (head), branch\n")
    with pytest.raises(ValueError):
        migrate.parse_history("nothing here")


def test_render_fills_the_config_file_and_refuses_bad_templates():
    assert migrate.render("tool --config-file {engine_config_file} upgrade head", "/e/m.conf") == [
        "tool",
        "--config-file",
        "/e/m.conf",
        "upgrade",
        "head",
    ]
    with pytest.raises(errors.ConfigError):
        migrate.render("tool 'unclosed", "/x")
    with pytest.raises(errors.ConfigError, match="command not found"):
        migrate.run(["/nonexistent/mistral-db-manage"], on_line=print)


def test_run_streams_lines_redacted_and_reports_the_exit_code():
    lines = []
    code, last = migrate.run(
        [sys.executable, "-c", "print('pw=hunter22'); print('two'); raise SystemExit(3)"],
        on_line=lines.append,
        redact=Redactor(["hunter22"], min_length=3),
    )
    assert code == 3 and lines == ["pw=***", "two"] and last == lines


def test_run_stops_a_command_at_its_timeout():
    started = time.monotonic()
    code, last = migrate.run(
        [sys.executable, "-c", "import time; time.sleep(60)"], on_line=print, timeout=0.5
    )
    assert code != 0 and "command_timeout" in last[-1]
    assert time.monotonic() - started < 20


def test_urls_are_redacted_and_compared_by_server_and_database():
    url = "postgresql+psycopg2://u:s3cret@db.example:5432/mistral"
    assert "s3cret" not in database_url(url)
    assert engine_schema.same_database(url, "postgresql://x@db.example/mistral")
    assert engine_schema.same_database(
        "mysql+pymysql://r@localhost/m", "mysql://r@127.0.0.1:3306/m"
    )
    assert not engine_schema.same_database(url, "postgresql://u@db.example/other")
    with pytest.raises(errors.ConfigError, match="PostgreSQL and MariaDB"):
        engine_schema.parse_url("sqlite:////tmp/mistral.db")


def test_extra_objects_skip_what_goes_with_a_dropped_table():
    live = {
        ("table", "a", "a"),
        ("index", "a", "ix_a"),
        ("table", "b", "b"),
        ("index", "b", "ix_b_new"),
        ("foreign_key", "b", "fk_new"),
    }
    expected = {("table", "a", "a")}
    assert engine_schema.extra_objects(live, expected) == [
        ("index", "a", "ix_a"),
        ("table", "b", "b"),
    ]
    assert engine_schema.missing_objects(live, {("table", "c", "c")}) == [("table", "c", "c")]


def test_heartbeats_live_and_stale():
    now = 1000.0
    found = services.heartbeats(
        [
            {"name": "st2bridge-resultstracker", "host": "h1", "pid": 7, "heartbeat_at": 990.0},
            {"name": "st2bridge-resultstracker", "host": "h2", "pid": 8, "heartbeat_at": 100.0},
            {"name": "x", "host": "h3", "pid": 9, "heartbeat_at": None},
        ],
        60,
        now=now,
    )
    assert [f.short for f in found] == ["st2bridge-resultstracker on h1 pid 7, 10 s ago"]
    assert "systemctl stop st2bridge-resultstracker.service" in found[0].stop


def test_processes_matched_by_pattern_and_by_the_database_they_use(tmp_path):
    conf = tmp_path / "m.conf"
    conf.write_text("[database]\nconnection = postgresql://u:p@127.0.0.1/target\n")
    tag = "st2bu-fake-mistral-server-%d" % time.monotonic_ns()
    code = "import time, sys; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, tag, "--config-file", str(conf)])
    try:
        time.sleep(0.3)
        uses = services.engine_process_uses(
            "postgresql://127.0.0.1/target", engine_schema.same_database
        )
        found = services.processes([tag], uses)
        assert [f.short.split()[1] for f in found] == [str(proc.pid)]
        assert found[0].certain and "kill -TERM %d" % proc.pid in found[0].stop
        other = services.engine_process_uses(
            "postgresql://127.0.0.1/other", engine_schema.same_database
        )
        assert services.processes([tag], other) == []
        assert services.config_files(proc.pid) == [str(conf)]
    finally:
        proc.kill()
        proc.wait()


def test_engine_api_check_needs_an_answer():
    assert services.engine_api("http://127.0.0.1:9/v2", timeout=1) == []


def bridge_conf(tmp_path, extra=""):
    path = tmp_path / "bridge.conf"
    path.write_text(
        textwrap.dedent("""\
        [DEFAULT]
        state_path = %s
        [db_upgrade]
        check_systemd = false
        check_processes = false
        %s""")
        % (tmp_path, extra)
    )
    return config.load(["--config-file", str(path)], config_files=[])


def test_bridge_guard_check_dry_run_upgrade_and_no_op(tmp_path, capsys):
    import sqlite3

    from st2bridge.dbupgrade import bridge_store

    conn = sqlite3.connect(tmp_path / "bridge.db")
    conn.executescript(migrations.SQLITE_V1)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.commit()
    conn.close()
    conf = bridge_conf(tmp_path)
    assert Guard(conf, target="bridge", check=True).run() == errors.EXIT_UPGRADE_PENDING
    assert Guard(conf, target="bridge", dry_run=True).run() == errors.EXIT_OK
    assert bridge_store.read_version(conf.store.url) == 1
    guard = Guard(conf, target="bridge")
    assert guard.run() == errors.EXIT_OK and guard.report["bridge"]["status"] == "migrated"
    guard = Guard(conf, target="bridge")
    assert guard.run() == errors.EXIT_OK and guard.report["bridge"]["status"] == "up-to-date"
    assert "db-upgrade: bridge store" in capsys.readouterr().err


def test_engine_target_config_errors_exit_2(tmp_path, capsys):
    (tmp_path / "m.conf").write_text("[database]\nconnection = sqlite:////tmp/x.db\n")
    path = tmp_path / "b.conf"
    path.write_text("[db_upgrade]\nengine_config_file = %s\n" % (tmp_path / "m.conf"))
    code = cli_main.main(["--config-file", str(path), "db-upgrade", "--target", "engine"])
    assert code == errors.EXIT_USAGE
    assert "supports PostgreSQL and MariaDB/MySQL" in capsys.readouterr().err
    path.write_text("[db_upgrade]\nengine_config_file = %s\n" % (tmp_path / "missing.conf"))
    assert cli_main.main(["--config-file", str(path), "db-upgrade", "--target", "engine"]) == 2


def test_unreachable_engine_database_exits_11_without_the_password(tmp_path, capsys):
    path = tmp_path / "b.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = http://127.0.0.1:9/v2\n"
        "[db_upgrade]\ncheck_processes = false\ncheck_systemd = false\n"
        "engine_connection = postgresql://u:topsecret@127.0.0.1:9/mistral\n" % tmp_path
    )
    code = cli_main.main(["--config-file", str(path), "db-upgrade", "--target", "engine"])
    err = capsys.readouterr().err
    assert code == errors.EXIT_DB_UNREACHABLE, err
    assert "topsecret" not in err and "cannot connect" in err.splitlines()[-1]


def test_exit_codes_are_distinct():
    codes = [
        errors.EXIT_USAGE,
        errors.EXIT_SERVICES_RUNNING,
        errors.EXIT_DATA_AT_RISK,
        errors.EXIT_MIGRATION_FAILED,
        errors.EXIT_DB_UNREACHABLE,
        errors.EXIT_UPGRADE_LOCKED,
        errors.EXIT_UPGRADE_PENDING,
    ]
    assert len(set(codes)) == len(codes)
    assert errors.EXIT_SERVICES_RUNNING > errors.EXIT_CONFLICT
