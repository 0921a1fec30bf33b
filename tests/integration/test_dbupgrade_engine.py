"""`st2bridge db-upgrade --target engine` against real PostgreSQL and MariaDB
with the real Mistral 23 migrations (from the Mistral virtualenv that
tools/mistral_local.py installs).

Every test gets its own database (st2bu_t_<random>) and drops it. When a
server is down the tests skip, or fail when $CI is set.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.net import free_port

sa = pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(
    os.environ.get("ST2BRIDGE_MISTRAL_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "st2bridge"
    / "mistral-23.0.0-venv"
)
VENV_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
SERVERS = {
    "postgresql": ("postgresql+psycopg2://postgres@127.0.0.1:5432/%s", 5432, "postgres"),
    "mysql": ("mysql+pymysql://root@127.0.0.1:3306/%s", 3306, ""),
}
SETUP_DB = (
    "import sys; from oslo_config import cfg; cfg.CONF(['--config-file', sys.argv[1]], "
    "project='mistral'); from mistral.db.v2 import api; api.setup_db()"
)

pytestmark = pytest.mark.integration


def unavailable(reason):
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: the db-upgrade tests need it)")
    pytest.skip(reason)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def mistral_venv():
    if not (VENV / "bin" / "mistral-db-manage").exists():
        unavailable(
            "Mistral 23 is not installed in %s (python3 tools/mistral_local.py install)" % VENV
        )
    return VENV


class EngineDb:
    """A scratch engine database of one test, its Mistral config and a bridge
    config for db-upgrade."""

    def __init__(self, kind, tmp_path, venv):
        template, port, _ = SERVERS[kind]
        if not port_open(port):
            unavailable("%s is not running on 127.0.0.1:%d" % (kind, port))
        self.kind, self.venv, self.dir = kind, venv, tmp_path
        self.name = "st2bu_t_%s" % uuid.uuid4().hex[:10]
        self.url = template % self.name
        self.admin = sa.create_engine(
            template % ("postgres" if kind == "postgresql" else ""), poolclass=sa.pool.NullPool
        )
        with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("CREATE DATABASE %s" % self.name))
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        self.mistral_conf = tmp_path / "mistral.conf"
        self.mistral_conf.write_text("[database]\nconnection = %s\n" % self.url)
        self.bridge_conf = tmp_path / "bridge.conf"
        self.write_bridge_conf()

    def write_bridge_conf(self, extra=""):
        bin_ = self.venv / "bin"
        manage = "%s --config-file {engine_config_file}" % (bin_ / "mistral-db-manage")
        self.bridge_conf.write_text(
            "[DEFAULT]\nstate_path = %s\n"
            # nothing listens there: the API check must not see another engine
            "[engine]\napi_url = http://127.0.0.1:%d/v2\n"
            "[db_upgrade]\nengine_config_file = %s\nmanage_command = %s\n"
            "migrate_commands = %s upgrade head\nmigrate_commands = %s populate\n"
            'autocreate_command = %s -c "%s" {engine_config_file}\nlock_timeout = 120\n%s'
            % (
                self.dir / "state",
                free_port(),
                self.mistral_conf,
                manage,
                manage,
                manage,
                bin_ / "python",
                SETUP_DB,
                extra,
            )
        )

    def drop(self):
        self.engine.dispose()
        with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            if self.kind == "postgresql":
                c.execute(sa.text("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name))
            else:
                c.execute(sa.text("DROP DATABASE IF EXISTS %s" % self.name))
        self.admin.dispose()

    # -- the engine's own tools, as an operator runs them --

    def manage(self, *args):
        return subprocess.run(
            [str(self.venv / "bin" / "mistral-db-manage"), "--config-file", str(self.mistral_conf)]
            + list(args),
            capture_output=True,
            text=True,
            env=VENV_ENV,
            timeout=600,
        )

    def services_autocreate(self):
        """What Mistral's services did on start: SQLAlchemy create_all."""
        proc = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", SETUP_DB, str(self.mistral_conf)],
            capture_output=True,
            text=True,
            env=VENV_ENV,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]

    def broken_upgrade(self):
        """The documented failure: migrated to 039, then the services started."""
        proc = self.manage("upgrade", "039")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        self.services_autocreate()

    def scalar(self, sql):
        with self.engine.connect() as c:
            return c.execute(sa.text(sql)).scalar()

    def tables(self):
        return set(sa.inspect(self.engine).get_table_names())

    # -- the bridge's command --

    def guard(self, *args, timeout=600):
        env = dict(os.environ)
        env.pop("ST2BRIDGE_CONFIG_FILE", None)
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "st2bridge.cli.main",
                "--config-file",
                str(self.bridge_conf),
                "db-upgrade",
                "--target",
                "engine",
            ]
            + list(args),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=str(ROOT),
        )


@pytest.fixture(params=["postgresql", "mysql"])
def db(request, tmp_path, mistral_venv):
    database = EngineDb(request.param, tmp_path, mistral_venv)
    yield database
    database.drop()


@pytest.fixture
def pg(tmp_path, mistral_venv):
    database = EngineDb("postgresql", tmp_path, mistral_venv)
    yield database
    database.drop()


def test_documented_failure_then_db_upgrade_fixes_it(db):
    db.broken_upgrade()
    # the failure operators hit: the engine's own migration cannot go on
    failed = db.manage("upgrade", "head")
    assert failed.returncode != 0
    assert re.search(
        r"""(relation "code_sources"|Table 'code_sources') already exists""",
        failed.stdout + failed.stderr,
    )
    assert db.scalar("SELECT version_num FROM alembic_version") == "039"

    check = db.guard("--check")
    assert check.returncode == 13, check.stderr
    assert "revision 039, the head is 045" in check.stderr

    dry = db.guard("--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["engine"]
    assert plan["status"] == "planned"
    dropped = {o["name"] for o in plan["objects"] if o["kind"] == "table"}
    assert {"code_sources", "dynamic_action_definitions", "mistral_metrics"} <= dropped
    metrics = [o for o in plan["objects"] if o["name"] == "mistral_metrics"][0]
    assert metrics["rows"] == 1 and metrics["seed_rows_only"]  # the row setup_db writes
    assert "code_sources" in db.tables()  # a dry run changes nothing

    done = db.guard("--yes")
    assert done.returncode == 0, done.stderr
    assert "DROP TABLE code_sources" in done.stderr.replace("`", "")
    assert "    | " in done.stderr  # the migration's own output, streamed
    assert db.scalar("SELECT version_num FROM alembic_version") == "045"
    assert db.scalar("SELECT COUNT(*) FROM action_definitions_v2") > 0  # populate ran
    assert db.scalar("SELECT value FROM mistral_metrics WHERE name = 'maintenance_status'")

    again = db.guard("--yes", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["engine"]["status"] == "up-to-date"
    assert "nothing to do" in again.stderr and "DROP" not in again.stderr
    assert db.guard("--check").returncode == 0


def test_rows_in_an_auto_created_table_need_force_and_are_exported(pg):
    pg.broken_upgrade()
    with pg.engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO code_sources (id, name, content, version, created_at) "
                "VALUES ('cs-1', 'lib.py', 'print(42)', 1, now())"
            )
        )
    refused = pg.guard("--yes")
    assert refused.returncode == 9, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("st2bridge: error: refusing") and "code_sources (1 rows)" in last
    assert "mistral_metrics" not in last  # its only row is the engine's own start-up row
    assert pg.scalar("SELECT COUNT(*) FROM code_sources") == 1
    assert pg.scalar("SELECT version_num FROM alembic_version") == "039"

    forced = pg.guard("--yes", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    report = json.loads(forced.stdout)["engine"]
    export = Path(report["export_file"])
    assert str(export) in forced.stderr
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    rows = json.loads(export.read_text())["tables"]["code_sources"]
    assert rows["columns"][:3] == ["id", "name", "content"]
    assert rows["rows"][0][:3] == ["cs-1", "lib.py", "print(42)"]
    assert pg.scalar("SELECT version_num FROM alembic_version") == "045"


def test_everything_auto_created_gets_a_diagnosis_and_a_plan(pg):
    pg.services_autocreate()  # no migration ever ran
    dry = pg.guard("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "no recorded revision" in dry.stderr and "create_all" in dry.stderr
    done = pg.guard("--yes")
    assert done.returncode == 0, done.stderr
    assert pg.scalar("SELECT version_num FROM alembic_version") == "045"


def test_two_guards_at_once_one_waits_neither_corrupts(pg):
    pg.broken_upgrade()
    procs = []

    def start():
        procs.append(pg.guard("--yes"))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join()
    assert [p.returncode for p in procs] == [0, 0], [p.stderr[-800:] for p in procs]
    out = [p.stderr for p in procs]
    assert sum("dropping" in o for o in out) == 1
    assert sum("another db-upgrade holds the lock" in o for o in out) == 1
    assert sum("nothing to do" in o for o in out) == 1
    assert pg.scalar("SELECT version_num FROM alembic_version") == "045"


def test_a_held_lock_with_no_wait_refuses(pg):
    pg.broken_upgrade()
    pg.write_bridge_conf("lock_timeout = 0\n")
    with pg.engine.connect() as holder:
        holder.execute(
            sa.text("SELECT pg_advisory_lock(:a, :b)"), {"a": 0x53543242, "b": 0x44425550}
        )
        proc = pg.guard("--yes")
    assert proc.returncode == 12, proc.stderr
    assert "another db-upgrade holds the lock" in proc.stderr
    assert pg.scalar("SELECT version_num FROM alembic_version") == "039"
    assert "code_sources" in pg.tables()


def test_refuses_while_a_mistral_server_uses_the_database(pg, tmp_path):
    """A real Mistral on the test's database: found in the process table (its
    config names the database) and by its API answering."""
    pg.drop()  # mistral_local creates and migrates its own database
    home, port, name = tmp_path / "mistral", free_port(), "st2bu_t_%s" % uuid.uuid4().hex[:10]
    args = [
        sys.executable,
        str(ROOT / "tools" / "mistral_local.py"),
        "--home",
        str(home),
        "--port",
        str(port),
        "--vhost",
        name,
        "--db",
        "postgresql",
        "--venv",
        str(pg.venv),
    ]
    up = subprocess.run(args[:2] + ["up"] + args[2:], capture_output=True, text=True, timeout=400)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        # point the fixture (and its drop()) at the database Mistral runs on
        pg.name, pg.url = name, SERVERS["postgresql"][0] % name
        pg.engine = sa.create_engine(pg.url, poolclass=sa.pool.NullPool)
        pg.admin = sa.create_engine(
            SERVERS["postgresql"][0] % "postgres", poolclass=sa.pool.NullPool
        )
        pg.mistral_conf = home / "mistral.conf"
        pg.write_bridge_conf("engine_api_url = http://127.0.0.1:%d/v2\n" % port)
        proc = pg.guard("--yes")
        assert proc.returncode == 8, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert "refusing" in last and "engine-api" in last and "mistral-server" in last
        assert "process: pid" in last and "answers at http://127.0.0.1:%d/v2" % port in last
        assert "child processes" in last and len(last) < 400  # workers folded into the master
        assert "stop:" in proc.stderr  # the list says how to stop each
    finally:
        subprocess.run(args[:2] + ["stop"] + args[2:], capture_output=True, timeout=120)
        if shutil.which("rabbitmqctl"):
            subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True)
